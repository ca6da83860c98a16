import { describe, expect, it } from 'vitest'
import { createRegistry } from '../../src/core/registry.ts'

describe('registry', () => {
  it('indexes entries and drops them from every index on removal', () => {
    const registry = createRegistry()
    const a = { name: 'chat', index: 0, peerId: 'p1', identity: { pluginId: 'tg', instanceId: 'tg-1', labels: { env: 'prod' } } }
    registry.set(a)
    expect(registry.size).toBe(1)
    expect([...registry.lookup('plugin', 'tg')]).toEqual([a])
    expect([...registry.lookup('module', 'chat')]).toEqual([a])
    expect([...registry.withLabel('env', 'prod')]).toEqual([a])
    expect(registry.find('chat', 0)).toBe(a)
    expect(registry.find('chat', 1)).toBeUndefined()
    expect(registry.find('chat')).toBe(a)

    const revision = registry.revision
    expect(registry.deletePeer('p1')).toEqual([a])
    expect(registry.revision).toBeGreaterThan(revision)
    expect(registry.size).toBe(0)
    expect(registry.lookup('plugin', 'tg').size).toBe(0)
    expect(registry.withLabel('env', 'prod').size).toBe(0)
  })

  it('replaces the entry a peer owns under the same name and index, and keeps its others', () => {
    const registry = createRegistry()
    const first = { name: 'a', peerId: 'p1', identity: { pluginId: 'x', instanceId: '1', labels: {} } }
    const second = { name: 'a', peerId: 'p1', identity: { pluginId: 'y', instanceId: '1', labels: {} } }
    const other = { name: 'b', peerId: 'p1', identity: { pluginId: 'x', instanceId: '2', labels: {} } }
    const elsewhere = { name: 'a', peerId: 'p2', identity: { pluginId: 'z', instanceId: '3', labels: {} } }
    registry.set(first)
    registry.set(other)
    registry.set(elsewhere)
    expect(registry.set(second)).toBe(first)
    expect(registry.size).toBe(3)
    expect([...registry.lookup('plugin', 'x')]).toEqual([other])
    expect([...registry.lookup('plugin', 'y')]).toEqual([second])
    expect(registry.ofPeer('p1')).toEqual([other, second])
    expect(registry.get('p1')).toBe(other)
    expect(registry.delete(other)).toBe(true)
    expect(registry.delete(other)).toBe(false)
    expect(registry.deletePeer('p1')).toEqual([second])
    expect([...registry.entries()]).toEqual([elsewhere])
  })
})
