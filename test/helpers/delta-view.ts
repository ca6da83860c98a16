import type { RawPeer, WireEvent } from './hub.ts'
import { expect } from 'vitest'

/** A module as delta peers see it (`registry:modules:sync` and `registry:modules:delta` `added`). */
export interface DeltaEntry { peer: string, name: string, index?: number, identity: Record<string, unknown>, healthy: boolean }

export interface DeltaView {
  epoch?: string
  /** -1 before the first sync. */
  revision: number
  modules: Map<string, DeltaEntry>
  deltas: WireEvent[]
}

const keyOf = (module: { peer: string, name: string, index?: number }): string => `${module.peer}/${module.name}/${module.index ?? ''}`

/** Registry traffic of either kind (a delta peer must get none of AIRI's). */
export const isRegistry = (event: WireEvent): boolean => event.type.startsWith('registry:') || /module:(?:de-)?announced$/.test(event.type)

/**
 * The registry view a delta client builds from what it received after its last
 * `module:authenticated` (starting from `since` when it asked to recover): a sync replaces it, a
 * delta edits it and must start at the revision the view is at.
 */
export function viewOf(peer: RawPeer, since?: DeltaView): DeltaView {
  const view: DeltaView = { epoch: since?.epoch, revision: since?.revision ?? -1, modules: new Map(since?.modules), deltas: [] }
  const start = peer.received.findLastIndex(event => event.type === 'module:authenticated')
  for (const event of peer.received.slice(start + 1)) {
    if (event.type === 'registry:modules:sync') {
      view.modules = new Map(event.data.modules.map((module: DeltaEntry) => [keyOf(module), module]))
    }
    else if (event.type === 'registry:modules:delta') {
      expect(event.data.from, 'a delta starts where the view is').toBe(view.revision)
      expect(event.data.epoch).toBe(view.epoch)
      view.deltas.push(event)
      for (const key of event.data.removed)
        view.modules.delete(keyOf(key))
      for (const entry of event.data.added)
        view.modules.set(keyOf(entry), entry)
      for (const change of event.data.health)
        view.modules.get(keyOf(change))!.healthy = change.healthy
    }
    else {
      expect(isRegistry(event), `a delta peer gets no ${event.type}`).toBe(false)
      continue
    }
    view.epoch = event.data.epoch
    view.revision = event.data.revision
  }
  return view
}

/** The module names in the peer's view, sorted. */
export const names = (peer: RawPeer): string[] => [...viewOf(peer).modules.values()].map(entry => entry.name).sort()
