import type { HubOptions } from '../../src/options.ts'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { createHub } from '../../src/hub.ts'
import { connectPeer, joinPeer, nextTurn, useSocketFreeHubs } from '../helpers/fake-connection.ts'

// Socket-free, fake time: a hub runs nothing until it starts serving.
const hubOf = useSocketFreeHubs()
beforeEach(() => {
  vi.useFakeTimers()
})

const clustered = (bus: ReturnType<typeof createMemoryBus>): HubOptions => ({ backplane: createMemoryBackplane(bus), cluster: { prefix: 'start', heartbeatMs: 200, nodeTimeoutMs: 1000 } })

describe('hub.start()', () => {
  it('starts no timer at construction, clustered or not: only start() does, once however often it is called', () => {
    const single = hubOf({ auth: { token: 'secret', timeoutMs: 1000 } })
    const node = hubOf(clustered(createMemoryBus()))
    expect(vi.getTimerCount()).toBe(0)

    single.start()
    const afterOne = vi.getTimerCount()
    expect(afterOne).toBe(1)
    single.start()
    expect(vi.getTimerCount()).toBe(afterOne)

    node.start()
    node.start()
    // Its liveness sweep and its cluster heartbeat.
    expect(vi.getTimerCount()).toBe(afterOne + 2)
  })

  it('starts nothing once closed', async () => {
    const hub = hubOf(clustered(createMemoryBus()))
    await hub.close()
    hub.start()
    expect(vi.getTimerCount()).toBe(0)
  })

  it('leaves nothing running when options fail validation', () => {
    expect(() => createHub({ env: {}, logger: { level: 'silent' }, heartbeat: { readTimeout: -1 } })).toThrow(/heartbeat/)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('does not sweep before it starts: a pending peer is timed out only by a started hub', () => {
    const hub = hubOf({ auth: { token: 'secret', timeoutMs: 1000 } })
    vi.advanceTimersByTime(5000)
    // Connecting starts the hub: its deadline counts from then.
    const pending = connectPeer(hub)
    vi.advanceTimersByTime(999)
    expect(pending.connection.closes).toEqual([])
    vi.advanceTimersByTime(500)
    expect(pending.connection.closes).toEqual([{ code: 4001, reason: 'authentication failed' }])
  })

  it('joins the cluster only when started: a node not started neither hears nor is heard', async () => {
    const bus = createMemoryBus()
    const serving = hubOf(clustered(bus))
    const idle = hubOf(clustered(bus))
    joinPeer(serving, 'worker')
    for (let turn = 0; turn < 10; turn++)
      await nextTurn()
    expect(serving.cluster?.nodes()).toEqual([])
    expect(idle.registry.size).toBe(0)
    expect(idle.cluster?.ready).toBe(false)

    idle.start()
    for (let turn = 0; turn < 10 && idle.registry.size === 0; turn++)
      await nextTurn()
    expect([...idle.registry.entries()].map(entry => entry.name)).toEqual(['worker'])
    expect(idle.cluster?.ready).toBe(true)
    expect(serving.cluster?.nodes()).toEqual([idle.cluster?.nodeId])
  })
})
