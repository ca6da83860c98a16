import type { TargetPredicate } from '../../src/core/match.ts'
import type { ModuleEntry } from '../../src/types.ts'
import { describe, expect, it } from 'vitest'
import { compileDestination, compileExpression, compileGlob, matchesLabel, parseLabelSelector } from '../../src/core/match.ts'

function entry(name: string, pluginId: string, instanceId: string, labels: Record<string, string> = {}, peerId = `${name}-peer`): ModuleEntry {
  return { name, peerId, identity: { pluginId, instanceId, labels } }
}

/** A predicate's verdict on one module, its peer known by id and aliases. */
function on(test: TargetPredicate, module: ModuleEntry, aliases?: string[]): boolean {
  return test({ id: module.peerId, authenticated: true, aliases: aliases && new Set(aliases) }, module)
}

describe('compileGlob', () => {
  it.each([
    ['*', 'anything', true],
    ['*', '', true],
    ['tele*', 'telegram-bot', true],
    ['tele*', 'xtelegram', false],
    ['*bot', 'telegram-bot', true],
    ['*bot', 'telegram-bots', false],
    ['a?c', 'abc', true],
    ['a?c', 'ac', false],
    ['a?c', 'abbc', false],
    ['a.c', 'abc', false],
    ['a.c', 'a.c', true],
    ['a+b', 'a+b', true],
    ['a+b', 'aab', false],
    ['(x)', '(x)', true],
    ['[ab]', 'a', false],
    ['[ab]', '[ab]', true],
    ['a\\b', 'a\\b', true],
    ['$^', '$^', true],
    ['exact', 'exact', true],
    ['exact', 'exactly', false],
    ['*-*', 'a-b', true],
    ['*-*', 'ab', false],
    ['ü*', 'über', true],
    ['?', '😀', true],
    ['a*😀*b', 'ax😀yb', true],
    ['??', '😀😀', true],
    ['**a**', 'xay', true],
    ['a**', 'a', true],
    ['*?', '', false],
    ['a*b*c', 'abbbcbc', true],
    ['a*b*c', 'abbbcbd', false],
    ['*\n*', 'x\ny', true],
    ['.*', 'x', false],
    ['ab*ba', 'aba', false],
    ['ab*ba', 'abba', true],
    ['a*?b?*c', 'aXbYc', true],
    ['a*?b?*c', 'abc', false],
    ['*x?z*', 'xxyxz', false],
    ['*x?z*', 'axyzb', true],
    ['*😀?*', 'a😀😀', true],
    ['*aab', 'aaaab', true],
    ['a*a*a', 'aa', false],
  ])('%s matches %s: %s', (glob, value, expected) => {
    expect(compileGlob(glob)(value)).toBe(expected)
  })

  // Each of these took seconds to minutes as a backtracking regular expression (issue 9);
  // a matcher that backtracks exponentially never finishes them.
  it.each([
    ['*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(40)],
    [`${'*a'.repeat(24)}*b`, 'a'.repeat(48)],
    ['*a*a*a*a*a*a*b', 'a'.repeat(1000)],
    [`*${'a'.repeat(200)}b`, 'a'.repeat(10_000)],
  ])('gives up on %s against a long name without backtracking', (glob, value) => {
    expect(compileGlob(glob)(value)).toBe(false)
    expect(compileGlob(glob)(`${value}b`)).toBe(true)
  })
})

describe('label selectors', () => {
  const labels = { env: 'prod', eq: 'a=b', empty: '' }
  it.each([
    ['env', true],
    ['missing', false],
    ['env=prod', true],
    ['env=dev', false],
    ['eq=a=b', true],
    ['eq=a', false],
    ['empty=', true],
    ['env!=dev', true],
    ['env!=prod', false],
    ['missing!=x', true],
    ['!missing', true],
    ['!env', false],
  ])('%s → %s', (selector, expected) => {
    expect(matchesLabel(labels, parseLabelSelector(selector))).toBe(expected)
  })

  it('splits on the first = only', () => {
    expect(parseLabelSelector('k=v=w')).toEqual({ op: 'eq', key: 'k', value: 'v=w' })
    expect(parseLabelSelector('k!=v=w')).toEqual({ op: 'ne', key: 'k', value: 'v=w' })
    expect(parseLabelSelector('k=v!=w')).toEqual({ op: 'eq', key: 'k', value: 'v!=w' })
  })

  it('trims keys and values, as AIRI does', () => {
    expect(parseLabelSelector(' env = prod ')).toEqual({ op: 'eq', key: 'env', value: 'prod' })
    expect(parseLabelSelector(' env != prod ')).toEqual({ op: 'ne', key: 'env', value: 'prod' })
    expect(parseLabelSelector(' ! env ')).toEqual({ op: 'absent', key: 'env' })
    expect(parseLabelSelector(' env ')).toEqual({ op: 'has', key: 'env' })
    expect(compileDestination('label: env = prod ')).toEqual({ by: 'label', key: 'env', value: 'prod' })
  })
})

describe('compileDestination', () => {
  it('splits on the first colon only', () => {
    expect(compileDestination('plugin:a:b')).toEqual({ by: 'index', keys: [['plugin', 'a:b']] })
    expect(compileDestination('instance:x:1')).toEqual({ by: 'index', keys: [['instance', 'x:1']] })
    expect(compileDestination('label:k=v:w')).toEqual({ by: 'label', key: 'k', value: 'v:w' })
  })

  it('maps each prefix to its lookup', () => {
    expect(compileDestination('*')).toEqual({ by: 'all' })
    expect(compileDestination('peer:p1')).toEqual({ by: 'peer', id: 'p1' })
    expect(compileDestination('module:chat')).toEqual({ by: 'index', keys: [['module', 'chat']] })
    expect(compileDestination('source:chat')).toEqual({ by: 'index', keys: [['module', 'chat'], ['plugin', 'chat']] })
    expect(compileDestination('bot')).toEqual({ by: 'index', keys: [['module', 'bot'], ['plugin', 'bot'], ['instance', 'bot']] })
  })

  it('scans with a predicate for wildcard globs, non-equality label selectors and expressions', () => {
    const glob = compileDestination('tele*')
    expect(glob.by).toBe('scan')
    if (glob.by === 'scan') {
      expect(on(glob.test, entry('telegram', 'p', 'i'))).toBe(true)
      expect(on(glob.test, entry('x', 'telegram', 'i'))).toBe(true)
      expect(on(glob.test, entry('x', 'y', 'tele-1'))).toBe(true)
      expect(on(glob.test, entry('x', 'y', 'z'))).toBe(false)
    }
    const unknownPrefix = compileDestination('foo:bar')
    expect(unknownPrefix).toEqual({ by: 'index', keys: [['module', 'foo:bar'], ['plugin', 'foo:bar'], ['instance', 'foo:bar']] })
    const notKey = compileDestination('label:!devtools')
    expect(notKey.by).toBe('scan')
    if (notKey.by === 'scan') {
      expect(on(notKey.test, entry('a', 'a', 'a', { devtools: 'true' }))).toBe(false)
      expect(on(notKey.test, entry('a', 'a', 'a'))).toBe(true)
    }
  })
})

describe('compileExpression', () => {
  const bot = entry('bot', 'telegram', 'tg-1', { env: 'prod', team: 'a' }, 'peer-1')
  const ui = entry('stage', 'stage-web', 'web-1', { env: 'dev' }, 'peer-2')

  it.each([
    [{ type: 'and', all: [] }, true, true],
    [{ type: 'or', any: [] }, false, false],
    [{ type: 'glob', glob: 'tele*' }, true, false],
    [{ type: 'glob', glob: 'tele*', inverted: true }, false, true],
    [{ type: 'ids', ids: ['peer-2'] }, false, true],
    [{ type: 'ids', ids: ['tg-1'] }, true, false],
    [{ type: 'plugin', plugins: ['telegram', 'x'] }, true, false],
    [{ type: 'instance', instances: ['web-1'] }, false, true],
    [{ type: 'label', selectors: ['env=prod', 'team'] }, true, false],
    [{ type: 'label', selectors: ['env!=prod'] }, false, true],
    [{ type: 'label', selectors: ['!team'], inverted: true }, true, false],
    [{ type: 'module', modules: ['stage'] }, false, true],
    [{ type: 'source', sources: ['telegram'] }, true, false],
    [{ type: 'source', sources: ['stage'] }, false, true],
    [{ type: 'and', all: [{ type: 'label', selectors: ['env'] }, { type: 'plugin', plugins: ['stage-web'], inverted: true }] }, true, false],
    [{ type: 'or', any: [{ type: 'module', modules: ['nope'] }, { type: 'instance', instances: ['web-1'] }] }, false, true],
  ] as const)('%j → bot %s, ui %s', (expression, forBot, forUi) => {
    const test = compileExpression(expression as never)
    expect(on(test, bot)).toBe(forBot)
    expect(on(test, ui)).toBe(forUi)
  })
})

describe('targets beyond a module', () => {
  it('matches ids by the peer\'s aliases, nested and inverted too', () => {
    const bot = entry('bot', 'telegram', 'tg-1', { env: 'prod' }, 'peer-1')
    const prodButAlias = compileExpression({ type: 'and', all: [{ type: 'label', selectors: ['env=prod'] }, { type: 'ids', ids: ['my-bot'], inverted: true }] })
    expect(on(prodButAlias, bot)).toBe(true)
    expect(on(prodButAlias, bot, ['my-bot'])).toBe(false)
    expect(on(compileExpression({ type: 'or', any: [{ type: 'ids', ids: ['my-bot'] }] }), bot, ['my-bot'])).toBe(true)
  })

  it('matches a peer without modules by its own identity, or by its id and aliases alone', () => {
    const extension = { id: 'p', authenticated: true, identity: { pluginId: 'ext', instanceId: 'p', labels: { env: 'prod' } } }
    const bare = { id: 'q', authenticated: true, aliases: new Set(['alias-q']) }
    const prod = compileDestination('label:env!=dev')
    expect(prod.by === 'scan' && prod.test(extension)).toBe(true)
    expect(prod.by === 'scan' && prod.test(bare)).toBe(false)
    const plugin = compileExpression({ type: 'plugin', plugins: ['ext'] })
    expect(plugin(extension)).toBe(true)
    expect(plugin(bare)).toBe(false)
    expect(compileExpression({ type: 'module', modules: ['ext'] })(extension)).toBe(false)
    const ids = compileExpression({ type: 'or', any: [{ type: 'ids', ids: ['alias-q'] }] })
    expect(ids(bare)).toBe(true)
    expect(ids(extension)).toBe(false)
  })
})
