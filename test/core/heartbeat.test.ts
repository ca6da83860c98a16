import type { Hub } from '../../src/hub.ts'
import type { FakePeer } from '../helpers/fake-connection.ts'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createHub } from '../../src/hub.ts'
import { connectPeer, joinPeer, openSockets } from '../helpers/fake-connection.ts'

const READ_TIMEOUT = 1000

let hub: Hub
beforeEach(() => {
  // Before the first peer: connecting starts the hub's liveness sweep.
  vi.useFakeTimers()
  hub = createHub({ env: {}, logger: { level: 'silent' }, heartbeat: { readTimeout: READ_TIMEOUT } })
})
afterEach(async () => {
  expect(openSockets()).toEqual([])
  await hub.close()
  vi.useRealTimers()
})

/** Lets `ms` of fake time pass, in sweep-sized steps, while the `chatty` peers send something at each step. */
function advance(ms: number, ...chatty: FakePeer[]): void {
  for (let elapsed = 0; elapsed < ms; elapsed += READ_TIMEOUT / 4) {
    vi.advanceTimersByTime(Math.min(READ_TIMEOUT / 4, ms - elapsed))
    for (const peer of chatty)
      hub.touch(peer.session)
  }
}

function healthOf(events: Array<{ type: string, data: Record<string, unknown> }>): unknown[][] {
  return events.filter(event => event.type.startsWith('registry:modules:health:')).map(event => [event.type.slice('registry:modules:health:'.length), event.data.name, event.data.reason])
}

describe('liveness', () => {
  it('probes a silent peer, tells the others it is unhealthy, then closes it with 4000 and de-announces it', () => {
    const watcher = connectPeer(hub)
    const quiet = joinPeer(hub, 'quiet')

    advance(READ_TIMEOUT / 2, watcher)
    expect(quiet.connection.pings).toBeGreaterThan(0)
    expect(healthOf(watcher.connection.events)).toEqual([])

    advance(READ_TIMEOUT / 2, watcher)
    expect(healthOf(watcher.connection.events)).toEqual([['unhealthy', 'quiet', 'heartbeat late']])
    expect(quiet.connection.closes).toEqual([])
    expect(hub.registry.size).toBe(1)

    advance(READ_TIMEOUT, watcher)
    expect(quiet.connection.closes).toEqual([{ code: 4000, reason: 'heartbeat expired' }])
    expect(watcher.connection.ofType('module:de-announced').map(event => [event.data.name, event.data.reason])).toEqual([['quiet', 'heartbeat expired']])
    expect(hub.registry.size).toBe(0)
    expect(hub.peers.has(quiet.session.id)).toBe(false)
    expect(watcher.connection.closes).toEqual([])
    expect(watcher.connection.pings).toBe(0)
  })

  it('keeps a peer that sends anything alive, unprobed, however long', () => {
    const watcher = connectPeer(hub)
    const chatty = joinPeer(hub, 'chatty')
    advance(10 * READ_TIMEOUT, chatty, watcher)
    expect(chatty.connection.closes).toEqual([])
    expect(chatty.connection.pings).toBe(0)
    expect(healthOf(watcher.connection.events)).toEqual([])
    expect(hub.registry.size).toBe(1)
  })

  it('tells the others a peer that speaks again after going unhealthy is healthy, and keeps it', () => {
    const watcher = connectPeer(hub)
    const late = joinPeer(hub, 'late')
    advance(READ_TIMEOUT, watcher)
    expect(healthOf(watcher.connection.events)).toEqual([['unhealthy', 'late', 'heartbeat late']])

    hub.touch(late.session)
    expect(healthOf(watcher.connection.events)).toEqual([['unhealthy', 'late', 'heartbeat late'], ['healthy', 'late', undefined]])
    advance(READ_TIMEOUT * 3 / 2, watcher)
    expect(late.connection.closes).toEqual([])
    expect(hub.registry.size).toBe(1)
  })
})
