import { describe, expect, it } from 'vitest'
import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { createModuleCatalog, resolveKnownModules } from '../../src/core/module-catalog.ts'
import { createRegistry } from '../../src/core/registry.ts'
import { createHub } from '../../src/hub.ts'
import { identityOf, joinPeer, nextTurn } from '../helpers/fake-connection.ts'

describe('module catalog', () => {
  const modules = resolveKnownModules([
    { name: 'voice', token: 'voice-token', options: { speed: 2 }, labels: { trust: 'high' } },
    { name: 'brain', required: true },
    { name: 'ears', required: true, token: 'ears-token' },
  ], ['shared'])

  it('binds a peer to the module of its token; unbound peers get unprotected names only', () => {
    const catalog = createModuleCatalog({ modules, registry: createRegistry(), requiredTimeoutMs: 100 })
    expect(catalog.tokens).toEqual(['voice-token', 'ears-token'])
    const voice = {}
    catalog.bind(voice, 'voice-token')
    expect(catalog.refusal(voice, 'voice')).toBeUndefined()
    expect(catalog.refusal(voice, 'brain')?.message).toBe('token not valid for module brain')
    expect(catalog.refusal(voice, 'ears')?.message).toBe('token not valid for module ears')
    // No token presented: the binding stays; another token replaces it.
    catalog.bind(voice, undefined)
    expect(catalog.refusal(voice, 'voice')).toBeUndefined()
    catalog.bind(voice, 'shared')
    expect(catalog.refusal(voice, 'voice')?.code).toBe('module_forbidden')
    expect(catalog.refusal(voice, 'anything')).toBeUndefined()
  })

  it('restricts a peer admitted without a token to one name, never a name with a token of its own', () => {
    const catalog = createModuleCatalog({ modules, registry: createRegistry(), requiredTimeoutMs: 100 })
    const release = {}
    expect(catalog.restrict(release, 'brain')).toBe(true)
    expect(catalog.refusal(release, 'brain')).toBeUndefined()
    expect(catalog.refusal(release, 'other')?.code).toBe('module_forbidden')
    const impostor = {}
    expect(catalog.restrict(impostor, 'voice')).toBe(false)
    expect(catalog.refusal(impostor, 'voice')?.code).toBe('module_forbidden')
  })

  it('merges configured labels over announced ones and hands out options', () => {
    const catalog = createModuleCatalog({ modules, registry: createRegistry(), requiredTimeoutMs: 100 })
    expect(catalog.labelled('voice', identityOf('voice', { trust: 'low', team: 'a' })).labels).toEqual({ trust: 'high', team: 'a' })
    const plain = identityOf('other')
    expect(catalog.labelled('other', plain)).toBe(plain)
    expect(catalog.optionsOf('voice')).toEqual({ speed: 2 })
    expect(catalog.optionsOf('brain')).toBeUndefined()
  })

  it('ready() waits for the required modules and rejects naming those still missing', async () => {
    const registry = createRegistry()
    const catalog = createModuleCatalog({ modules, registry, requiredTimeoutMs: 200 })
    expect(catalog.missing()).toEqual(['brain', 'ears'])
    expect(catalog.readiness.map(([name, check]) => [name, check()])).toEqual([['modules', false]])

    const ready = catalog.ready()
    registry.set({ name: 'brain', identity: identityOf('brain'), peerId: 'p1' })
    registry.set({ name: 'ears', identity: identityOf('ears'), peerId: 'p2', node: 'elsewhere' })
    await expect(ready).resolves.toBeUndefined()

    registry.deletePeer('p2')
    const late = catalog.ready()
    await expect(late).rejects.toThrow('required modules missing after 200 ms: ears')
  })

  it('no required module: always ready, no readiness check', async () => {
    const catalog = createModuleCatalog({ modules: [], registry: createRegistry(), requiredTimeoutMs: 1 })
    expect(catalog.readiness).toEqual([])
    await expect(catalog.ready()).resolves.toBeUndefined()
  })

  it('refuses bad entries naming the field', () => {
    expect(() => resolveKnownModules({ name: 'a' }, [])).toThrow('Invalid modules: {"name":"a"} (expected an array of modules)')
    expect(() => resolveKnownModules([{ name: '' }], [])).toThrow('Invalid modules[0].name: "" (expected a non-empty string)')
    expect(() => resolveKnownModules([{ name: 'a', labels: { k: 1 } }], [])).toThrow('Invalid modules[0].labels.k: 1 (expected a string)')
    expect(() => resolveKnownModules([{ name: 'a', tokn: 'x' }], [])).toThrow('Invalid modules[0].tokn')
    expect(() => resolveKnownModules([{ name: 'a', token: 't' }, { name: 'b', token: 't' }], [])).toThrow('Invalid modules[1].token: "<redacted>" (expected a token no other module nor auth.token has)')
  })
})

describe('required modules across nodes', () => {
  it('a required module announced on another node counts, and is missing again when that node drops it', async () => {
    const bus = createMemoryBus()
    const options = { env: {}, logger: { level: 'silent' as const }, modules: [{ name: 'brain', required: true }], cluster: { prefix: 'catalog' } }
    const a = createHub({ ...options, backplane: createMemoryBackplane(bus) })
    const b = createHub({ ...options, backplane: createMemoryBackplane(bus) })
    try {
      const ready = a.ready()
      const brain = joinPeer(b, 'brain')
      await expect(ready).resolves.toBeUndefined()
      expect(a.catalog.missing()).toEqual([])
      b.disconnect(brain.session)
      for (let turn = 0; turn < 20 && a.catalog.missing().length === 0; turn++)
        await nextTurn()
      expect(a.catalog.missing()).toEqual(['brain'])
    }
    finally {
      await Promise.all([a.close(), b.close()])
    }
  })
})
