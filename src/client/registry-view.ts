import type * as v from 'valibot'
import type { Delta, WireModuleEntry } from './wire.ts'

/** One module in the client's view of the hub's registry. */
export interface ModuleEntry {
  /** The module's name as announced. */
  name: string
  /** Its index, when several instances of the module are numbered. */
  index?: number
  /** The peer holding it (a `peer:<id>` destination); a hub without the delta capability does not say. */
  peer?: string
  /** The identity as the hub renders it (its own announced shape, or AIRI 0.8.4's flat one). */
  identity: Record<string, unknown>
  /** False while the hub has not heard from its peer for a heartbeat timeout. */
  healthy: boolean
}

/** What one registry update changed; `onModules` listeners get it only when something did. */
export interface ModulesChange {
  /** Entries new to the view. */
  added: ModuleEntry[]
  /** Entries gone from the view (as they were). */
  removed: ModuleEntry[]
  /** Entries still there whose health or identity changed (the new entry). */
  updated: ModuleEntry[]
}

/** Where a view stands in a hub node's registry: that node's `epoch` (one per start) and revision. */
export interface RegistryPosition {
  /** The hub node's start, as it names it. */
  epoch: string
  /** The registry's revision on that node. */
  revision: number
}

/** The key of a module in `client.modules`: its name, `#index` when it has one, `@peer` when the hub names its peer. */
export function moduleKey(module: { name: string, index?: number, peer?: string }): string {
  return `${module.name}${module.index === undefined ? '' : `#${module.index}`}${module.peer === undefined ? '' : `@${module.peer}`}`
}

type Wire = WireModuleEntry

function toEntry(module: Wire, healthy = true): ModuleEntry {
  // What the delta capability sends is an entry already (parsed for this client alone): keep it.
  if (module.identity !== undefined && module.healthy !== undefined)
    return module as ModuleEntry
  const entry: ModuleEntry = { name: module.name, identity: module.identity ?? {}, healthy: module.healthy ?? healthy }
  if (module.index !== undefined)
    entry.index = module.index
  if (module.peer !== undefined)
    entry.peer = module.peer
  return entry
}

function sameEntry(a: ModuleEntry, b: ModuleEntry): boolean {
  return a.healthy === b.healthy && JSON.stringify(a.identity) === JSON.stringify(b.identity)
}

/** A live copy of the hub's registry, fed by full syncs, revisioned deltas or AIRI's per-change events. */
export interface RegistryView {
  readonly modules: ReadonlyMap<string, ModuleEntry>
  /** The last revision applied (delta mode only), sent back as `since` when reconnecting. */
  readonly position: RegistryPosition | undefined
  /** A full sync replaces the view; only real differences are reported. */
  replace: (modules: Wire[], position?: RegistryPosition) => ModulesChange
  /** The first module of that name (and index), whichever peer holds it. */
  find: (name: string, index?: number) => ModuleEntry | undefined
  /** A delta on top of `position`; `gap` when it does not apply there (the caller asks again from `position`). */
  apply: (delta: v.InferOutput<typeof Delta>) => ModulesChange | 'gap'
  announced: (module: Wire) => ModulesChange
  deannounced: (module: Wire) => ModulesChange
  health: (module: Wire, healthy: boolean) => ModulesChange
}

/** Creates an empty view. */
export function createRegistryView(): RegistryView {
  const modules = new Map<string, ModuleEntry>()
  let position: RegistryPosition | undefined

  function change(): ModulesChange {
    return { added: [], removed: [], updated: [] }
  }

  function put(entry: ModuleEntry, into: ModulesChange, key = moduleKey(entry)): void {
    const old = modules.get(key)
    modules.set(key, entry)
    if (!old)
      into.added.push(entry)
    else if (!sameEntry(old, entry))
      into.updated.push(entry)
  }

  function remove(key: string, into: ModulesChange): void {
    const old = modules.get(key)
    if (old) {
      modules.delete(key)
      into.removed.push(old)
    }
  }

  function setHealth(key: string, healthy: boolean, into: ModulesChange): void {
    const old = modules.get(key)
    if (old && old.healthy !== healthy)
      put({ ...old, healthy }, into, key)
  }

  return {
    modules,
    get position() {
      return position
    },
    replace(list, at) {
      const result = change()
      const stale = new Set(modules.keys())
      for (const module of list) {
        const entry = toEntry(module)
        const key = moduleKey(entry)
        stale.delete(key)
        put(entry, result, key)
      }
      for (const key of stale)
        remove(key, result)
      position = at
      return result
    },
    find(name, index) {
      for (const entry of modules.values()) {
        if (entry.name === name && entry.index === index)
          return entry
      }
      return undefined
    },
    apply(delta) {
      if (!position || position.epoch !== delta.epoch || position.revision !== delta.from)
        return 'gap'
      const result = change()
      for (const key of delta.removed)
        remove(moduleKey(key), result)
      for (const module of delta.added)
        put(toEntry(module), result)
      for (const module of delta.health)
        setHealth(moduleKey(module), module.healthy, result)
      position = { epoch: delta.epoch, revision: delta.revision }
      return result
    },
    announced(module) {
      const result = change()
      put(toEntry(module), result)
      return result
    },
    deannounced(module) {
      const result = change()
      remove(moduleKey(module), result)
      return result
    },
    health(module, healthy) {
      const result = change()
      setHealth(moduleKey(module), healthy, result)
      return result
    },
  }
}

/** True when a change holds nothing. */
export function isEmptyChange(change: ModulesChange): boolean {
  return change.added.length === 0 && change.removed.length === 0 && change.updated.length === 0
}
