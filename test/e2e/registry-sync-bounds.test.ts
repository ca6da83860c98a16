import type { HubEvent } from '../../src/types.ts'
import { describe, expect, it, vi } from 'vitest'
import { airiCurrentEncoder, airiEncoder } from '../../src/protocol/airi.ts'
import { metric } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'

const MODULES = 400
// Small enough that the attacker's unsent syncs pass it many times over.
const MAX_BUFFERED = 256 * 1024
// More syncs than loopback socket buffers take in (each is about 100 kB), so the hub must hold the rest.
const REPEATS = 150

/** A peer of `MODULES` modules with long labels: a registry whose full sync is about 100 kB. */
async function bigRegistry(url: string): Promise<RawPeer> {
  const owner = await RawPeer.connect(url)
  for (let i = 0; i < MODULES; i++)
    owner.send({ type: 'extension:module:announce', data: { name: `module-${i}`, identity: { id: `instance-${i}`, extension: { id: `plugin-${i}` }, labels: { note: 'x'.repeat(160) } } } })
  await owner.waitFor(event => event.type === 'extension:module:announced' && event.data.name === `module-${MODULES - 1}`)
  return owner
}

describe('registry syncs to a peer that does not read', () => {
  it('are held past the lagging backlog, then one sync repairs the peer once it reads again', async () => {
    // No rate limit: the hub's memory must be bounded by the backlog, not by how fast a peer may send.
    const hub = await startHub({ limits: { maxModulesPerPeer: MODULES, maxBufferedBytes: MAX_BUFFERED, eventsPerSec: 0, bytesPerSec: 0 } })
    const owner = await bigRegistry(hub.url())
    const attacker = await RawPeer.connect(hub.url())
    await attacker.join('same')
    const sessionOf = (): { connection: { buffered: () => number } } => [...hub.server.hub.peers.values()].find(session => session.modules.some(module => module.name === 'same')) as never
    const syncBytes = attacker.frames.at(-1)!.length
    expect(syncBytes).toBeGreaterThan(80_000)

    // Every re-announce of the same module asks for a full sync; the attacker reads none of them.
    ;(attacker.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    let mostWaiting = 0
    for (let i = 0; i < REPEATS; i++) {
      attacker.send({ type: 'module:announce', data: { name: 'same', identity: { plugin: 'same', instanceId: 'same-1' } } })
      // A routed event after it: once the owner has it, the hub has handled the re-announce and ended its turn.
      attacker.send({ type: 'mark', data: { i }, route: { destinations: ['module:module-0'] } })
      await owner.waitFor(event => event.type === 'mark' && event.data.i === i)
      mostWaiting = Math.max(mostWaiting, sessionOf().connection.buffered())
    }

    // What the hub holds for it stays within the lagging backlog (half of maxBufferedBytes) and one sync.
    expect(mostWaiting).toBeLessThanOrEqual(MAX_BUFFERED / 2 + syncBytes)
    expect(await metric(hub, 'hub_registry_deltas_skipped_total')).toBeGreaterThan(0)

    // Reading again, it is repaired by one full sync of the whole registry.
    const repairs = await metric(hub, 'hub_registry_repairs_total')
    ;(attacker.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
    await expect.poll(() => metric(hub, 'hub_registry_repairs_total')).toBeGreaterThan(repairs)
    const lastSync = await attacker.waitFor(event => event.type === 'registry:modules:sync' && event.data.modules.length === MODULES + 1)
    expect(lastSync.data.modules.map((module: { name: string }) => module.name)).toContain('same')
    expect(attacker.closed).toBeUndefined()
  })
})

describe('registry syncs of one revision', () => {
  it('are encoded once per protocol, however many turns their peers connect in', async () => {
    // The hub runs in this process: its AIRI encoders are these objects.
    const syncsEncoded = (encoder: typeof airiEncoder): () => number => {
      const spy = vi.spyOn(encoder, 'encode')
      onCleanup(() => spy.mockRestore())
      return () => spy.mock.calls.filter(([event]: [HubEvent]) => event.type === 'registry:modules:sync').length
    }
    const legacy = syncsEncoded(airiEncoder)
    const current = syncsEncoded(airiCurrentEncoder)
    const hub = await startHub()
    const owner = await RawPeer.connect(hub.url())
    await owner.join('owner')
    // The owner's own sync of this revision was encoded for 0.8.4 peers already.
    const legacyBefore = legacy()
    expect(legacyBefore).toBeGreaterThan(0)

    // Four 0.8.4 peers and three delta peers, one after the other: each sync leaves in a turn of its own.
    const frames: string[] = []
    for (let i = 0; i < 4; i++) {
      const peer = await RawPeer.connect(hub.url())
      await peer.waitForType('registry:modules:sync')
      frames.push(peer.frames.find(frame => frame.includes('registry:modules:sync'))!)
    }
    for (let i = 0; i < 3; i++) {
      const peer = await RawPeer.connect(hub.url('/ws?registry=delta'))
      const sync = await peer.waitForType('registry:modules:sync')
      expect(sync.data.modules.map((module: { name: string }) => module.name)).toEqual(['owner'])
    }
    expect(new Set(frames).size).toBe(1)
    expect(frames[0]).toContain('"owner"')
    expect([legacy() - legacyBefore, current()]).toEqual([0, 1])

    // A change is a new revision: the next sync is encoded again, and lists it.
    const late = await RawPeer.connect(hub.url())
    await late.join('late')
    const next = await RawPeer.connect(hub.url())
    const sync = await next.waitForType('registry:modules:sync')
    expect(sync.data.modules.map((module: { name: string }) => module.name).sort()).toEqual(['late', 'owner'])
    expect(legacy()).toBeGreaterThan(legacyBefore)
  })
})
