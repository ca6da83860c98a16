import type { ModuleEntry } from '../types.ts'
import { nanoid } from 'nanoid'

/** One change of the registry as delta peers learn it. */
export type RegistryChange
  = | { kind: 'added', entry: ModuleEntry }
    | { kind: 'removed', entry: ModuleEntry }
    | { kind: 'health', entry: ModuleEntry, healthy: boolean }

/** What changed between two revisions, net: apply `removed`, then `added`, then `health`. */
export interface RegistryDiff {
  /** Entries there now that were added (or replaced) since. */
  added: ModuleEntry[]
  /** Entries there before that were removed (or replaced) since. */
  removed: ModuleEntry[]
  /** Entries there before and now whose health changed since, with their last state. */
  health: { entry: ModuleEntry, healthy: boolean }[]
}

export interface RegistryLog {
  /** Made at creation: a revision means nothing under another node's (or a restarted node's) epoch. */
  readonly epoch: string
  /** Bumped by every change. */
  readonly revision: number
  append: (change: RegistryChange) => void
  /** Whether the log holds every change after `revision` (cheap: no diff is made). */
  holds: (revision: number) => boolean
  /** The changes after `revision` up to now, net; undefined when the log no longer holds them all. */
  diffSince: (revision: number) => RegistryDiff | undefined
}

/** Entries are told apart by owner, name and index: a replaced module is the same key. */
const keyOf = (entry: ModuleEntry): string => `${entry.peerId}\u0000${entry.name}\u0000${entry.index ?? ''}`

/**
 * The last `capacity` registry changes by revision (a ring): what a delta peer missed since a
 * revision it names, while the log still holds it; older gaps need a full sync.
 */
export function createRegistryLog(capacity: number): RegistryLog {
  const ring: RegistryChange[] = Array.from({ length: capacity })
  const epoch = nanoid()
  let revision = 0

  const holds = (since: number): boolean => Number.isSafeInteger(since) && since >= 0 && since <= revision && revision - since <= capacity

  function diffSince(since: number): RegistryDiff | undefined {
    if (!holds(since))
      return undefined
    // Per key: whether it was there before the first change (a first change that is not an add),
    // whether it was removed, added, or changed health, and its last entry and health.
    const keys = new Map<string, { before: boolean, entry: ModuleEntry, removed?: ModuleEntry, added?: ModuleEntry, health?: boolean }>()
    for (let r = since + 1; r <= revision; r++) {
      const change = ring[r % capacity]!
      const key = keyOf(change.entry)
      let state = keys.get(key)
      if (!state)
        keys.set(key, state = { before: change.kind !== 'added', entry: change.entry })
      state.entry = change.entry
      if (change.kind === 'added') {
        state.added = change.entry
        state.health = undefined
      }
      else if (change.kind === 'removed') {
        if (state.before)
          state.removed ??= change.entry
        state.added = undefined
        state.health = undefined
      }
      else {
        state.health = change.healthy
      }
    }
    const diff: RegistryDiff = { added: [], removed: [], health: [] }
    for (const { entry, removed, added, health } of keys.values()) {
      if (removed)
        diff.removed.push(removed)
      if (added)
        diff.added.push(added)
      else if (health !== undefined && !removed)
        diff.health.push({ entry, healthy: health })
    }
    return diff
  }

  return {
    epoch,
    get revision() { return revision },
    append(change) {
      revision++
      ring[revision % capacity] = change
    },
    holds,
    diffSince,
  }
}
