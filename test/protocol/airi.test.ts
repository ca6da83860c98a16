import superjson from 'superjson'
import { describe, expect, it } from 'vitest'
import { isPlainJson, markPlainJson, stampedSource } from '../../src/core/event.ts'
import { HubError } from '../../src/errors.ts'
import { resolveHubOptions } from '../../src/options.ts'
import { airiCurrentEncoder, airiEncoder, decodeAiriFrame, normalizeIdentity } from '../../src/protocol/airi.ts'

const { limits } = resolveHubOptions({ env: {} })

describe('aIRI codec', () => {
  it('decodes superjson frames, keeping rich values', () => {
    const frame = superjson.stringify({ type: 'input:text', data: { at: new Date(5), nothing: undefined } })
    const event = decodeAiriFrame(frame, limits)
    expect(event.data.at).toEqual(new Date(5))
    expect('nothing' in event.data).toBe(true)
    expect(isPlainJson(event)).toBe(false)
    expect(airiEncoder.encode(event)).toBe(frame)
  })

  it('decodes plain JSON and superjson without meta as plain events', () => {
    expect(isPlainJson(decodeAiriFrame('{"type":"a","data":{"x":1}}', limits))).toBe(true)
    expect(isPlainJson(decodeAiriFrame('{"json":{"type":"a","data":{"x":1}}}', limits))).toBe(true)
  })

  it('encodes plain events byte for byte as superjson would', () => {
    for (const frame of [
      '{"json":{"type":"a","data":{"x":1,"list":[1,"two",null],"nested":{"ok":true}}}}',
      '{"json":{"type":"b","data":{},"metadata":{"event":{"id":"1","parentId":"0"}},"route":{"destinations":["plugin:x",{"type":"and","all":[]}]}}}',
    ]) {
      const event = decodeAiriFrame(frame, limits)
      expect(airiEncoder.encode(event)).toBe(frame)
      expect(airiEncoder.encode(event)).toBe(superjson.stringify(superjson.parse(frame)))
    }
  })

  it.each([
    ['{', /^invalid JSON, error: /],
    ['', /^invalid JSON, error: /],
    ['"text"', /^invalid event format$/],
    ['{"json":null}', /^invalid event format$/],
    ['{"type":1,"data":{}}', /^invalid event format$/],
    ['{"type":"a","data":{},"metadata":{"event":{"id":3}}}', /^invalid event format$/],
    ['{"type":"a","data":{},"route":{"bypass":"yes"}}', /^invalid event format$/],
    ['{"type":"a","data":{},"route":{"destinations":"*"}}', /^invalid event format$/],
    ['{"type":"a","data":{"destinations":[{"type":"label","selectors":"x"}]}}', /^invalid event format$/],
  ])('rejects %s', (frame, message) => {
    expect(() => decodeAiriFrame(frame, limits)).toThrow(message)
  })

  function refusal(frame: string): { message: string, parentId?: string } {
    try {
      decodeAiriFrame(frame, limits)
    }
    catch (error) {
      expect(error).toBeInstanceOf(HubError)
      return { message: (error as HubError).message, parentId: (error as HubError).parentId }
    }
    throw new Error('accepted')
  }

  const deep = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`
  const orOf = (n: number): string => JSON.stringify({ type: 'or', any: Array.from({ length: n }, () => ({ type: 'module', modules: ['m'] })) })
  let nestedOr = '{"type":"module","modules":["m"]}'
  for (let i = 0; i < 5000; i++)
    nestedOr = `{"type":"or","any":[${nestedOr}]}`

  it.each([
    ['a bad envelope', '{"type":1,"data":{},"metadata":{"event":{"id":"e1"}}}', 'invalid event format'],
    ['a bad superjson envelope', '{"json":{"type":"a","data":[],"metadata":{"event":{"id":"e1"}}}}', 'invalid event format'],
    ['an unknown superjson transform', '{"json":{"type":"a","data":{"x":1},"metadata":{"event":{"id":"e1"}}},"meta":{"values":{"data.x":["bogus"]}}}', 'invalid event format'],
    ['a superjson class', '{"json":{"type":"a","data":{"x":{}},"metadata":{"event":{"id":"e1"}}},"meta":{"values":{"data.x":[["class","Foo"]]}}}', 'invalid event format'],
    ['a superjson __proto__ path', '{"json":{"type":"a","data":{"x":{}},"metadata":{"event":{"id":"e1"}}},"meta":{"values":{"data.__proto__.x":["undefined"]}}}', 'invalid event format'],
    ['prototype keys in a superjson event', '{"json":{"type":"a","data":{"__proto__":{"x":1},"d":0},"metadata":{"event":{"id":"e1"}}},"meta":{"values":{"data.d":["undefined"]}}}', 'invalid event format'],
    ['a superjson cycle', '{"json":{"type":"a","data":{"a":{}},"metadata":{"event":{"id":"e1"}}},"meta":{"referentialEqualities":{"data":["data.a.b"]}}}', 'limit exceeded: nesting depth'],
    ['quadratic superjson paths', '{"json":{"type":"a","data":{"o":{},"s":[1,2]},"metadata":{"event":{"id":"e1"}}},"meta":{"values":{"data.s":["set"]},"referentialEqualities":{"data.o":["data.s.1"]}}}', 'limit exceeded: superjson paths'],
    ['5000-deep data', `{"type":"a","data":{"x":${deep(5000)}},"metadata":{"event":{"id":"e1"}}}`, 'limit exceeded: nesting depth'],
    ['5000-deep metadata', `{"type":"a","data":{},"metadata":{"event":{"id":"e1"},"x":${deep(5000)}}}`, 'limit exceeded: nesting depth'],
    ['5000-deep expressions', `{"type":"a","data":{},"route":{"destinations":[${nestedOr}]},"metadata":{"event":{"id":"e1"}}}`, 'limit exceeded: expression depth'],
    ['20 000-leaf expressions', `{"type":"a","data":{},"route":{"destinations":[${orOf(20_000)}]},"metadata":{"event":{"id":"e1"}}}`, 'limit exceeded: route items'],
    ['too many data destinations', `{"type":"a","data":{"destinations":${JSON.stringify(Array.from({ length: 100 }, () => '*'))}},"metadata":{"event":{"id":"e1"}}}`, 'limit exceeded: destinations'],
  ])('refuses %s with one documented message and the event id', (_, frame, message) => {
    expect(refusal(frame)).toEqual({ message, parentId: 'e1' })
  })

  it('has no parentId to give when the id is not a string or the JSON is broken', () => {
    expect(refusal('{"type":"a","data":[],"metadata":{"event":{"id":3}}}')).toEqual({ message: 'invalid event format', parentId: undefined })
    expect(refusal('{"type":"a","metadata":{"event":{"id":"e1"}}').parentId).toBeUndefined()
  })

  it('keeps prototype keys of plain events inert', () => {
    const event = decodeAiriFrame('{"type":"a","data":{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}}', limits)
    expect(Object.keys(event.data)).toEqual(['__proto__', 'constructor'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    const proto = Object.getOwnPropertyDescriptor(JSON.parse(airiEncoder.encode(event)).json.data, '__proto__')
    expect(proto?.value).toEqual({ polluted: 1 })
  })
})

describe('aIRI generations', () => {
  const head = { id: 'mc-1', extension: { id: 'minecraft', version: '2.0.0' }, labels: { env: 'prod' } }
  const identity = normalizeIdentity(head, 'bot', 'peer')
  const flat = { plugin: 'minecraft', instanceId: 'mc-1', version: '2.0.0', labels: { env: 'prod' } }

  it('stamps a source every generation reads: HEAD id + extension.id, v0.9 plugin.id, 0.8.4 fields but a string plugin', () => {
    expect(stampedSource(identity)).toEqual({ id: 'mc-1', instanceId: 'mc-1', kind: 'plugin', plugin: { id: 'minecraft', version: '2.0.0' }, extension: head.extension, labels: { env: 'prod' } })
  })

  it('gives 0.8.4 peers flat identities and sources, later ones the identity as announced', () => {
    const sync = markPlainJson({ type: 'registry:modules:sync', data: { modules: [{ name: 'bot', identity: head }] } })
    expect(superjson.parse<any>(airiEncoder.encode(sync)).data.modules[0].identity).toEqual(flat)
    expect(superjson.parse<any>(airiCurrentEncoder.encode(sync)).data.modules[0].identity).toEqual(head)
    const gone = markPlainJson({ type: 'extension:module:de-announced', data: { name: 'bot', identity: head, reason: 'connection closed' } })
    expect(superjson.parse<any>(airiEncoder.encode(gone)).data).toEqual({ name: 'bot', identity: flat, reason: 'connection closed' })
    const routed = { type: 'chat', data: { at: new Date(1) }, metadata: { source: stampedSource(identity) } }
    expect(superjson.parse<any>(airiEncoder.encode(routed))).toEqual({ ...routed, metadata: { source: flat } })
    expect(superjson.parse<any>(airiCurrentEncoder.encode(routed))).toEqual(routed)
    // A peer's own custom event with an `identity` field is not a registry event: left alone.
    const custom = markPlainJson({ type: 'my:event', data: { identity: head } })
    expect(airiEncoder.encode(custom)).toBe(airiCurrentEncoder.encode(custom))
  })
})

describe('normalizeIdentity', () => {
  it('normalises all three shapes, keeping a later generation identity as announced', () => {
    expect(normalizeIdentity({ plugin: 'p', instanceId: 'i', version: '1', labels: { a: '1' } }, 'n', 'peer'))
      .toEqual({ pluginId: 'p', instanceId: 'i', version: '1', labels: { a: '1' } })
    const nested = { id: 'i', kind: 'plugin' as const, plugin: { id: 'p', labels: { a: '1', b: '1' } }, labels: { b: '2' } }
    expect(normalizeIdentity(nested, 'n', 'peer'))
      .toEqual({ pluginId: 'p', instanceId: 'i', version: undefined, labels: { a: '1', b: '2' }, announced: nested })
    expect(normalizeIdentity({ id: 'i', extension: { id: 'e' } }, 'n', 'peer'))
      .toEqual({ pluginId: 'e', instanceId: 'i', version: undefined, labels: {}, announced: { id: 'i', extension: { id: 'e' } } })
  })

  it('falls back to the module name and peer id when no identity was sent', () => {
    expect(normalizeIdentity(undefined, 'name', 'peer-1')).toEqual({ pluginId: 'name', instanceId: 'peer-1', labels: {} })
  })
})
