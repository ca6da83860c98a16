import type { ModuleEntry } from '../types.ts'
import type { IndexName } from './match.ts'

type EntrySet = Set<ModuleEntry>

function addTo<K>(map: Map<K, EntrySet>, key: K, entry: ModuleEntry): void {
  let set = map.get(key)
  if (!set)
    map.set(key, set = new Set())
  set.add(entry)
}

function removeFrom<K>(map: Map<K, EntrySet>, key: K, entry: ModuleEntry): void {
  const set = map.get(key)
  if (set?.delete(entry) && set.size === 0)
    map.delete(key)
}

const EMPTY: ReadonlySet<ModuleEntry> = new Set()

export interface Registry {
  /** Bumped on every change, so observers can tell snapshots apart. */
  readonly revision: number
  readonly size: number
  get: (peerId: string) => ModuleEntry | undefined
  /** Adds or replaces the entry owned by `entry.peerId`; returns the one it replaced. */
  set: (entry: ModuleEntry) => ModuleEntry | undefined
  delete: (peerId: string) => ModuleEntry | undefined
  find: (name: string, index?: number) => ModuleEntry | undefined
  lookup: (index: IndexName, key: string) => ReadonlySet<ModuleEntry>
  withLabel: (key: string, value: string) => ReadonlySet<ModuleEntry>
  entries: () => IterableIterator<ModuleEntry>
}

/**
 * The module table, one entry per announcing peer, with the indexes routing answers
 * destinations from (plugin id, instance id, module name, label key=value).
 */
export function createRegistry(): Registry {
  const byPeer = new Map<string, ModuleEntry>()
  const indexes: Record<IndexName, Map<string, EntrySet>> = {
    plugin: new Map(),
    instance: new Map(),
    module: new Map(),
  }
  const labels = new Map<string, EntrySet>()
  let revision = 0

  const labelKey = (key: string, value: string): string => `${key}\u0000${value}`

  function index(entry: ModuleEntry, update: typeof addTo): void {
    update(indexes.plugin, entry.identity.pluginId, entry)
    update(indexes.instance, entry.identity.instanceId, entry)
    update(indexes.module, entry.name, entry)
    for (const [key, value] of Object.entries(entry.identity.labels))
      update(labels, labelKey(key, value), entry)
  }

  function remove(peerId: string): ModuleEntry | undefined {
    const entry = byPeer.get(peerId)
    if (entry) {
      byPeer.delete(peerId)
      index(entry, removeFrom)
      revision++
    }
    return entry
  }

  return {
    get revision() { return revision },
    get size() { return byPeer.size },
    get: peerId => byPeer.get(peerId),
    set(entry) {
      const previous = remove(entry.peerId)
      byPeer.set(entry.peerId, entry)
      index(entry, addTo)
      revision++
      return previous
    },
    delete: remove,
    find(name, index) {
      for (const entry of indexes.module.get(name) ?? EMPTY) {
        if (index === undefined || entry.index === index)
          return entry
      }
      return undefined
    },
    lookup: (index, key) => indexes[index].get(key) ?? EMPTY,
    withLabel: (key, value) => labels.get(labelKey(key, value)) ?? EMPTY,
    entries: () => byPeer.values(),
  }
}
