import type { RedisServer } from '../helpers/redis.ts'
import { once } from 'node:events'
import { Redis } from 'ioredis'
import { beforeEach, describe, expect, it } from 'vitest'
import { announced, deannounced, listing, metric, metricReaches, readyz, spawnNode, startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, settle } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'
import { sdkClient, syncListing } from '../helpers/sdk.ts'

let redis: RedisServer

const INVALID = 'hub_errors_total{reason="backplane_invalid"}'
const DROPPED = 'hub_errors_total{reason="backplane_dropped"}'

describe('cluster faults over one real Redis', () => {
  beforeEach(async () => {
    redis = await startRedis()
    onCleanup(() => redis.kill())
  })

  it('de-announces the modules of a node killed with SIGKILL on the other nodes, counting what was sent to it, leaving no ghost', async () => {
    const nodeTimeoutMs = 2000
    const [a] = await startNodes(redis.url, 1, nodeTimeoutMs)
    const doomed = await spawnNode(redis.url, { CLUSTER_NODE_TIMEOUT_MS: String(nodeTimeoutMs) })
    const alpha = sdkClient(a!.url(), 'alpha')
    const victim = await RawPeer.connect(doomed.url())
    await victim.join('victim')
    await alpha.waitFor(announced('victim'))
    expect(await listing(a!)).toEqual(['alpha', 'victim'])

    doomed.child.kill('SIGKILL')
    await once(doomed.child, 'exit')
    // Node a still lists the victim until the node timeout: what it forwards meanwhile is lost, and counted.
    alpha.client.send({ type: 'to:the:dead', data: {}, route: { destinations: ['plugin:victim'] } } as never)
    await metricReaches(a!, DROPPED, 1)
    const gone = await alpha.waitFor(deannounced('victim'), 4 * nodeTimeoutMs)
    expect(gone.data).toMatchObject({ name: 'victim', reason: 'heartbeat expired' })
    expect(await listing(a!)).toEqual(['alpha'])
    expect(a!.server.hub.cluster!.nodes()).toEqual([])
    expect(await metric(a!, DROPPED)).toBe(1)
  })

  it('resyncs a node paused past the node timeout instead of expiring the healthy one; each node re-learns the other', async () => {
    const nodeTimeoutMs = 1000
    const [a] = await startNodes(redis.url, 1, nodeTimeoutMs)
    const sleeper = await spawnNode(redis.url, { CLUSTER_NODE_TIMEOUT_MS: String(nodeTimeoutMs) })
    const alpha = await RawPeer.connect(a!.url())
    await alpha.join('alpha')
    const pita = await RawPeer.connect(sleeper.url())
    await pita.join('pita')
    await alpha.waitFor(announced('pita'))
    // The sleeper lists alpha (announced, or in a sync if it learned it first).
    await pita.waitFor(event => announced('alpha')(event) || syncListing(['alpha'])(event))
    const announcedToPita = pita.ofType('module:announced').length

    sleeper.child.kill('SIGSTOP')
    // Forwarded before node a gives up on the sleeper: Redis holds it until the sleeper resumes.
    alpha.send({ type: 'while:asleep', data: {}, route: { destinations: ['plugin:pita'] } })
    // Node a gives up on the silent node: the sleeper is now paused past the node timeout.
    await alpha.waitFor(deannounced('pita'), 5 * nodeTimeoutMs)
    await settle(nodeTimeoutMs / 2)
    sleeper.child.kill('SIGCONT')

    await until(() => alpha.ofType('module:announced').filter(announced('pita')).length === 2, 'node a to re-learn pita', 10_000)
    alpha.send({ type: 'after:waking', data: {}, route: { destinations: ['plugin:pita'] } })
    pita.send({ type: 'good:morning', data: {}, route: { destinations: ['plugin:alpha'] } })
    await pita.waitForType('after:waking')
    await alpha.waitForType('good:morning')
    await settle(3 * nodeTimeoutMs / 2)

    // The sleeper's peers never lost the healthy node's module, nor heard of it twice.
    expect(pita.ofType('module:de-announced')).toEqual([])
    expect(pita.ofType('module:announced')).toHaveLength(announcedToPita)
    expect([pita.ofType('while:asleep').length, pita.ofType('after:waking').length, alpha.ofType('good:morning').length]).toEqual([1, 1, 1])
    expect(await listing(a!)).toEqual(['alpha', 'pita'])
    expect(await listing(sleeper)).toEqual(['alpha', 'pita'])
    expect(a!.server.hub.cluster!.nodes()).toEqual([sleeper.node])
    expect(sleeper.child.exitCode).toBeNull()
  })

  it('drops malformed and hostile backplane messages, counted, and every node stays up with no ghost', async () => {
    const nodeTimeoutMs = 1000
    const [a] = await startNodes(redis.url, 1, nodeTimeoutMs)
    const b = await spawnNode(redis.url, { CLUSTER_NODE_TIMEOUT_MS: String(nodeTimeoutMs) })
    const alpha = await RawPeer.connect(a!.url())
    await alpha.join('alpha')
    const beta = await RawPeer.connect(b.url())
    await beta.join('beta', { identity: { plugin: 'beta', instanceId: 'beta-1', labels: { role: 'worker' } } })
    await alpha.waitFor(announced('beta'))
    await beta.waitFor(event => announced('alpha')(event) || syncListing(['alpha'])(event))
    const alphaId = [...a!.server.hub.peers.keys()][0]!

    const batch = (...entries: unknown[]): string => JSON.stringify(entries.map(json => ({ json })))
    const identity = (labels: unknown) => ({ pluginId: 'ghost', instanceId: 'g', labels })
    const state = (node: string, peers: unknown[]) => ({ type: 'state', node, seq: 1, hello: false, peers })
    const route = (event: unknown, to: unknown = ['nobody']) => ({ type: 'route', node: 'forger', to, event })
    // [message, how many invalid entries it holds], for the channel every node listens to...
    const everyone: Array<[string, number]> = [
      ['not json {', 1],
      [JSON.stringify({ json: { type: 'heartbeat', node: 'x', seq: 1 } }), 1],
      ['[1,null,"x",[],{}]', 5],
      // The crash of issue 9: a peer module without labels.
      [batch(state('ghost-node', [{ id: 'ghost-1', modules: [{ name: 'ghost', identity: { pluginId: 'ghost', instanceId: 'g' } }] }])), 1],
      // Prototype keys, written as JSON text (an object literal would set the prototype instead).
      [`[{"json":{"type":"state","node":"proto-node","seq":1,"hello":false,"peers":[{"id":"p1","modules":[{"name":"proto","identity":{"pluginId":"p","instanceId":"p","labels":{"__proto__":{"polluted":"yes"}}}}]}]}}]`, 1],
      [`[{"json":{"type":"state","node":"proto-node","seq":1,"hello":false,"peers":[{"id":"p1","modules":[{"name":"proto","identity":{"pluginId":"p","instanceId":"p","labels":{"__proto__":"x","role":"worker"}}}]}]}}]`, 1],
      [batch(state('ctor-node', [{ id: 'c1', modules: [{ name: 'ctor', identity: identity({ constructor: 'x' }) }] }])), 1],
      // Huge arrays and records.
      [batch(state('huge-node', Array.from({ length: 200_001 }, (_, i) => ({ id: `h${i}` })))), 1],
      [batch(state('labels-node', [{ id: 'l1', modules: [{ name: 'labels', identity: identity(Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'v']))) }] }])), 1],
      [batch(state('long-node', [{ id: 'x'.repeat(100_000) }])), 1],
      // superjson meta where no node ever sends it: a cycle, a Map.
      [JSON.stringify([{ json: state('cycle-node', [{ id: 'c1' }]), meta: { referentialEqualities: { 'peers.0': ['peers.0.modules'] } } }]), 1],
      [JSON.stringify([{ json: { type: 'heartbeat', node: [['a', 1]], seq: 1 }, meta: { values: { node: ['map'] } } }]), 1],
      // Wrong types, unknown types.
      [batch({ type: 'heartbeat', node: 5, seq: 'x' }, { type: 'health', node: 'n', id: {}, healthy: 'yes' }, { type: 'left', node: 'n', seq: -3, id: 'p' }, { type: 'peer', node: 'n', seq: 1, peer: { id: 'p' }, reason: 'because' }, { type: 'state', node: 'n', seq: 1, peers: [] }), 5],
      [batch({ type: 'explode', node: 'n' }, { type: '__proto__', node: 'n' }, { node: 'n' }), 3],
      // Well formed, but claiming node a's own peer: ignored by every node, never an entry.
      [batch({ type: 'state', node: 'forger', seq: 0, hello: false, peers: [{ id: alphaId, modules: [{ name: 'forged', identity: identity({}) }] }] }), 0],
    ]
    // ...and for each node's own channel, where routed events arrive.
    const direct: Array<[string, number]> = [
      [batch(route({ type: 'x', data: {} }, Array.from({ length: 200_001 }, (_, i) => `p${i}`))), 1],
      [batch(route(null), route({ type: 'x', data: 'text' }), route({ type: 5, data: {} }), route({ type: 'x', data: {} }, 'nobody'), route({ type: 'x', data: [] })), 5],
      [JSON.stringify([{ json: route({ type: 'x', data: {} }), meta: { values: { '__proto__.polluted': ['Date'] } } }]), 1],
      [JSON.stringify([{ json: route({ type: 'x', data: {} }), meta: { referentialEqualities: { 'event.data': ['__proto__.polluted'] } } }]), 1],
      [JSON.stringify([{ json: route({ type: 'x', data: {} }), meta: { values: { 'event.data': ['class', 'Evil'] } } }]), 1],
      [JSON.stringify([{ json: route({ type: 'x', data: [['k', 1]] }), meta: { values: { 'event.data': ['map'] } } }]), 1],
      [JSON.stringify([{ json: route({ type: 'x', data: {} }), meta: 'nonsense' }]), 0],
      // A cycle in the data of an event for nobody: valid, and harmless.
      [JSON.stringify([{ json: route({ type: 'x', data: { n: 1 } }), meta: { referentialEqualities: { 'event.data': ['event.data.self'] } } }]), 0],
    ]
    const publisher = new Redis(redis.url)
    onCleanup(() => publisher.quit())
    const prefix = a!.server.hub.options.cluster.prefix
    for (const [message] of everyone)
      await publisher.publish(`${prefix}:all`, message)
    for (const node of [a!.server.hub.cluster!.nodeId, b.node]) {
      for (const [message] of direct)
        await publisher.publish(`${prefix}:node:${node}`, message)
    }
    const expected = [...everyone, ...direct].reduce((sum, [, count]) => sum + count, 0)
    await metricReaches(a!, INVALID, expected)
    await metricReaches(b, INVALID, expected)
    // Past the node timeout: what issue 9 saw crash every node, and what a half-stored entry would break.
    await settle(3 * nodeTimeoutMs / 2)

    expect(b.child.exitCode).toBeNull()
    for (const node of [a!, b]) {
      expect((await fetch(`http://127.0.0.1:${node.port}/healthz`)).status).toBe(200)
      expect(await metric(node, INVALID)).toBe(expected)
      expect(await listing(node)).toEqual(['alpha', 'beta'])
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(a!.server.hub.cluster!.nodes()).toEqual([b.node])
    alpha.send({ type: 'still:routing', data: {}, route: { destinations: ['label:role=worker'] } })
    beta.send({ type: 'and:back', data: {}, route: { destinations: ['plugin:alpha'] } })
    await beta.waitForType('still:routing')
    await alpha.waitForType('and:back')
    await settle(200)
    expect([beta.ofType('still:routing').length, alpha.ofType('and:back').length]).toEqual([1, 1])
    expect(alpha.ofType('module:announced').map(e => e.data.name)).toEqual(['beta'])
    expect(beta.ofType('module:announced').filter(e => e.data.name !== 'alpha')).toEqual([])
    expect([...alpha.ofType('module:de-announced'), ...beta.ofType('module:de-announced')]).toEqual([])
  })

  it('keeps routing locally while Redis is down, reports not ready, and converges when it returns', async () => {
    const nodeTimeoutMs = 1000
    const [a, b] = await startNodes(redis.url, 2, nodeTimeoutMs)
    const alpha = sdkClient(a!.url(), 'alpha')
    const leaving = sdkClient(a!.url(), 'leaving')
    const local = sdkClient(a!.url(), 'local')
    const beta = sdkClient(b!.url(), 'beta')
    await beta.waitFor(announced('local'))
    await alpha.waitFor(announced('beta'))

    await redis.kill()
    await until(() => !a!.server.hub.cluster!.ready && !b!.server.hub.cluster!.ready, 'both nodes to lose Redis')
    expect(await readyz(a!)).toEqual({ status: 503, backplane: false })
    alpha.client.send({ type: 'still:here', data: {}, route: { destinations: ['plugin:local'] } } as never)
    await local.waitFor(e => e.type === 'still:here')
    // Past the node timeout the nodes give up on each other: no ghosts of unreachable modules.
    await alpha.waitFor(deannounced('beta'), 4 * nodeTimeoutMs)
    // Changes while apart: one module leaves node a, one arrives on node b.
    leaving.client.close()
    const late = sdkClient(b!.url(), 'late')
    await late.waitFor(syncListing(['late']))

    await redis.start()
    await until(() => a!.server.hub.cluster!.ready && b!.server.hub.cluster!.ready, 'both nodes to be back', 10_000)
    expect(await readyz(a!)).toEqual({ status: 200, backplane: true })
    await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'late', 10_000)
    await until(() => alpha.ofType('module:announced').filter(e => e.data.name === 'beta').length === 2, 'beta announced again', 10_000)
    await until(() => a!.server.registry.size === 4 && b!.server.registry.size === 4, 'both registries to converge', 10_000)
    expect(await listing(a!)).toEqual(['alpha', 'beta', 'late', 'local'])
    expect(await listing(b!)).toEqual(['alpha', 'beta', 'late', 'local'])

    alpha.client.send({ type: 'across:again', data: {}, route: { destinations: ['plugin:late'] } } as never)
    await late.waitFor(e => e.type === 'across:again')
    await settle(200)
    expect(late.ofType('across:again')).toHaveLength(1)
    expect(alpha.ofType('module:announced').filter(e => e.data.name === 'late')).toHaveLength(1)
  })

  it('rides out a short Redis outage without dropping anyone, repairing what it missed; what it could not forward is counted', async () => {
    const [a, b] = await startNodes(redis.url, 2, 8000)
    const alpha = sdkClient(a!.url(), 'alpha')
    const beta = sdkClient(b!.url(), 'beta')
    await alpha.waitFor(announced('beta'))
    await beta.waitFor(announced('alpha'))

    await redis.kill()
    await until(() => !a!.server.hub.cluster!.ready, 'node a to lose Redis')
    alpha.client.send({ type: 'into:the:void', data: {}, route: { destinations: ['plugin:beta'] } } as never)
    await metricReaches(a!, DROPPED, 1)
    const late = sdkClient(b!.url(), 'late')
    await late.waitFor(syncListing(['late']))
    await redis.start()

    await alpha.waitFor(announced('late'), 10_000)
    // Node a may hear again (its subscriber is back) before it can publish again: sent before
    // then, the event would be dropped and counted like the one above.
    await until(() => a!.server.hub.cluster!.ready && b!.server.hub.cluster!.ready, 'both nodes to be back', 10_000)
    alpha.client.send({ type: 'after:outage', data: {}, route: { destinations: ['plugin:beta'] } } as never)
    await beta.waitFor(e => e.type === 'after:outage')
    await settle(300)
    expect(alpha.ofType('module:de-announced')).toEqual([])
    expect(alpha.ofType('module:announced').map(e => e.data.name).sort()).toEqual(['beta', 'late'])
    expect(await listing(a!)).toEqual(['alpha', 'beta', 'late'])
    // Dropped, never replayed; the rest once.
    expect([beta.ofType('into:the:void').length, beta.ofType('after:outage').length]).toEqual([0, 1])
    expect(await metric(a!, DROPPED)).toBe(1)
  })
})
