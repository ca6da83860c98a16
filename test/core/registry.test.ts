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
    expect(registry.delete('p1')).toBe(a)
    expect(registry.revision).toBeGreaterThan(revision)
    expect(registry.size).toBe(0)
    expect(registry.lookup('plugin', 'tg').size).toBe(0)
    expect(registry.withLabel('env', 'prod').size).toBe(0)
  })

  it('replaces the entry a peer owns', () => {
    const registry = createRegistry()
    const first = { name: 'a', peerId: 'p1', identity: { pluginId: 'x', instanceId: '1', labels: {} } }
    const second = { name: 'b', peerId: 'p1', identity: { pluginId: 'y', instanceId: '1', labels: {} } }
    registry.set(first)
    expect(registry.set(second)).toBe(first)
    expect(registry.size).toBe(1)
    expect(registry.lookup('plugin', 'x').size).toBe(0)
    expect([...registry.lookup('plugin', 'y')]).toEqual([second])
  })
})
