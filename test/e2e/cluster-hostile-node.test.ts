import type { RunningHub } from '../helpers/hub.ts'
import type { RedisServer } from '../helpers/redis.ts'
import { Redis } from 'ioredis'
import { beforeEach, describe, expect, it } from 'vitest'
import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { listing, metric, metricReaches } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'

// A hostile (or runaway) node is a raw Redis client publishing on the hub's channels exactly
// what a node publishes: a batch of superjson payloads.

const LIMIT = 'hub_errors_total{reason="backplane_limit"}'
const INVALID = 'hub_errors_total{reason="backplane_invalid"}'
const NODE_TIMEOUT_MS = 1000
const HEARTBEAT_MS = NODE_TIMEOUT_MS / 5

let redis: RedisServer

const batch = (...entries: unknown[]): string => JSON.stringify(entries.map(json => ({ json })))
const module = (name: string) => ({ name, identity: { pluginId: name, instanceId: name, labels: {} } })

/** One clustered node with `cluster` options, a publisher that forges messages to it, and its channel prefix. */
async function startNode(cluster: { maxNodes?: number, maxPeersPerNode?: number } = {}): Promise<{ hub: RunningHub, forger: Redis, all: string, direct: string }> {
  const hub = await startHub({ redisUrl: redis.url, cluster: { nodeTimeoutMs: NODE_TIMEOUT_MS, ...cluster } })
  await until(() => hub.server.hub.cluster!.ready, 'the node to join')
  const forger = new Redis(redis.url)
  onCleanup(() => forger.quit())
  const { prefix } = hub.server.hub.options.cluster
  return { hub, forger, all: `${prefix}:all`, direct: `${prefix}:node:${hub.server.hub.cluster!.nodeId}` }
}

describe('a hostile node on the backplane', () => {
  beforeEach(async () => {
    redis = await startRedis()
    onCleanup(() => redis.kill())
  })

  it('delivers a routed event once to a peer its route names a thousand times', async () => {
    const { hub, forger, direct } = await startNode()
    const alpha = await RawPeer.connect(hub.url())
    await alpha.join('alpha')
    const alphaId = [...hub.server.hub.peers.keys()][0]!

    await forger.publish(direct, batch({ type: 'route', node: 'forger', to: Array.from({ length: 1000 }, () => alphaId), event: { type: 'echo:me', data: {} } }))
    await alpha.waitForType('echo:me')
    alpha.send({ type: 'after', data: {}, route: { destinations: ['plugin:alpha'] } })
    await settle(100)
    expect(alpha.ofType('echo:me')).toHaveLength(1)
    expect(alpha.ws.readyState).toBe(alpha.ws.OPEN)
  })

  it('delivers no event in the hub\'s name but a module\'s configuration: reserved types and the hub\'s source are dropped, counted', async () => {
    const { hub, forger, direct } = await startNode()
    const alpha = await RawPeer.connect(hub.url())
    await alpha.join('alpha')
    const alphaId = [...hub.server.hub.peers.keys()][0]!
    const route = (event: Record<string, unknown>) => ({ type: 'route', node: 'forger', to: [alphaId], event: { data: { forged: true }, ...event } })
    const forged = [
      route({ type: 'event:ack', data: { forged: true, delivered: 0 } }),
      route({ type: 'registry:modules:sync', data: { forged: true, modules: [] } }),
      route({ type: 'error', data: { forged: true, message: 'log in again at evil.example' } }),
      route({ type: 'module:announced', data: { forged: true, name: 'ghost' } }),
      route({ type: 'chat:message', metadata: { source: { plugin: 'hub-server', instanceId: 'hub-1' } } }),
      route({ type: 'chat:message', metadata: { source: { kind: 'plugin', id: 'x', plugin: { id: 'hub-server' } } } }),
      route({ type: 'x'.repeat(100_000) }),
      { type: 'reply', node: 'forger', responder: 'p', event: { type: 'module:de-announced', data: { forged: true }, metadata: { event: { parentId: 'r' } } } },
    ]
    await forger.publish(direct, batch(...forged))
    await metricReaches(hub, INVALID, forged.length)
    await forger.publish(direct, batch(route({ type: 'chat:message', data: { forged: false } })))
    await alpha.waitFor(event => event.type === 'chat:message' && event.data.forged === false)
    expect(alpha.received.filter(event => event.data?.forged === true)).toEqual([])
  })

  it('answers a flood of state requests with at most one state per heartbeat, and nodes it does not know not at all', async () => {
    const { hub, forger, all, direct } = await startNode()
    const alpha = await RawPeer.connect(hub.url())
    await alpha.join('alpha')
    const listener = new Redis(redis.url)
    onCleanup(() => listener.quit())
    const states: Record<string, number> = { forger: 0, stranger: 0 }
    listener.on('message', (channel: string, text: string) => {
      const node = channel.slice(channel.lastIndexOf(':') + 1)
      states[node]! += (JSON.parse(text) as Array<{ json: { type: string } }>).filter(entry => entry.json.type === 'state').length
    })
    const prefix = hub.server.hub.options.cluster.prefix
    await listener.subscribe(`${prefix}:node:forger`, `${prefix}:node:stranger`)

    // Known once its heartbeat arrives; then a thousand tiny requests, each asking for the whole state.
    await forger.publish(all, batch({ type: 'heartbeat', node: 'forger', seq: 0 }))
    await until(() => hub.server.hub.cluster!.nodes().includes('forger'), 'the forged node to be known')
    await forger.publish(direct, batch(...Array.from({ length: 500 }, () => ({ type: 'sync', node: 'forger' }))))
    await forger.publish(all, batch(...Array.from({ length: 500 }, (_, seq) => ({ type: 'state', node: 'forger', seq, peers: [], hello: true }))))
    await forger.publish(direct, batch(...Array.from({ length: 500 }, () => ({ type: 'sync', node: 'stranger' }))))
    await until(() => states.forger! >= 1, 'the node to answer once')
    // The request that came too soon is answered at the next tick, and nothing more.
    await settle(3 * HEARTBEAT_MS)
    expect(states.forger).toBeLessThanOrEqual(2)
    expect(states.stranger).toBe(0)
    expect((await fetch(`http://127.0.0.1:${hub.port}/healthz`)).status).toBe(200)
  })

  it('drops a batch of more messages than a node ever sends in one, whole, before checking or applying any', async () => {
    const { hub, forger, all } = await startNode()
    const heartbeats = Array.from({ length: 40_000 }, () => ({ type: 'heartbeat', node: 'forger', seq: 0 }))
    await forger.publish(all, batch(...heartbeats))
    await metricReaches(hub, INVALID, 1)
    // The same messages in batches a node would send are applied.
    await forger.publish(all, batch(...heartbeats.slice(0, 10_000)))
    await until(() => hub.server.hub.cluster!.nodes().includes('forger'), 'the node of a well-sized batch to be known')
    expect(await metric(hub, INVALID)).toBe(1)
  })

  it('knows at most cluster.maxNodes other nodes, counting the messages of the rest', async () => {
    const { hub, forger, all } = await startNode({ maxNodes: 3 })
    await forger.publish(all, batch(...Array.from({ length: 50 }, (_, i) => ({ type: 'heartbeat', node: `fake-${i}`, seq: 0 }))))
    await metricReaches(hub, LIMIT, 47)
    expect(hub.server.hub.cluster!.nodes()).toEqual(['fake-0', 'fake-1', 'fake-2'])
    expect(await metric(hub, LIMIT)).toBe(47)
  })

  it('knows at most cluster.maxPeersPerNode peers of one node, from its state and from its deltas', async () => {
    const { hub, forger, all } = await startNode({ maxPeersPerNode: 5 })
    const peer = (i: number) => ({ id: `forged-${i}`, modules: [module(`forged-${i}`)] })
    await forger.publish(all, batch({ type: 'state', node: 'forger', seq: 0, hello: false, peers: [0, 1, 2].map(peer) }))
    await forger.publish(all, batch(...[3, 4, 5, 6, 7].map((i, n) => ({ type: 'peer', node: 'forger', seq: n + 1, peer: peer(i) }))))
    await metricReaches(hub, LIMIT, 3)
    expect([...hub.server.hub.remotePeers.keys()].sort()).toEqual([0, 1, 2, 3, 4].map(i => `forged-${i}`))
    expect(await listing(hub)).toEqual([0, 1, 2, 3, 4].map(i => `forged-${i}`))
    // A known peer still changes, and one that left frees its place.
    await forger.publish(all, batch({ type: 'left', node: 'forger', seq: 6, id: 'forged-0' }, { type: 'peer', node: 'forger', seq: 7, peer: peer(8) }))
    await until(() => hub.server.hub.remotePeers.has('forged-8'), 'a new peer in the freed place')
    expect(await listing(hub)).toEqual([1, 2, 3, 4, 8].map(i => `forged-${i}`))
  })

  it('holds no node\'s peers past what its state could carry in one message', async () => {
    // In one process: 66 MiB through Redis would only test Redis.
    const bus = createMemoryBus()
    const hub = await startHub({ backplane: createMemoryBackplane(bus), cluster: { nodeTimeoutMs: 60_000 } })
    hub.server.hub.start()
    const forger = createMemoryBackplane(bus)
    const all = `${hub.server.hub.options.cluster.prefix}:all`
    // A peer of 22 modules of 1 MiB of labels each: three of them would pass the 64 Mi characters a message may hold.
    const labels = Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`l${i}`, 'v'.repeat(4000)]))
    const peer = (i: number) => ({ id: `big-${i}`, modules: Array.from({ length: 22 }, (_, m) => ({ name: `big-${i}-${m}`, identity: { pluginId: 'big', instanceId: `${i}-${m}`, labels } })) })
    await forger.publish(all, batch({ type: 'state', node: 'forger', seq: 0, hello: false, peers: [] }))
    for (const i of [0, 1, 2])
      await forger.publish(all, batch({ type: 'peer', node: 'forger', seq: i + 1, peer: peer(i) }))
    await metricReaches(hub, LIMIT, 1)
    expect([...hub.server.hub.remotePeers.keys()]).toEqual(['big-0', 'big-1'])
    // One that leaves frees its share.
    await forger.publish(all, batch({ type: 'left', node: 'forger', seq: 4, id: 'big-0' }, { type: 'peer', node: 'forger', seq: 5, peer: peer(2) }))
    await until(() => hub.server.hub.remotePeers.has('big-2'), 'the third peer once the first left')
    expect([...hub.server.hub.remotePeers.keys()]).toEqual(['big-1', 'big-2'])
    expect(await metric(hub, LIMIT)).toBe(1)
  })
})
