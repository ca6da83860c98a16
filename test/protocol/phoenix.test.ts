import type { HubEvent } from '../../src/types.ts'
import { describe, expect, it } from 'vitest'
import { markPlainJson } from '../../src/core/event.ts'
import { decodePhoenixFrame, encodePhoenixFrame, phoenixEncoder } from '../../src/protocol/phoenix.ts'

describe('phoenix V2 codec', () => {
  it('decodes [join_ref, ref, topic, event, payload] with string, numeric or null refs', () => {
    expect(decodePhoenixFrame('["1","2","plugins:did:x","phx_join",{"a":1}]')).toEqual(['1', '2', 'plugins:did:x', 'phx_join', { a: 1 }])
    expect(decodePhoenixFrame('[null,"7","phoenix","heartbeat",{}]')).toEqual([null, '7', 'phoenix', 'heartbeat', {}])
    expect(decodePhoenixFrame('[1,2,"plugin:a","ping",null]')).toEqual([1, 2, 'plugin:a', 'ping', null])
  })

  it('rejects anything that is not exactly a V2 frame', () => {
    for (const text of [
      'not json',
      '{"topic":"phoenix","event":"heartbeat"}',
      '["1","1","phoenix","heartbeat"]',
      '["1","1","phoenix","heartbeat",{},"extra"]',
      '["1","1",3,"heartbeat",{}]',
      '["1","1","phoenix","",{}]',
      '[{},"1","phoenix","heartbeat",{}]',
    ])
      expect(decodePhoenixFrame(text), text).toBeUndefined()
  })

  it('encodes replies and pushes as V2 arrays', () => {
    expect(encodePhoenixFrame('1', '2', 'plugin:a', 'phx_reply', { status: 'ok', response: {} }))
      .toBe('["1","2","plugin:a","phx_reply",{"status":"ok","response":{}}]')
  })

  it('encodes a hub event once as the tail a channel completes with its own refs and topic', () => {
    const event: HubEvent = markPlainJson({ type: 'invoke_tool', data: { request_id: 'r', args: [1] }, metadata: { event: { id: 'x' } } })
    const tail = phoenixEncoder.encode(event)
    expect(tail).toBe('"invoke_tool",{"request_id":"r","args":[1]}]')
    expect(JSON.parse(`["3",null,"debug_plugin:p",${tail}`)).toEqual(['3', null, 'debug_plugin:p', 'invoke_tool', { request_id: 'r', args: [1] }])
  })

  it('carries superjson-only values as plain JSON instead of throwing', () => {
    const tail = phoenixEncoder.encode({ type: 't', data: { big: 10n, at: new Date(0) } })
    expect(JSON.parse(`[null,null,"x",${tail}`)[4]).toEqual({ big: '10', at: '1970-01-01T00:00:00.000Z' })
  })
})
