import superjson from 'superjson'
import { describe, expect, it } from 'vitest'
import { isPlainJson } from '../../src/core/event.ts'
import { resolveHubOptions } from '../../src/options.ts'
import { airiEncoder, decodeAiriFrame, normalizeIdentity } from '../../src/protocol/airi.ts'

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
})

describe('normalizeIdentity', () => {
  it('normalises all three shapes', () => {
    expect(normalizeIdentity({ plugin: 'p', instanceId: 'i', version: '1', labels: { a: '1' } }, 'n', 'peer'))
      .toEqual({ pluginId: 'p', instanceId: 'i', version: '1', labels: { a: '1' } })
    expect(normalizeIdentity({ id: 'i', kind: 'plugin', plugin: { id: 'p', labels: { a: '1', b: '1' } }, labels: { b: '2' } }, 'n', 'peer'))
      .toEqual({ pluginId: 'p', instanceId: 'i', version: undefined, labels: { a: '1', b: '2' } })
    expect(normalizeIdentity({ id: 'i', extension: { id: 'e' } }, 'n', 'peer'))
      .toEqual({ pluginId: 'e', instanceId: 'i', version: undefined, labels: {} })
  })

  it('falls back to the module name and peer id when no identity was sent', () => {
    expect(normalizeIdentity(undefined, 'name', 'peer-1')).toEqual({ pluginId: 'name', instanceId: 'peer-1', labels: {} })
  })
})
