import { readdirSync } from 'node:fs'
import process from 'node:process'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startHub } from '../helpers/hub.ts'
import { eachLimited, moduleKey, ViewPeer } from '../helpers/view.ts'

const CYCLES = 2000
const CONCURRENCY = 20

/** Active handles and requests by kind (sockets, timers, immediates…). */
function resources(): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo())
    counts[kind] = (counts[kind] ?? 0) + 1
  return counts
}

const openFds = (): number => readdirSync('/proc/self/fd').length

/** Whether no kind of resource is above its baseline count. */
function atMost(baseline: Record<string, number>): boolean {
  return Object.entries(resources()).every(([kind, count]) => count <= (baseline[kind] ?? 0))
}

async function until(done: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!done() && Date.now() < deadline)
    await new Promise(resolve => setTimeout(resolve, 50))
  return done()
}

/** One peer's life: connect, authenticate, announce, see itself in a sync, then leave cleanly or drop. */
async function cycle(url: string, i: number): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  const name = `churn-${i}`
  const closed = new Promise(resolve => ws.once('close', resolve))
  ws.on('error', () => {})
  await new Promise(resolve => ws.once('open', resolve))
  const joined = new Promise<void>((resolve) => {
    ws.on('message', (data) => {
      const event = JSON.parse(data.toString()).json
      if (event.type === 'registry:modules:sync' && event.data.modules.some((m: { name: string }) => m.name === name))
        resolve()
    })
  })
  ws.send(JSON.stringify({ json: { type: 'module:authenticate', data: { token: 't' } } }))
  ws.send(JSON.stringify({ json: { type: 'module:announce', data: { name, identity: { plugin: 'churn', instanceId: name } } } }))
  await joined
  if (i % 2 === 0)
    ws.close()
  else
    (ws as unknown as { _socket: { destroy: () => void } })._socket.destroy()
  await closed
}

// Memory is not asserted here (one process, GC timing): `npm run soak` measures its slope over minutes.
describe('connect/disconnect churn', () => {
  it('leaves no peer, module, timer, handle or file descriptor behind', { timeout: 120_000 }, async () => {
    const hub = await startHub({ auth: { token: 't' } })
    const core = hub.server.hub
    // A peer that stays throughout and keeps its view of the registry.
    const watcher = new ViewPeer(hub.url(), 'watcher', { token: 't' })
    await watcher.opened
    await cycle(hub.url(), -1)
    expect(await until(() => core.peers.size === 1 && watcher.view.size === 1)).toBe(true)
    const baseline = { resources: resources(), fds: openFds(), registry: core.registry.size }

    await eachLimited(Array.from({ length: CYCLES }, (_, i) => i), CONCURRENCY, i => cycle(hub.url(), i))

    expect(await until(() => core.peers.size === 1)).toBe(true)
    expect(core.registry.size).toBe(baseline.registry)
    expect(await until(() => watcher.sees(new Set([...core.registry.entries()].map(moduleKey))))).toBe(true)
    expect(await until(() => atMost(baseline.resources)), JSON.stringify({ baseline: baseline.resources, now: resources() })).toBe(true)
    expect(await until(() => openFds() <= baseline.fds), `fds ${baseline.fds} → ${openFds()}`).toBe(true)
  })
})
