import type { PeerInfo } from '../../src/types.ts'
import { describe, expect, it } from 'vitest'
import { compilePolicy } from '../../src/core/policy.ts'

function peer(pluginId?: string, labels: Record<string, string> = {}): PeerInfo {
  return {
    id: pluginId ?? 'anon',
    authenticated: true,
    module: pluginId ? { name: pluginId, peerId: pluginId, identity: { pluginId, instanceId: `${pluginId}-1`, labels } } : undefined,
  }
}

describe('compilePolicy', () => {
  it('is absent when nothing is configured', () => {
    expect(compilePolicy(undefined)).toBeUndefined()
    expect(compilePolicy({})).toBeUndefined()
  })

  it.each([
    // policy, pluginId, labels, allowed
    [{ allowPlugins: ['a'] }, 'a', {}, true],
    [{ allowPlugins: ['a'] }, 'b', {}, false],
    [{ allowPlugins: ['a*'] }, 'abc', {}, true],
    [{ denyPlugins: ['a'] }, 'a', {}, false],
    [{ denyPlugins: ['a'] }, 'b', {}, true],
    [{ allowPlugins: ['a'], denyPlugins: ['a'] }, 'a', {}, false],
    [{ allowLabels: ['env=prod'] }, 'a', { env: 'prod' }, true],
    [{ allowLabels: ['env=prod'] }, 'a', { env: 'dev' }, false],
    [{ allowLabels: ['env=prod', 'team'] }, 'a', { team: 'x' }, true],
    [{ denyLabels: ['env=test'] }, 'a', { env: 'test' }, false],
    [{ denyLabels: ['env=test', 'blocked'] }, 'a', { blocked: '1' }, false],
    [{ denyLabels: ['env=test'] }, 'a', { env: 'prod' }, true],
    [{ allowPlugins: ['a'], denyLabels: ['env=test'] }, 'a', { env: 'test' }, false],
    [{ allowPlugins: ['a'], allowLabels: ['env=prod'] }, 'a', { env: 'dev' }, false],
    [{ allowPlugins: ['a'], allowLabels: ['env=prod'] }, 'a', { env: 'prod' }, true],
    [{ denyLabels: ['!env'] }, 'a', {}, false],
  ] as const)('%j: %s %j → %s', (policy, pluginId, labels, allowed) => {
    expect(compilePolicy(policy as never)!(peer(pluginId, labels))).toBe(allowed)
  })

  it('excludes unannounced peers only when an allow list is set', () => {
    expect(compilePolicy({ allowPlugins: ['a'] })!(peer())).toBe(false)
    expect(compilePolicy({ allowLabels: ['x'] })!(peer())).toBe(false)
    expect(compilePolicy({ denyPlugins: ['a'] })!(peer())).toBe(true)
  })
})
