import type { Session } from '../../src/core/session.ts'
import { describe, expect, it } from 'vitest'
import { onCleanup, startHub } from '../helpers/hub.ts'
import { eachLimited, moduleKey, ViewPeer } from '../helpers/view.ts'

const PEERS = 400
const STORMING = 300
const SLOW = 8
// A full sync of 400 modules is ~38 KB; the storm's deltas to one peer ~600 frames of ~200 bytes.
const MAX_BUFFERED = 96 * 1024
const FILL = 'x'.repeat(16 * 1024)

async function waitUntil(done: () => boolean, what: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!done()) {
    if (Date.now() > deadline)
      throw new Error(`timed out: ${what()}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

describe('reconnect storm', () => {
  it('converges with every view equal to the registry and no peer closed as a slow consumer', { timeout: 150_000 }, async () => {
    // The fills are the test's instrument, not its subject: no rate limit.
    const hub = await startHub({ limits: { maxBufferedBytes: MAX_BUFFERED, eventsPerSec: 0, bytesPerSec: 0 } })
    const core = hub.server.hub
    let skipped = 0
    let repaired = 0
    core.observers.on('registryDeltasSkipped', (count) => {
      skipped += count
    })
    core.observers.on('registryRepaired', (count) => {
      repaired += count
    })
    const peers = new Map<string, ViewPeer>()
    const closes: number[] = []
    onCleanup(() => {
      for (const peer of peers.values())
        peer.ws.terminate()
    })
    const open = async (name: string): Promise<void> => {
      const peer = new ViewPeer(hub.url(), name)
      peer.ws.on('close', code => closes.push(code))
      peers.set(name, peer)
      await peer.opened
    }
    const registryKeys = (): Set<string> => new Set([...core.registry.entries()].map(moduleKey))
    const converged = (): boolean => {
      const closed = closes.filter(code => code !== 1006)
      if (closed.length > 0)
        throw new Error(`peers closed by the hub: ${closed.join(', ')}`)
      if (core.registry.size !== PEERS)
        return false
      const keys = registryKeys()
      return [...peers.values()].every(peer => peer.sees(keys))
    }
    const behind = (): string => {
      const keys = registryKeys()
      const views = [...peers.values()].filter(peer => !peer.sees(keys))
      return `${keys.size} modules, ${views.length} views differ (${views[0]?.name} sees ${views[0]?.view.size})`
    }

    const names = Array.from({ length: PEERS }, (_, i) => `storm-${i}`)
    await eachLimited(names, 200, open)
    await waitUntil(converged, behind)
    const before = { skipped, repaired }

    // Slow readers: they stop reading and routed events fill their kernel buffers (~4 MB on
    // loopback) until the hub holds bytes for them; from then on the storm's registry traffic
    // alone would take them past the limit.
    const stable = names.slice(0, PEERS - STORMING)
    const sender = peers.get(stable[0]!)!
    const slow = stable.slice(1, 1 + SLOW)
    const sessionOf = (name: string): Session => [...core.peers.values()].find(session => session.module?.name === name)!
    for (const name of slow)
      peers.get(name)!.pause()
    let filling = slow
    while (filling.length > 0) {
      for (const name of filling)
        sender.send({ type: 'storm:fill', route: { destinations: [`module:${name}`] }, data: { pad: FILL } })
      await new Promise(resolve => setTimeout(resolve, 20))
      filling = filling.filter(name => sessionOf(name).connection.buffered!() === 0)
    }

    // The storm: 800 peers drop at once and reconnect at once, while one peer keeps broadcasting.
    let ticks = 0
    const ticker = setInterval(() => sender.send({ type: 'storm:tick', data: { n: ticks++ } }), 50)
    onCleanup(() => clearInterval(ticker))
    const storming = names.slice(PEERS - STORMING)
    for (const name of storming)
      peers.get(name)!.destroy()
    await eachLimited(storming, 250, open)
    for (const name of slow)
      peers.get(name)!.resume()
    await waitUntil(converged, behind)
    clearInterval(ticker)

    expect(closes.filter(code => code !== 1006)).toEqual([])
    expect([...peers.values()].filter(peer => peer.closed !== undefined).map(peer => peer.name)).toEqual([])
    expect(core.peers.size).toBe(PEERS)
    // The storm really put the slow readers behind, and each got a full sync for what it missed.
    expect(skipped).toBeGreaterThan(before.skipped)
    expect(repaired - before.repaired).toBeGreaterThanOrEqual(SLOW)
    // Everyone else kept up and saw every delta.
    const fast = stable.filter(name => !slow.includes(name)).map(name => peers.get(name)!)
    expect(fast.every(peer => peer.deltas >= 2 * STORMING)).toBe(true)
  })
})
