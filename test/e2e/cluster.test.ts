import type { Buffer } from 'node:buffer'
import type { ChildProcess } from 'node:child_process'
import type { ServerOptions } from '../../src/server.ts'
import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import type { RedisServer } from '../helpers/redis.ts'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import process from 'node:process'
import { beforeEach, describe, expect, it } from 'vitest'
import { createServer } from '../../src/server.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { RawPhoenix, until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'
import { sdkClient, syncListing } from '../helpers/sdk.ts'

let redis: RedisServer

/** Hub nodes in this process, clustered through the test's redis-server by `redisUrl`. */
async function startNodes(count: number, nodeTimeoutMs: number, options: ServerOptions = {}): Promise<RunningHub[]> {
  const hubs: RunningHub[] = []
  for (let i = 0; i < count; i++)
    hubs.push(await startHub({ ...options, redisUrl: redis.url, cluster: { nodeTimeoutMs } }))
  await until(() => hubs.every(hub => hub.server.hub.cluster!.ready && hub.server.hub.cluster!.nodes().length === count - 1), 'the nodes to know each other')
  return hubs
}

/** What `/readyz` answers, with its backplane check. */
async function readyz(hub: RunningHub): Promise<{ status: number, backplane: boolean }> {
  const response = await fetch(`http://127.0.0.1:${hub.port}/readyz`)
  const body = await response.json() as { checks: Record<string, boolean> }
  return { status: response.status, backplane: body.checks.backplane! }
}

const announced = (name: string) => (event: WireEvent) => event.type === 'module:announced' && event.data.name === name
const deannounced = (name: string) => (event: WireEvent) => event.type === 'module:de-announced' && event.data.name === name

/** The module names a peer newly connected to `hub` is given, sorted (duplicates kept). */
async function listing(hub: RunningHub): Promise<string[]> {
  const peer = await RawPeer.connect(hub.url())
  const sync = await peer.waitForType('registry:modules:sync')
  await peer.close()
  return sync.data.modules.map((m: { name: string }) => m.name).sort()
}

/** A hub node in a child process (so it can be SIGKILLed), clustered through the test's Redis. */
async function spawnNode(env: Record<string, string>): Promise<{ child: ChildProcess, port: number }> {
  const child = spawn(process.execPath, ['test/fixtures/cluster-node.mjs'], {
    // Only what the test says: no AUTHENTICATION_TOKEN or PORT leaking in from the environment.
    env: { PATH: process.env.PATH, REDIS_URL: redis.url, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  })
  // The node prints one JSON line once it listens (listhen may print notes before it).
  let output = ''
  while (!/^\{.*\}$/m.test(output)) {
    const [chunk] = await once(child.stdout!, 'data') as [Buffer]
    output += chunk.toString()
  }
  return { child, port: JSON.parse(output.match(/^\{.*\}$/m)![0]).port }
}

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
    const [a, b, c] = await startNodes(3, 2000)
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
    const [a, b] = await startNodes(2, 2000)
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

  it('de-announces the modules of a node killed with SIGKILL on the other nodes, leaving no ghost', async () => {
    const nodeTimeoutMs = 1000
    const [a] = await startNodes(1, nodeTimeoutMs)
    const doomed = await spawnNode({ CLUSTER_NODE_TIMEOUT_MS: String(nodeTimeoutMs) })
    const alpha = sdkClient(a!.url(), 'alpha')
    const victim = await RawPeer.connect(`ws://127.0.0.1:${doomed.port}/ws`)
    await victim.join('victim')
    await alpha.waitFor(announced('victim'))
    expect(await listing(a!)).toEqual(['alpha', 'victim'])

    doomed.child.kill('SIGKILL')
    await once(doomed.child, 'exit')
    const gone = await alpha.waitFor(deannounced('victim'), 4 * nodeTimeoutMs)
    expect(gone.data).toMatchObject({ name: 'victim', reason: 'heartbeat expired' })
    expect(await listing(a!)).toEqual(['alpha'])
    expect(a!.server.hub.cluster!.nodes()).toEqual([])
  })

  it('keeps routing locally while Redis is down, reports not ready, and converges when it returns', async () => {
    const nodeTimeoutMs = 1000
    const [a, b] = await startNodes(2, nodeTimeoutMs)
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

  it('rides out a short Redis outage without dropping anyone, repairing what it missed', async () => {
    const [a, b] = await startNodes(2, 8000)
    const alpha = sdkClient(a!.url(), 'alpha')
    const beta = sdkClient(b!.url(), 'beta')
    await alpha.waitFor(announced('beta'))
    await beta.waitFor(announced('alpha'))

    await redis.kill()
    await until(() => !a!.server.hub.cluster!.ready, 'node a to lose Redis')
    const late = sdkClient(b!.url(), 'late')
    await late.waitFor(syncListing(['late']))
    await redis.start()

    await alpha.waitFor(announced('late'), 10_000)
    await settle(300)
    expect(alpha.ofType('module:de-announced')).toEqual([])
    expect(alpha.ofType('module:announced').map(e => e.data.name).sort()).toEqual(['beta', 'late'])
    expect(await listing(a!)).toEqual(['alpha', 'beta', 'late'])
  })
})
