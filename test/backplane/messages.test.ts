import type { ClusterMessage } from '../../src/backplane/types.ts'
import { describe, expect, it } from 'vitest'
import { decodeClusterBatch, encodeClusterMessage, MAX_ID_CHARS, MAX_LABELS, MAX_MESSAGE_CHARS, MAX_PEER_CONSUMERS, MAX_PEERS } from '../../src/backplane/messages.ts'
import { isPlainJson } from '../../src/core/event.ts'

const identity = { pluginId: 'p', instanceId: 'i', labels: { role: 'worker' } }
const every: ClusterMessage[] = [
  { type: 'state', node: 'n1', seq: 3, hello: true, peers: [{ id: 'a' }, { id: 'b', modules: [{ name: 'beta', index: 2, identity }, { name: 'gamma', identity: { ...identity, announced: { id: 'i', extension: { id: 'p' } } } }], aliases: ['b-alias'] }] },
  { type: 'peer', node: 'n1', seq: 4, peer: { id: 'b', modules: [{ name: 'beta', identity: { ...identity, version: '1.0.0' } }] }, reason: 're-announcing' },
  { type: 'peer', node: 'n1', seq: 5, peer: { id: 'c', consumers: [{ event: 'input:text', group: 'chat-ingestion', priority: -1.5, at: 1700000000000 }, { event: 'e', at: 1700000000001 }], unhealthy: true } },
  { type: 'left', node: 'n1', seq: 5, id: 'b' },
  { type: 'heartbeat', node: 'n1', seq: 5 },
  { type: 'health', node: 'n1', id: 'b', healthy: false },
  { type: 'sync', node: 'n1' },
  { type: 'bye', node: 'n1' },
  { type: 'route', node: 'n1', to: ['a'], event: { type: 'note', data: { at: new Date(5), tags: new Set(['x']) }, metadata: { event: { id: 'e1' } } } },
]

/** A batch as a node publishes it. */
const batch = (...messages: ClusterMessage[]): string => `[${messages.map(encodeClusterMessage).join(',')}]`
/** A batch of raw superjson payloads, as anyone with access to the Redis could publish. */
const raw = (...json: unknown[]): string => JSON.stringify(json.map(value => ({ json: value })))
const state = (peers: unknown[], extra: Record<string, unknown> = {}) => ({ type: 'state', node: 'n1', seq: 1, hello: false, peers, ...extra })
const withModule = (module: unknown) => state([{ id: 'p1', modules: [module] }])

describe('cluster messages', () => {
  it('decode to what was encoded, in order, every type; superjson values only in routed events', () => {
    const { messages, invalid } = decodeClusterBatch(batch(...every))
    expect(invalid).toBe(0)
    expect(messages).toEqual(every)
    const plain = decodeClusterBatch(batch({ type: 'route', node: 'n1', to: ['a'], event: { type: 'x', data: { n: 1 } } })).messages[0]!
    expect(isPlainJson((plain as Extract<ClusterMessage, { type: 'route' }>).event)).toBe(true)
  })

  it('drop an entry whole when any part is wrong, keeping the valid ones around it', () => {
    const missingLabels = withModule({ name: 'ghost', identity: { pluginId: 'g', instanceId: 'g' } })
    const decoded = decodeClusterBatch(raw({ type: 'heartbeat', node: 'n1', seq: 1 }, missingLabels, { type: 'bye', node: 'n1' }))
    expect(decoded.messages.map(m => m.type)).toEqual(['heartbeat', 'bye'])
    expect(decoded.invalid).toBe(1)
    expect(decoded.reason).toMatch(/"state" message with peers\.0\.modules\.0\.identity\.labels/)
  })

  it('say why in one printable line, whatever the forged text', () => {
    const { reason } = decodeClusterBatch(raw(withModule({ name: 'm', identity: { ...identity, labels: { 'a\nb\u001B[31m': 1 } } })))
    expect(reason).toMatch(/^[\x20-\x7E]+$/)
    expect(reason).toContain('labels.a?b?[31m')
  })

  it.each([
    ['labels not strings', withModule({ name: 'm', identity: { ...identity, labels: { n: 1 } } })],
    ['an unknown type', { type: 'explode', node: 'n1' }],
    ['a wrong field type', { type: 'heartbeat', node: 5, seq: 1 }],
    ['a negative sequence', { type: 'left', node: 'n1', seq: -1, id: 'p' }],
    ['an unknown reason', { type: 'peer', node: 'n1', seq: 1, peer: { id: 'p' }, reason: 'because' }],
    ['a missing field', { type: 'state', node: 'n1', seq: 1, peers: [] }],
    ['a long id', { type: 'bye', node: 'n'.repeat(MAX_ID_CHARS + 1) }],
    ['a control character in an id', { type: 'bye', node: 'n1\n\u001B[31m' }],
    ['too many labels', withModule({ name: 'm', identity: { ...identity, labels: Object.fromEntries(Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`k${i}`, 'v'])) } })],
    ['too many consumer registrations', state([{ id: 'p1', consumers: Array.from({ length: MAX_PEER_CONSUMERS + 1 }, (_, i) => ({ event: `e${i}`, at: i })) }])],
    ['a consumer registration without a time', state([{ id: 'p1', consumers: [{ event: 'e' }] }])],
    ['a consumer registration without an event', state([{ id: 'p1', consumers: [{ event: '', at: 1 }] }])],
    ['a consumer priority that is not finite', { type: 'peer', node: 'n1', seq: 1, peer: { id: 'p', consumers: [{ event: 'e', priority: 'high', at: 1 }] } }],
    ['a health flag that is not true', { type: 'peer', node: 'n1', seq: 1, peer: { id: 'p', unhealthy: false } }],
    ['too many peers', state(Array.from({ length: MAX_PEERS + 1 }, (_, i) => ({ id: `p${i}` })))],
    ['too many recipients', { type: 'route', node: 'n1', to: Array.from({ length: MAX_PEERS + 1 }, (_, i) => `p${i}`), event: { type: 'x', data: {} } }],
    ['event data that is not an object', { type: 'route', node: 'n1', to: ['a'], event: { type: 'x', data: [1] } }],
    ['an event without a type', { type: 'route', node: 'n1', to: ['a'], event: { type: '', data: {} } }],
    ['a null entry', null],
  ])('drop an entry with %s', (_, entry) => {
    expect(decodeClusterBatch(raw(entry))).toMatchObject({ messages: [], invalid: 1 })
  })

  it('refuse prototype keys in labels instead of storing them', () => {
    for (const labels of ['{"__proto__":{"polluted":"yes"}}', '{"__proto__":"x"}', '{"constructor":"x"}', '{"prototype":"x"}']) {
      const text = `[{"json":{"type":"peer","node":"n1","seq":1,"peer":{"id":"p","modules":[{"name":"m","identity":{"pluginId":"p","instanceId":"i","labels":${labels}}}]}}}]`
      expect(decodeClusterBatch(text)).toMatchObject({ messages: [], invalid: 1 })
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('keep only the known fields of what the cluster stores', () => {
    const [message] = decodeClusterBatch(raw(state([{ id: 'p1', extra: 1, modules: [{ name: 'm', identity: { ...identity, extra: 2 } }] }], { extra: 3 }))).messages
    expect(message).toEqual(state([{ id: 'p1', modules: [{ name: 'm', identity }] }]))
  })

  it('take superjson meta only in a routed event, and drop it when it does not apply or breaks the shape', () => {
    const route = { type: 'route', node: 'n1', to: ['a'], event: { type: 'x', data: {} } }
    const cases: Array<[unknown, unknown]> = [
      [state([{ id: 'p1' }]), { referentialEqualities: { 'peers.0': ['peers.0.modules'] } }],
      [{ type: 'heartbeat', node: 'n1', seq: 1 }, { values: { seq: ['bigint'] } }],
      [route, { values: { '__proto__.polluted': ['Date'] } }],
      [route, { referentialEqualities: { 'event.data': ['__proto__.polluted'] } }],
      [route, { values: { 'event.data': ['class', 'Evil'] } }],
      [{ ...route, event: { type: 'x', data: [['k', 1]] } }, { values: { 'event.data': ['map'] } }],
    ]
    for (const [json, meta] of cases)
      expect(decodeClusterBatch(JSON.stringify([{ json, meta }]))).toMatchObject({ messages: [], invalid: 1 })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('count a message that is not a batch of payloads as one invalid', () => {
    for (const text of ['not json {', '{"json":{"type":"bye","node":"n1"}}', '"text"', 'x'.repeat(MAX_MESSAGE_CHARS + 1)])
      expect(decodeClusterBatch(text)).toMatchObject({ messages: [], invalid: 1 })
    expect(decodeClusterBatch('[1,"x",[],{}]')).toMatchObject({ messages: [], invalid: 4 })
  })
})
