import type { ServerOptions } from '../../src/server.ts'
import type { RedisServer } from '../helpers/redis.ts'
import { beforeEach, describe, expect, it } from 'vitest'
import { createServer } from '../../src/server.ts'
import { announced, listing, readyz, startNodes } from '../helpers/cluster.ts'
import { onCleanup, settle } from '../helpers/hub.ts'
import { RawPhoenix } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'
import { sdkClient, syncListing } from '../helpers/sdk.ts'

let redis: RedisServer

describe('cluster options', () => {
  it('stays a single process without REDIS_URL, ready at once', () => {
    const server = createServer({ logger: { level: 'silent' }, env: {} })
    onCleanup(() => server.closeAllPeers())
    expect(server.hub.cluster).toBeUndefined()
    expect(server.hub.readiness.has('backplane')).toBe(false)
  })

  it('refuses a malformed Redis URL and node timings at start-up, naming them', () => {
    const start = (options: ServerOptions) => () => createServer({ logger: { level: 'silent' }, ...options })
    expect(start({ env: { REDIS_URL: 'localhost:6379' } })).toThrow(/Invalid REDIS_URL: "localhost:6379"/)
    expect(start({ env: { REDIS_URL: 'redis://127.0.0.1:1', CLUSTER_NODE_TIMEOUT_MS: 'soon' } })).toThrow(/Invalid CLUSTER_NODE_TIMEOUT_MS/)
    expect(start({ redisUrl: 'redis://127.0.0.1:1', cluster: { nodeTimeoutMs: 1000, heartbeatMs: 1000 } })).toThrow(/Invalid cluster.heartbeatMs/)
  })
})

describe('several hub nodes over one real Redis', () => {
  beforeEach(async () => {
    redis = await startRedis()
    onCleanup(() => redis.kill())
  })

  it('gives real SDK clients on different nodes one registry and routing across nodes, each event once', async () => {
    const [a, b, c] = await startNodes(redis.url, 3, 2000)
    const alpha = sdkClient(a!.url(), 'alpha')
    await alpha.waitFor(syncListing(['alpha']))
    const beta = sdkClient(b!.url(), 'beta', { labels: { role: 'worker' } })
    const gamma = sdkClient(c!.url(), 'gamma')
    await alpha.waitFor(announced('beta'))
    await alpha.waitFor(announced('gamma'))
    await beta.waitFor(announced('gamma'))
    expect(await listing(a!)).toEqual(['alpha', 'beta', 'gamma'])
    expect(await listing(c!)).toEqual(['alpha', 'beta', 'gamma'])
    expect(await readyz(b!)).toEqual({ status: 200, backplane: true })

    alpha.client.send({ type: 'input:text', data: { text: 'hi worker', at: new Date(7) }, route: { destinations: ['label:role=worker'] } } as never)
    const got = await beta.waitFor(e => e.type === 'input:text')
    expect(got.data).toEqual({ text: 'hi worker', at: new Date(7) })
    expect(got.metadata?.source).toEqual({ plugin: 'alpha', instanceId: 'alpha-instance', labels: {} })

    gamma.client.send({ type: 'output:all', data: { n: 1 } } as never)
    await alpha.waitFor(e => e.type === 'output:all')
    await beta.waitFor(e => e.type === 'output:all')
    await settle(200)
    expect([alpha, beta, gamma].map(peer => peer.ofType('input:text').length)).toEqual([0, 1, 0])
    expect([alpha, beta, gamma].map(peer => peer.ofType('output:all').length)).toEqual([1, 1, 0])
    expect(alpha.ofType('module:announced').map(e => e.data.name).sort()).toEqual(['beta', 'gamma'])
  })

  it('routes between an AIRI client on one node and a Phoenix channel on another', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000)
    const alpha = sdkClient(a!.url(), 'alpha')
    const phoenix = await RawPhoenix.connect(b!.url('/socket/websocket?vsn=2.0.0'))
    expect((await phoenix.request(['1', '1', 'plugin:ph', 'phx_join', {}]))[4].status).toBe('ok')
    await alpha.waitFor(announced('ph'))

    alpha.client.send({ type: 'to:phoenix', data: { n: 1 }, route: { destinations: ['module:ph'] } } as never)
    const frame = await phoenix.waitFor(f => f[3] === 'to:phoenix')
    expect(frame).toEqual(['1', null, 'plugin:ph', 'to:phoenix', { n: 1 }])
    phoenix.send(['1', '2', 'plugin:ph', 'to:alpha', { n: 2 }])
    const got = await alpha.waitFor(e => e.type === 'to:alpha')
    expect(got.data).toEqual({ n: 2 })
  })
})
