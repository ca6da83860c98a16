import type { Backlog } from '../../src/core/router.ts'
import type { Connection, HubEvent, ModuleEntry } from '../../src/types.ts'
import { describe, expect, it, vi } from 'vitest'
import { createObservers } from '../../src/core/observers.ts'
import { createRegistryFeed, REPAIR_CHECK_MS } from '../../src/core/registry-feed.ts'
import { createRegistryLog } from '../../src/core/registry-log.ts'
import { createRegistry } from '../../src/core/registry.ts'
import { Session } from '../../src/core/session.ts'
import { until } from '../helpers/json-socket.ts'

const LAGGING = 1000

/** A connection whose unsent bytes the test sets; it records the event types it was sent. */
function fakePeer(id: string): Session & { types: string[], waiting: number } {
  let peer: Session & { types: string[], waiting: number }
  const connection: Connection = {
    encoder: { encode: event => JSON.stringify(event) },
    send: (frame) => {
      peer.types.push(JSON.parse(frame).type)
      return peer.waiting
    },
    buffered: () => peer.waiting,
    close: () => {},
    fail: () => {},
  }
  peer = Object.assign(new Session(id, connection, 0), { types: [] as string[], waiting: 0, state: 'authenticated' as const })
  return peer
}

function setup() {
  const registry = createRegistry()
  const peers = [fakePeer('a'), fakePeer('b')]
  const counts = { skipped: 0, repaired: 0 }
  const observers = createObservers()
  observers.on('registryDeltasSkipped', (count) => {
    counts.skipped += count
  })
  observers.on('registryRepaired', (count) => {
    counts.repaired += count
  })
  const deliver = (event: HubEvent, recipients: Iterable<Session>, _sender?: Session, onBacklog?: Backlog): number => {
    const frame = JSON.stringify(event)
    let delivered = 0
    for (const session of recipients) {
      onBacklog?.(session, session.connection.send(frame), frame.length)
      delivered++
    }
    return delivered
  }
  const feed = createRegistryFeed({
    registry,
    log: createRegistryLog(64),
    healthOf: () => true,
    deliver,
    createEvent: (type, data) => ({ type, data }),
    announcedOf: identity => ({ plugin: identity.pluginId, instanceId: identity.instanceId }),
    laggingBytes: LAGGING,
    observers,
    onLagging: () => {},
    onGap: () => {},
  })
  for (const peer of peers)
    feed.admit(peer)
  const announce = (name: string): ModuleEntry => {
    const entry: ModuleEntry = { name, peerId: name, identity: { pluginId: name, instanceId: name, labels: {} } }
    registry.set(entry)
    feed.announced(entry)
    return entry
  }
  return { feed, peers, counts, announce }
}

describe('createRegistryFeed', () => {
  it('sends every delta, in order, to peers that keep up', () => {
    const { feed, peers: [a], announce } = setup()
    const m1 = announce('m1')
    feed.health(m1, false)
    feed.deannounced(m1, 'connection closed')
    expect(a!.types).toEqual(['module:announced', 'registry:modules:health:unhealthy', 'module:de-announced'])
    feed.stop()
  })

  it('coalesces a lagging peer\'s deltas into one sync once it drained, then the health it missed', () => {
    // The repair check runs on fake time; the turn's end stays real (no turn passes here).
    vi.useFakeTimers()
    const { feed, peers: [a, b], counts, announce } = setup()
    a!.waiting = LAGGING + 1
    const m1 = announce('m1')
    announce('m2')
    feed.health(m1, false)
    // The first delta found it behind; the rest were not queued. The other peer saw them all.
    expect(a!.types).toEqual(['module:announced'])
    expect(b!.types).toEqual(['module:announced', 'module:announced', 'registry:modules:health:unhealthy'])
    expect(counts.skipped).toBe(2)

    vi.advanceTimersByTime(REPAIR_CHECK_MS * 2)
    expect(a!.types).toEqual(['module:announced'])
    a!.waiting = 0
    vi.advanceTimersByTime(REPAIR_CHECK_MS * 2)
    expect(a!.types).toEqual(['module:announced', 'registry:modules:sync', 'registry:modules:health:unhealthy'])
    expect(counts.repaired).toBe(1)
    announce('m3')
    expect(a!.types.at(-1)).toBe('module:announced')
    feed.stop()
    vi.useRealTimers()
  })

  it('gives a delta peer that fell behind no more deltas, then one full sync once it drained', async () => {
    const { feed, peers: [a, b], counts, announce } = setup()
    feed.admit(a!, { mode: 'delta' })
    feed.admit(b!, { mode: 'none' })
    await until(() => a!.types.length === 1, 'the first sync')
    a!.waiting = LAGGING + 1
    announce('m1')
    await until(() => a!.types.length === 2, 'the first delta')
    announce('m2')
    await until(() => counts.skipped === 1, 'the next delta skipped')
    a!.waiting = 0
    await until(() => a!.types.length === 3, 'the repairing sync')
    expect(a!.types).toEqual(['registry:modules:sync', 'registry:modules:delta', 'registry:modules:sync'])
    expect(counts.repaired).toBe(1)
    announce('m3')
    await until(() => a!.types.length === 4, 'deltas again')
    expect(a!.types[3]).toBe('registry:modules:delta')
    // A `none` peer heard nothing after it asked.
    expect(b!.types).toEqual([])
    feed.stop()
  })

  it('counts what one turn queued: a burst marks a peer lagging before its connection can tell', () => {
    const { feed, peers: [a], announce } = setup()
    for (let i = 0; i < 50; i++)
      announce(`module-${i}`)
    expect(a!.types.length).toBeLessThan(50)
    feed.stop()
  })
})
