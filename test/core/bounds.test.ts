import { describe, expect, it } from 'vitest'
import { checkAnnouncement, checkData, checkRoute } from '../../src/core/bounds.ts'
import { checkSuperjsonMeta, MAX_SUPERJSON_REFERENCES } from '../../src/core/event.ts'
import { resolveHubOptions } from '../../src/options.ts'

const { limits } = resolveHubOptions({ env: {} })

function nested(depth: number): unknown {
  let value: unknown = {}
  for (let i = 1; i < depth; i++)
    value = i % 2 ? [value] : { v: value }
  return value
}

describe('checkData', () => {
  it('measures nesting without recursion', () => {
    expect(checkData(nested(64), 64, Infinity)).toBeUndefined()
    expect(checkData(nested(65), 64, Infinity)).toBe('nesting depth')
    expect(checkData(nested(200_000), 64, Infinity)).toBe('nesting depth')
    expect(checkData('text', 0, Infinity)).toBeUndefined()
  })

  it('refuses cycles and shared parts that expand past the size of a frame', () => {
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    expect(checkData(cycle, 64, Infinity)).toBe('nesting depth')
    // 2^40 leaves once expanded, from 40 objects.
    let shared: unknown = { leaf: 'x'.repeat(10) }
    for (let i = 0; i < 40; i++)
      shared = { a: shared, b: shared }
    expect(checkData(shared, 64, 1024 * 1024)).toBe('data size')
    const once = { a: 1 }
    expect(checkData({ x: once, y: once }, 64, 1024)).toBeUndefined()
  })

  it('walks Maps and Sets, and refuses prototype keys only when strict', () => {
    expect(checkData(new Map([['k', nested(70)]]), 64, Infinity)).toBe('nesting depth')
    expect(checkData(new Set([nested(70)]), 64, Infinity)).toBe('nesting depth')
    const hostile = JSON.parse('{"__proto__":{"x":1},"constructor":{"prototype":{}}}')
    expect(checkData(hostile, 64, Infinity)).toBeUndefined()
    expect(checkData(hostile, 64, Infinity, true)).toBe('prototype key')
  })
})

describe('checkRoute', () => {
  const leaf = { type: 'module', modules: ['a'] }
  function deep(depth: number): unknown {
    let expression: unknown = leaf
    for (let i = 1; i < depth; i++)
      expression = { type: i % 2 ? 'and' : 'or', [i % 2 ? 'all' : 'any']: [expression] }
    return expression
  }

  it('accepts what real clients send', () => {
    expect(checkRoute(['*', 'plugin:x', { type: 'label', selectors: ['env=prod'] }, deep(8)], limits)).toBeUndefined()
    expect(checkRoute(undefined, limits)).toBeUndefined()
    expect(checkRoute('not a list', limits)).toBeUndefined()
  })

  it.each([
    ['destinations', Array.from({ length: 65 }, () => 'a')],
    ['destination length', ['x'.repeat(257)]],
    ['destination length', [{ type: 'glob', glob: 'x'.repeat(257) }]],
    ['destination length', [{ type: 'ids', ids: ['x'.repeat(257)] }]],
    ['expression depth', [deep(9)]],
    ['expression depth', [deep(5000)]],
    ['route items', [{ type: 'or', any: Array.from({ length: 20_000 }, () => leaf) }]],
    ['route items', [{ type: 'label', selectors: Array.from({ length: 300 }, () => 'k') }]],
    ['route items', ['*a*', `*${'a'.repeat(254)}`]],
  ])('refuses %s', (what, destinations) => {
    expect(checkRoute(destinations, limits)).toBe(what)
  })
})

describe('checkAnnouncement', () => {
  const identity = { pluginId: 'p', instanceId: 'i', labels: { env: 'prod' } }
  it.each([
    [undefined, 'name', identity],
    ['module name', 'n'.repeat(257), identity],
    ['identity', 'name', { ...identity, pluginId: 'p'.repeat(257) }],
    ['identity', 'name', { ...identity, version: 'v'.repeat(257) }],
    ['labels', 'name', { ...identity, labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }],
    ['labels', 'name', { ...identity, labels: { k: 'v'.repeat(257) } }],
  ])('%s', (what, name, identity) => {
    expect(checkAnnouncement(name, identity, limits)).toBe(what)
  })
})

describe('checkSuperjsonMeta', () => {
  it('accepts what superjson emits', () => {
    expect(checkSuperjsonMeta({ values: { 'data.at': ['Date'], 'data.s': ['set', { 0: ['Date'] }] } })).toBeUndefined()
    expect(checkSuperjsonMeta({ referentialEqualities: { 'data.a': ['data.b'] } })).toBeUndefined()
    expect(checkSuperjsonMeta(undefined)).toBeUndefined()
  })

  it('refuses a values tree superjson would walk until its stack overflows', () => {
    expect(checkSuperjsonMeta({ values: { 'data.x': ['symbol', 'nope'] } })).toBe('malformed')
    expect(checkSuperjsonMeta({ values: 'Date' })).toBe('malformed')
    expect(checkSuperjsonMeta({ values: { 'data.x': [5] } })).toBe('malformed')
    expect(checkSuperjsonMeta({ values: { 'data.x': [['class', 'A'], { y: ['Date'] }] } })).toBeUndefined()
    expect(checkSuperjsonMeta({ values: ['Date'] })).toBeUndefined()
  })

  it('refuses paths through a built Map or Set, and many references', () => {
    expect(checkSuperjsonMeta({ values: { 'data.s': ['set'], 'data.s.5': ['Date'] } })).toBe('superjson paths')
    expect(checkSuperjsonMeta({ values: { 'data.s': ['map'], 'data': { 's.5': ['Date'] } } })).toBe('superjson paths')
    expect(checkSuperjsonMeta({ values: { 'data.s': ['set'] }, referentialEqualities: { 'data.o': ['data.s.9'] } })).toBe('superjson paths')
    const targets = Array.from({ length: MAX_SUPERJSON_REFERENCES + 1 }, (_, i) => `data.x${i}`)
    expect(checkSuperjsonMeta({ referentialEqualities: { 'data.o': targets } })).toBe('superjson references')
    expect(checkSuperjsonMeta({ referentialEqualities: [targets] })).toBe('superjson references')
  })
})
