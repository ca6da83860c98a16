import type { Backplane } from '../../src/backplane/types.ts'
import type { ServerOptions } from '../../src/server.ts'
import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import { beforeEach, describe, expect, it } from 'vitest'
import { defineMiddleware } from '../../src/core/middleware.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'

/** One engine (a bus, a Redis server) of a contract test: each `connect()` is one more node on it. */
export interface BackplaneFactory {
  connect: () => Backplane
}

const NODE_TIMEOUT_MS = 600
let clusters = 0

const modulesOf = (event: WireEvent): string[] => event.data.modules.map((m: { name: string }) => m.name).sort()

/**
 * The contract every backplane keeps, first as a message bus, then as what hubs clustered
 * through it must look like to their peers.
 */
export function describeBackplane(name: string, factory: () => BackplaneFactory): void {
  // One engine per test, every node of the test on it.
  let engine: BackplaneFactory
  beforeEach(() => {
    engine = factory()
  })

  function connect(): Backplane {
    const backplane = engine.connect()
    onCleanup(() => backplane.close())
    return backplane
  }

  /** `count` hubs clustered through one engine, each knowing all the others. */
  async function startCluster(count: number, options: ServerOptions = {}): Promise<RunningHub[]> {
    const prefix = `contract-${++clusters}`
    const hubs: RunningHub[] = []
    for (let i = 0; i < count; i++)
      hubs.push(await startHub({ ...options, backplane: connect(), cluster: { prefix, nodeTimeoutMs: NODE_TIMEOUT_MS, heartbeatMs: 50 } }))
    await until(() => hubs.every(hub => hub.server.hub.cluster!.ready && hub.server.hub.cluster!.nodes().length === count - 1), 'the nodes to know each other')
    return hubs
  }

  async function joined(hub: RunningHub, name: string, identity?: Record<string, unknown>): Promise<RawPeer> {
    const peer = await RawPeer.connect(hub.url())
    await peer.join(name, { identity })
    return peer
  }

  describe(`${name} backplane`, () => {
    describe('as a bus', () => {
      it('delivers each message to every subscriber of its channel, on every node, in order, counting them', async () => {
        const a = connect()
        const b = connect()
        const atA: string[] = []
        const atB: string[] = []
        const elsewhere: string[] = []
        await a.subscribe('contract:x', message => atA.push(message))
        await b.subscribe('contract:x', message => atB.push(message))
        await b.subscribe('contract:y', message => elsewhere.push(message))
        await until(() => a.ready && b.ready, 'both ready')
        const sent = Array.from({ length: 50 }, (_, i) => `m${i}`)
        // Each publish says how many subscribers it reached: 0 tells a sender nobody listens.
        for (const message of sent)
          expect(await a.publish('contract:x', message)).toBe(2)
        expect(await a.publish('contract:nobody', 'lost')).toBe(0)
        await until(() => atA.length === 50 && atB.length === 50, 'all messages')
        expect(atA).toEqual(sent)
        expect(atB).toEqual(sent)
        await settle(50)
        expect(elsewhere).toEqual([])
      })

      it('stops delivering and is not ready once closed', async () => {
        const a = connect()
        const b = connect()
        const atB: string[] = []
        await a.subscribe('contract:z', () => {})
        await b.subscribe('contract:z', message => atB.push(message))
        await until(() => a.ready && b.ready, 'both ready')
        await b.close()
        expect(b.ready).toBe(false)
        await a.publish('contract:z', 'after close')
        await settle(100)
        expect(atB).toEqual([])
      })
    })

    describe('as a cluster of hubs', () => {
      it('lists every module of every node in a sync on any node, and tells every node of arrivals and departures', async () => {
        const [a, b] = await startCluster(2)
        const alpha = await joined(a!, 'alpha')
        const beta = await joined(b!, 'beta')
        await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'beta')
        expect(alpha.ofType('module:announced').map(e => e.data)).toEqual([{ name: 'beta', identity: { plugin: 'beta', instanceId: 'beta-1', labels: {} } }])

        const late = await RawPeer.connect(b!.url())
        const sync = await late.waitForType('registry:modules:sync')
        expect(modulesOf(sync)).toEqual(['alpha', 'beta'])

        await beta.close()
        const gone = await alpha.waitForType('module:de-announced')
        expect(gone.data).toMatchObject({ name: 'beta', reason: 'connection closed' })
        const again = await RawPeer.connect(a!.url())
        expect(modulesOf(await again.waitForType('registry:modules:sync'))).toEqual(['alpha'])
      })

      it('routes an event for one remote peer to that peer once, through its node only, with no echo', async () => {
        const [a, b, c] = await startCluster(3)
        const alpha = await joined(a!, 'alpha')
        const beta = await joined(b!, 'beta')
        const gamma = await joined(c!, 'gamma')
        await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'gamma')

        // Listen on the channel of the node that must NOT be involved.
        const watcher = connect()
        const seenByB: string[] = []
        await watcher.subscribe(`${b!.server.hub.options.cluster.prefix}:node:${b!.server.hub.cluster!.nodeId}`, message => seenByB.push(message))
        await until(() => watcher.ready, 'the watcher')

        // Three destinations that all match gamma: still one delivery.
        alpha.send({ type: 'note', data: { to: 'gamma', at: new Date(5) }, route: { destinations: ['plugin:gamma', 'module:gamma', 'gam*'] } })
        const got = await gamma.waitForType('note')
        expect(got.data).toEqual({ to: 'gamma', at: new Date(5) })
        expect(got.metadata?.source).toEqual({ plugin: 'alpha', instanceId: 'alpha-1', labels: {} })
        await settle(150)
        expect(gamma.ofType('note')).toHaveLength(1)
        expect(beta.ofType('note')).toHaveLength(0)
        expect(alpha.ofType('note')).toHaveLength(0)
        expect(seenByB).toEqual([])
      })

      it('keeps a burst of routed events in order across nodes, plain and superjson alike', async () => {
        const [a, b] = await startCluster(2)
        const alpha = await joined(a!, 'alpha')
        const beta = await joined(b!, 'beta')
        await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'beta')

        // Sent in one go, so node a forwards them in batches; odd ones carry a Date.
        const data = (i: number): Record<string, unknown> => i % 2 ? { i, at: new Date(i) } : { i }
        for (let i = 0; i < 300; i++)
          alpha.send({ type: 'burst', data: data(i), route: { destinations: ['plugin:beta'] } })
        await until(() => beta.ofType('burst').length >= 300, 'every event of the burst')
        await settle(100)
        expect(beta.ofType('burst').map(e => e.data)).toEqual(Array.from({ length: 300 }, (_, i) => data(i)))
      })

      it('broadcasts to every peer on every node exactly once, never to the sender', async () => {
        const [a, b, c] = await startCluster(3)
        const alpha = await joined(a!, 'alpha')
        const alpha2 = await joined(a!, 'alpha2')
        const beta = await joined(b!, 'beta')
        const gamma = await joined(c!, 'gamma')
        // Authenticated but never announced: on one node it gets broadcasts too.
        const listener = await RawPeer.connect(c!.url())
        await listener.waitForType('module:authenticated')
        await until(() => a!.server.registry.size === 4 && b!.server.registry.size === 4 && c!.server.registry.size === 4, 'every registry to list 4 modules')
        await settle(100)

        alpha.send({ type: 'all', data: { n: 1 } })
        beta.send({ type: 'star', data: { n: 2 }, route: { destinations: ['*'] } })
        for (const peer of [alpha2, beta, gamma, listener])
          await peer.waitForType('all')
        for (const peer of [alpha, alpha2, gamma, listener])
          await peer.waitForType('star')
        await settle(150)
        expect([alpha, alpha2, beta, gamma, listener].map(peer => peer.ofType('all').length)).toEqual([0, 1, 1, 1, 1])
        expect([alpha, alpha2, beta, gamma, listener].map(peer => peer.ofType('star').length)).toEqual([1, 1, 0, 1, 1])
      })

      it('narrows remote recipients by policy and middleware as on one node', async () => {
        const options: ServerOptions = {
          routing: {
            policy: { denyLabels: ['env=test'] },
            middleware: [defineMiddleware((context, next) => {
              context.recipients = context.recipients.filter(peer => peer.module?.identity.labels.muted !== 'yes')
              return next()
            })],
          },
        }
        const [a, b] = await startCluster(2, options)
        const sender = await joined(a!, 'sender')
        const denied = await joined(b!, 'denied', { plugin: 'denied', instanceId: 'd', labels: { env: 'test' } })
        const muted = await joined(b!, 'muted', { plugin: 'muted', instanceId: 'm', labels: { muted: 'yes' } })
        const open = await joined(b!, 'open', { plugin: 'open', instanceId: 'o' })
        await until(() => a!.server.registry.size === 4, 'node a to list every module')

        sender.send({ type: 'news', data: {} })
        await open.waitForType('news')
        await settle(150)
        expect([denied, muted, open].map(peer => peer.ofType('news').length)).toEqual([0, 0, 1])
      })

      it('tells every node when a module goes silent and when it is back', async () => {
        const [a, b] = await startCluster(2, { heartbeat: { readTimeout: 200 } })
        const alpha = await joined(a!, 'alpha')
        // A peer that does not answer the hub's pings: it falls silent.
        const quiet = await RawPeer.connect(b!.url(), { autoPong: false })
        await quiet.join('quiet')
        await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'quiet')
        const unhealthy = await alpha.waitForType('registry:modules:health:unhealthy')
        expect(unhealthy.data).toMatchObject({ name: 'quiet', reason: 'heartbeat late' })
        quiet.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping', message: 'hi' } })
        const healthy = await alpha.waitForType('registry:modules:health:healthy')
        expect(healthy.data).toMatchObject({ name: 'quiet' })
      })

      it('configures a module on another node', async () => {
        const [a, b] = await startCluster(2)
        const ui = await joined(a!, 'ui')
        const worker = await joined(b!, 'worker')
        await ui.waitFor(e => e.type === 'module:announced' && e.data.name === 'worker')
        ui.send({ type: 'ui:configure', data: { moduleName: 'worker', config: { level: 3 } } })
        const configure = await worker.waitForType('module:configure')
        expect(configure.data).toEqual({ config: { level: 3 } })
      })

      it('de-announces the modules of a node that shuts down at once', async () => {
        const [a, b] = await startCluster(2)
        const alpha = await joined(a!, 'alpha')
        await joined(b!, 'beta')
        await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'beta')
        await b!.close()
        const gone = await alpha.waitForType('module:de-announced', NODE_TIMEOUT_MS / 2)
        expect(gone.data).toMatchObject({ name: 'beta', reason: 'server shutdown' })
      })

      it('de-announces the modules of a node gone silent once the node timeout passed', async () => {
        const backplane = connect()
        const [a] = await startCluster(1)
        const b = await startHub({ backplane, cluster: { prefix: a!.server.hub.options.cluster.prefix, nodeTimeoutMs: NODE_TIMEOUT_MS, heartbeatMs: 50 } })
        const alpha = await joined(a!, 'alpha')
        await joined(b, 'beta')
        await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'beta')
        // The node's link goes without a goodbye: it stops talking, as a crashed node would.
        await backplane.close()
        const silentSince = Date.now()
        const gone = await alpha.waitForType('module:de-announced', 5 * NODE_TIMEOUT_MS)
        expect(Date.now() - silentSince).toBeGreaterThanOrEqual(NODE_TIMEOUT_MS / 2)
        expect(gone.data).toMatchObject({ name: 'beta', reason: 'heartbeat expired' })
        expect(a!.server.registry.size).toBe(1)
      })
    })
  })
}
