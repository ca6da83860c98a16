import type { Buffer } from 'node:buffer'
import type { ChildProcess } from 'node:child_process'
import type { ServerOptions } from '../../src/server.ts'
import type { RunningHub, WireEvent } from './hub.ts'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import process from 'node:process'
import { onCleanup, RawPeer, settle, startHub } from './hub.ts'
import { sample } from './metrics.ts'
import { until } from './phoenix.ts'

/** Hub nodes in this process, clustered through the Redis at `redisUrl`. */
export async function startNodes(redisUrl: string, count: number, nodeTimeoutMs: number, options: ServerOptions = {}): Promise<RunningHub[]> {
  const hubs: RunningHub[] = []
  for (let i = 0; i < count; i++)
    hubs.push(await startHub({ ...options, redisUrl, cluster: { nodeTimeoutMs } }))
  await until(() => hubs.every(hub => hub.server.hub.cluster!.ready && hub.server.hub.cluster!.nodes().length === count - 1), 'the nodes to know each other')
  return hubs
}

/** A hub node in a child process (so it can be paused or killed), clustered through the Redis at `redisUrl`. */
export interface NodeProcess {
  child: ChildProcess
  port: number
  /** Its cluster node id. */
  node: string
  url: (path?: string) => string
}

/** Starts `test/fixtures/cluster-node.mjs`, configured by `env` only; killed after the test. */
export async function spawnNode(redisUrl: string, env: Record<string, string> = {}): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['test/fixtures/cluster-node.mjs'], {
    // Only what the test says: no AUTHENTICATION_TOKEN or PORT leaking in from the environment.
    env: { PATH: process.env.PATH, REDIS_URL: redisUrl, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // A paused node would not die of SIGKILL until continued.
      child.kill('SIGCONT')
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
  const { port, node } = JSON.parse(output.match(/^\{.*\}$/m)![0]) as { port: number, node: string }
  return { child, port, node, url: (path = '/ws') => `ws://127.0.0.1:${port}${path}` }
}

/** What `/readyz` answers, with its backplane check. */
export async function readyz(hub: { port: number }): Promise<{ status: number, backplane: boolean }> {
  const response = await fetch(`http://127.0.0.1:${hub.port}/readyz`)
  const body = await response.json() as { checks: Record<string, boolean> }
  return { status: response.status, backplane: body.checks.backplane! }
}

/** The value of one series of a node's `/metrics` (0 when it has no sample yet). */
export async function metric(hub: { port: number }, series: string): Promise<number> {
  const exposition = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
  return sample(exposition, series) ?? 0
}

/** Polls a node's `/metrics` until `series` reaches `value`. */
export async function metricReaches(hub: { port: number }, series: string, value: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = await metric(hub, series)
  while (last < value) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${series} to reach ${value} (it is ${last})`)
    await settle(20)
    last = await metric(hub, series)
  }
}

/** The module names a peer newly connected to the node is given, sorted (duplicates kept). */
export async function listing(hub: { url: (path?: string) => string }): Promise<string[]> {
  const peer = await RawPeer.connect(hub.url())
  const sync = await peer.waitForType('registry:modules:sync')
  await peer.close()
  return sync.data.modules.map((m: { name: string }) => m.name).sort()
}

export const announced = (name: string) => (event: WireEvent) => event.type === 'module:announced' && event.data.name === name
export const deannounced = (name: string) => (event: WireEvent) => event.type === 'module:de-announced' && event.data.name === name
