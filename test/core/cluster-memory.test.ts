import type { Backplane } from '../../src/backplane/types.ts'
import type { Hub } from '../../src/hub.ts'
import type { FakePeer } from '../helpers/fake-connection.ts'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { createHub } from '../../src/hub.ts'
import { connectPeer, joinPeer, nextTurn, openSockets } from '../helpers/fake-connection.ts'

// Two hubs in this process, clustered over the in-memory backplane: no Redis, no socket. Time
// is fake; the turns the cluster batches its messages in, and the bus's deliveries, are real.
const NODE_TIMEOUT_MS = 1000
const HEARTBEAT_MS = 200
// Peers' own liveness: longer than any test here lets time pass, but the one that waits for it.
const READ_TIMEOUT_MS = 5 * NODE_TIMEOUT_MS

let hubs: Hub[]
let backplanes: Backplane[]

function startNode(bus: ReturnType<typeof createMemoryBus>): Hub {
  const backplane = createMemoryBackplane(bus)
  const hub = createHub({ env: {}, logger: { level: 'silent' }, heartbeat: { readTimeout: READ_TIMEOUT_MS }, backplane, cluster: { prefix: 'core', nodeTimeoutMs: NODE_TIMEOUT_MS, heartbeatMs: HEARTBEAT_MS } })
  hub.start()
  hubs.push(hub)
  backplanes.push(backplane)
  return hub
}

/** Real turns until `done`: cluster messages travel at the end of a turn, then on a microtask. */
async function turnsUntil(done: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 50; turn++) {
    if (done())
      return
    await nextTurn()
  }
  throw new Error(`still waiting for ${what}`)
}

/** Lets `ms` of fake time pass one cluster heartbeat at a time, the messages of each step delivered. */
async function pass(ms: number): Promise<void> {
  for (let elapsed = 0; elapsed < ms; elapsed += HEARTBEAT_MS / 2) {
    vi.advanceTimersByTime(HEARTBEAT_MS / 2)
    for (let turn = 0; turn < 3; turn++)
      await nextTurn()
  }
}

let a: Hub
let b: Hub
beforeEach(async () => {
  // Before the hubs: their heartbeat timers start, and their clocks are taken, when they are created.
  vi.useFakeTimers()
  hubs = []
  backplanes = []
  const bus = createMemoryBus()
  a = startNode(bus)
  b = startNode(bus)
  await turnsUntil(() => a.cluster!.nodes().length === 1 && b.cluster!.nodes().length === 1, 'the nodes to know each other')
})
afterEach(async () => {
  expect(openSockets()).toEqual([])
  await Promise.all(hubs.map(hub => hub.close()))
  vi.useRealTimers()
})

const gone = (peer: FakePeer): unknown[][] => peer.connection.ofType('module:de-announced').map(event => [event.data.name, event.data.reason])

describe('two hubs over the memory backplane', () => {
  it('shows the modules of one node to the peers of the other, as news and in a sync', async () => {
    const alpha = joinPeer(a, 'alpha')
    const beta = joinPeer(b, 'beta', { labels: { env: 'prod' } })
    await turnsUntil(() => alpha.connection.ofType('module:announced').length > 0 && beta.connection.ofType('module:announced').length > 0, 'each to hear of the other')
    expect(alpha.connection.ofType('module:announced').map(event => event.data)).toEqual([{ name: 'beta', identity: { plugin: 'beta', instanceId: 'beta-1', labels: { env: 'prod' } } }])
    expect(beta.connection.ofType('module:announced').map(event => event.data.name)).toEqual(['alpha'])

    const late = connectPeer(a)
    await turnsUntil(() => late.connection.ofType('registry:modules:sync').length > 0, 'the sync')
    const [sync] = late.connection.ofType('registry:modules:sync')
    expect((sync?.data.modules as Array<{ name: string }>).map(module => module.name).sort()).toEqual(['alpha', 'beta'])
    expect([...a.registry.entries()].find(entry => entry.name === 'beta')?.node).toBe(b.cluster!.nodeId)
  })

  it('routes across the nodes: to destinations, to everyone, each peer once and never the sender', async () => {
    const alpha = joinPeer(a, 'alpha')
    const beta = joinPeer(b, 'beta')
    const gamma = joinPeer(b, 'gamma')
    await turnsUntil(() => a.registry.size === 3 && b.registry.size === 3, 'both registries to list 3 modules')

    const at = new Date(7)
    expect(a.publish(alpha.session, { type: 'note', data: { at }, route: { destinations: ['plugin:beta', 'beta', 'bet*'] }, metadata: { event: { id: 'n1' } } })).toBe(1)
    await turnsUntil(() => beta.connection.ofType('note').length > 0, 'beta to get the note')
    const [note] = beta.connection.ofType('note')
    expect(note?.data).toEqual({ at })
    expect(note?.metadata?.event?.id).toBe('n1')
    expect(note?.metadata?.source).toMatchObject({ id: 'alpha-1', plugin: { id: 'alpha' } })

    expect(b.publish(gamma.session, { type: 'all', data: {} })).toBe(2)
    await turnsUntil(() => alpha.connection.ofType('all').length > 0 && beta.connection.ofType('all').length > 0, 'the broadcast')
    await pass(HEARTBEAT_MS)
    expect([alpha, beta, gamma].map(peer => [peer.connection.ofType('note').length, peer.connection.ofType('all').length])).toEqual([[0, 1], [1, 1], [0, 0]])
  })

  it('configures a module on the other node, naming the event that asked', async () => {
    const ui = joinPeer(a, 'ui')
    const worker = joinPeer(b, 'worker')
    await turnsUntil(() => a.registry.size === 2, 'node a to list worker')
    a.configure(ui.session, { moduleName: 'worker', config: { level: 3 } }, 'c1')
    await turnsUntil(() => worker.connection.ofType('module:configure').length > 0, 'worker to be configured')
    const [configure] = worker.connection.ofType('module:configure')
    expect(configure?.data).toEqual({ config: { level: 3 } })
    expect(configure?.metadata?.event?.parentId).toBe('c1')
    expect(ui.connection.ofType('error')).toEqual([])
  })

  it('de-announces a peer that leaves on one node to the peers of the other', async () => {
    const alpha = joinPeer(a, 'alpha')
    const beta = joinPeer(b, 'beta')
    await turnsUntil(() => a.registry.size === 2, 'node a to list beta')
    b.disconnect(beta.session)
    await turnsUntil(() => gone(alpha).length > 0, 'alpha to hear beta left')
    expect(gone(alpha)).toEqual([['beta', 'connection closed']])
    expect(a.publish(alpha.session, { type: 'note', data: {}, route: { destinations: ['plugin:beta'] } })).toBe(0)
  })

  it('drops the modules of a node that says goodbye at once', async () => {
    const alpha = joinPeer(a, 'alpha')
    const beta = joinPeer(b, 'beta')
    await turnsUntil(() => a.registry.size === 2, 'node a to list beta')
    await b.close()
    expect(beta.connection.closes).toEqual([{ code: 1001, reason: 'server shutdown' }])
    await turnsUntil(() => gone(alpha).length > 0, 'alpha to hear beta left')
    expect(gone(alpha)).toEqual([['beta', 'server shutdown']])
    expect(a.cluster!.nodes()).toEqual([])
    expect(a.registry.size).toBe(1)
  })

  it('keeps a node that keeps talking, and drops one gone silent once the node timeout passed', async () => {
    const alpha = joinPeer(a, 'alpha')
    joinPeer(b, 'beta')
    await turnsUntil(() => a.registry.size === 2, 'node a to list beta')
    await pass(3 * NODE_TIMEOUT_MS)
    expect(gone(alpha)).toEqual([])
    expect(a.cluster!.nodes()).toEqual([b.cluster!.nodeId])

    // Node b's link goes without a goodbye, as a crashed node's would.
    await backplanes[1]!.close()
    await pass(NODE_TIMEOUT_MS - HEARTBEAT_MS)
    expect(gone(alpha)).toEqual([])
    await pass(2 * HEARTBEAT_MS)
    expect(gone(alpha)).toEqual([['beta', 'heartbeat expired']])
    expect(a.cluster!.nodes()).toEqual([])
    expect(a.registry.size).toBe(1)
    expect(a.publish(alpha.session, { type: 'note', data: {}, route: { destinations: ['plugin:beta'] } })).toBe(0)
  })

  it('tells the peers of one node that a module of the other went silent, and when it is back', async () => {
    const alpha = joinPeer(a, 'alpha')
    const quiet = joinPeer(b, 'quiet')
    await turnsUntil(() => a.registry.size === 2, 'node a to list quiet')
    for (let elapsed = 0; elapsed < READ_TIMEOUT_MS; elapsed += READ_TIMEOUT_MS / 10) {
      await pass(READ_TIMEOUT_MS / 10)
      a.touch(alpha.session)
    }
    await turnsUntil(() => alpha.connection.ofType('registry:modules:health:unhealthy').length > 0, 'alpha to hear quiet is unhealthy')
    expect(alpha.connection.ofType('registry:modules:health:unhealthy').map(event => [event.data.name, event.data.reason])).toEqual([['quiet', 'heartbeat late']])

    b.touch(quiet.session)
    await turnsUntil(() => alpha.connection.ofType('registry:modules:health:healthy').length > 0, 'alpha to hear quiet is back')
    expect(alpha.connection.ofType('registry:modules:health:healthy').map(event => event.data.name)).toEqual(['quiet'])
  })
})
