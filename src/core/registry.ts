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
  /** The first module a peer owns. */
  get: (peerId: string) => ModuleEntry | undefined
  /** Every module a peer owns, oldest first. */
  ofPeer: (peerId: string) => readonly ModuleEntry[]
  /** Adds `entry`, or replaces the one its peer owns under the same name and index (returned). */
  set: (entry: ModuleEntry) => ModuleEntry | undefined
  /** Removes one entry; false if it was not there. */
  delete: (entry: ModuleEntry) => boolean
  /** Removes every module a peer owns; returns them. */
  deletePeer: (peerId: string) => ModuleEntry[]
  /** When this node put the entry in its table (ms since the epoch). */
  since: (entry: ModuleEntry) => number | undefined
  find: (name: string, index?: number) => ModuleEntry | undefined
  lookup: (index: IndexName, key: string) => ReadonlySet<ModuleEntry>
  withLabel: (key: string, value: string) => ReadonlySet<ModuleEntry>
  entries: () => IterableIterator<ModuleEntry>
}

/**
 * The module table: each peer owns its modules, keyed within it by (name, index), with the
 * indexes routing answers destinations from (plugin id, instance id, module name, label
 * key=value).
 */
export function createRegistry({ onChange }: { /** After every change (a live view redraws). */ onChange?: () => void } = {}): Registry {
  const all = new Set<ModuleEntry>()
  const byPeer = new Map<string, ModuleEntry[]>()
  const indexes: Record<IndexName, Map<string, EntrySet>> = {
    plugin: new Map(),
    instance: new Map(),
    module: new Map(),
  }
  const labels = new Map<string, EntrySet>()
  const added = new WeakMap<ModuleEntry, number>()
  let revision = 0

  const labelKey = (key: string, value: string): string => `${key}\u0000${value}`

  function index(entry: ModuleEntry, update: typeof addTo): void {
    update(indexes.plugin, entry.identity.pluginId, entry)
    update(indexes.instance, entry.identity.instanceId, entry)
    update(indexes.module, entry.name, entry)
    for (const [key, value] of Object.entries(entry.identity.labels))
      update(labels, labelKey(key, value), entry)
  }

  function remove(entry: ModuleEntry): boolean {
    if (!all.delete(entry))
      return false
    const owned = byPeer.get(entry.peerId)!.filter(other => other !== entry)
    if (owned.length === 0)
      byPeer.delete(entry.peerId)
    else
      byPeer.set(entry.peerId, owned)
    index(entry, removeFrom)
    revision++
    onChange?.()
    return true
  }

  return {
    get revision() { return revision },
    get size() { return all.size },
    get: peerId => byPeer.get(peerId)?.[0],
    ofPeer: peerId => byPeer.get(peerId) ?? [],
    set(entry) {
      const owned = byPeer.get(entry.peerId) ?? []
      const previous = owned.find(other => other.name === entry.name && other.index === entry.index)
      if (previous)
        remove(previous)
      byPeer.set(entry.peerId, [...byPeer.get(entry.peerId) ?? [], entry])
      all.add(entry)
      added.set(entry, Date.now())
      index(entry, addTo)
      revision++
      onChange?.()
      return previous
    },
    delete: remove,
    deletePeer(peerId) {
      const owned = [...byPeer.get(peerId) ?? []]
      for (const entry of owned)
        remove(entry)
      return owned
    },
    since: entry => added.get(entry),
    find(name, index) {
      for (const entry of indexes.module.get(name) ?? EMPTY) {
        if (index === undefined || entry.index === index)
          return entry
      }
      return undefined
    },
    lookup: (index, key) => indexes[index].get(key) ?? EMPTY,
    withLabel: (key, value) => labels.get(labelKey(key, value)) ?? EMPTY,
    entries: () => all.values(),
  }
}
