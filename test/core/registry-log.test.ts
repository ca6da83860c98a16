import type { ModuleEntry } from '../../src/types.ts'
import { describe, expect, it } from 'vitest'
import { createRegistryLog } from '../../src/core/registry-log.ts'

const entry = (name: string, peerId = name, label = ''): ModuleEntry => ({ name, peerId, identity: { pluginId: name, instanceId: name, labels: { label } } })
const names = (entries: ModuleEntry[]): string[] => entries.map(e => e.name).sort()

describe('createRegistryLog', () => {
  it('has a random epoch and counts every change as a revision', () => {
    const log = createRegistryLog(8)
    const other = createRegistryLog(8)
    expect(log.epoch).not.toBe(other.epoch)
    log.append({ kind: 'added', entry: entry('a') })
    log.append({ kind: 'health', entry: entry('a'), healthy: false })
    expect(log.revision).toBe(2)
    expect(log.diffSince(2)).toEqual({ added: [], removed: [], health: [] })
  })

  it('nets the changes since a revision: removed before, added after, health of what stayed', () => {
    const log = createRegistryLog(16)
    const [a, b, c] = [entry('a'), entry('b'), entry('c')]
    for (const e of [a, b, c])
      log.append({ kind: 'added', entry: e })
    const since = log.revision
    // a: replaced (removed, then added anew); b: removed; c: unhealthy then healthy again; d: added, then gone.
    const a2 = entry('a', 'a', 'new')
    const d = entry('d')
    log.append({ kind: 'removed', entry: a })
    log.append({ kind: 'added', entry: a2 })
    log.append({ kind: 'removed', entry: b })
    log.append({ kind: 'health', entry: c, healthy: false })
    log.append({ kind: 'added', entry: d })
    log.append({ kind: 'health', entry: d, healthy: false })
    log.append({ kind: 'removed', entry: d })
    log.append({ kind: 'health', entry: c, healthy: true })
    const diff = log.diffSince(since)!
    expect(diff.removed).toEqual([a, b])
    expect(diff.added).toEqual([a2])
    expect(diff.health).toEqual([{ entry: c, healthy: true }])
    // From the start: only what is there now, added.
    expect(names(log.diffSince(0)!.added)).toEqual(['a', 'c'])
    expect(log.diffSince(0)!.removed).toEqual([])
  })

  it('tells modules of one name apart by peer', () => {
    const log = createRegistryLog(8)
    const [one, two] = [entry('twin', 'p1'), entry('twin', 'p2')]
    log.append({ kind: 'added', entry: one })
    log.append({ kind: 'added', entry: two })
    log.append({ kind: 'removed', entry: one })
    expect(log.diffSince(0)!.added).toEqual([two])
  })

  it('answers undefined for a revision older than it holds, or one it never reached', () => {
    const log = createRegistryLog(4)
    for (let i = 0; i < 6; i++)
      log.append({ kind: 'added', entry: entry(`m${i}`) })
    expect(log.diffSince(1)).toBeUndefined()
    expect(names(log.diffSince(2)!.added)).toEqual(['m2', 'm3', 'm4', 'm5'])
    expect(log.diffSince(7)).toBeUndefined()
    expect(log.diffSince(-1)).toBeUndefined()
    expect(log.diffSince(2.5)).toBeUndefined()
    const young = createRegistryLog(4)
    young.append({ kind: 'added', entry: entry('m') })
    expect(young.diffSince(-1)).toBeUndefined()
  })
})
