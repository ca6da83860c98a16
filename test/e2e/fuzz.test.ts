import type { ServerOptions } from '../../src/server.ts'
import type { WireEvent } from '../helpers/hub.ts'
import type { Frame } from '../helpers/phoenix.ts'
import { Buffer } from 'node:buffer'
import process from 'node:process'
import superjson from 'superjson'
import { describe, expect, it } from 'vitest'
import { RawPeer, startHub } from '../helpers/hub.ts'
import { RawPhoenix, until } from '../helpers/phoenix.ts'
import { sdkClient } from '../helpers/sdk.ts'

/*
 * 100 000+ generated frames from a fixed seed over `/ws` and the Phoenix gateway. Every native
 * frame is built so that whether it must be refused is known: refused frames must get exactly
 * one `error` (with the frame's id as parentId when it had one), accepted ones none. Phoenix
 * pushes must get exactly one reply each. Meanwhile a real SDK 0.8.4 client must stay
 * connected and receive what is sent to it, and nothing may pollute Object.prototype.
 */

const SEED = 20_261_129
const TOKEN = 'fuzz-token'
const HUB_ID = 'fuzz-hub'
const NATIVE_FRAMES = 76_000
const PHOENIX_FRAMES = 26_000
/** Authenticated native peers; the unauthenticated ones get `not authenticated` for nearly everything. */
const NATIVE_PEERS = [true, true, true, true, false, false]
const PHOENIX_SOCKETS = 4
const BATCH = 200
const PHOENIX_GARBAGE_SOCKETS = 100

/**
 * Options of the fuzzed hub: the rate limits must let a batch of BATCH frames through (they
 * still run), unauthenticated peers may send frames as big as anyone's and are never timed
 * out, since they are part of the fuzz.
 */
const HUB_OPTIONS: ServerOptions = {
  auth: { token: TOKEN, timeoutMs: 0 },
  instanceId: HUB_ID,
  limits: { eventsPerSec: 1_000_000, bytesPerSec: 1024 ** 3, maxPendingPayloadBytes: 1024 * 1024 },
}

// --- Deterministic generation ----------------------------------------------------------

/** mulberry32: a tiny seeded PRNG, so every run fuzzes the same frames. */
function createRandom(seed: number) {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1))
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
  const chance = (p: number): boolean => next() < p
  return { next, int, pick, chance }
}
type Random = ReturnType<typeof createRandom>

const PIECES = ['a', 'b', 'z', '0', '9', '-', '_', ':', '.', ' ', '*', '?', '"', '\\', '/', '\n', '\u0000', 'é', 'ü', '😀', '\uD800', '\uDFFF', '\u202E', '<script>', '%s', '$' + '{x}', '__proto__']
const KEYS = ['a', 'b', 'name', 'value', 'list', 'nested', 'x', '__proto__', 'constructor', 'prototype', 'toString', '', 'ü', '😀', 'json', 'meta', 'id']
const WORDS = ['alpha', 'beta', 'gamma', 'chat', 'voice', 'tele', 'stage', 'bot', 'aaaa', 'x']

function text(random: Random, max = 24): string {
  let out = ''
  const length = random.int(0, max)
  while (out.length < length)
    out += random.pick(PIECES)
  return out
}

function word(random: Random): string {
  return `${random.pick(WORDS)}${random.int(0, 20)}`
}

/** Random JSON, `depth` levels at most; prototype keys included. */
function json(random: Random, depth: number): unknown {
  const roll = random.int(0, depth > 0 ? 9 : 5)
  switch (roll) {
    case 0: return null
    case 1: return random.chance(0.5)
    case 2: return random.int(-1e6, 1e6) / random.pick([1, 7, 1000])
    case 3: return random.pick([0, -0, 1e308, -1e-308, Number.MAX_SAFE_INTEGER + 2])
    case 4:
    case 5: return text(random)
    case 6:
    case 7: return Array.from({ length: random.int(0, 4) }, () => json(random, depth - 1))
    default: {
      const object: Record<string, unknown> = {}
      for (let i = random.int(0, 4); i > 0; i--)
        Object.defineProperty(object, random.pick(KEYS), { value: json(random, depth - 1), enumerable: true, configurable: true, writable: true })
      return object
    }
  }
}

/** Plain data of an event: an object without `destinations`. */
function data(random: Random): Record<string, unknown> {
  const value = json(random, 4)
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : { value }
}

function nested(depth: number, leaf = '0'): string {
  let out = leaf
  for (let i = 0; i < depth; i++)
    out = i % 2 ? `[${out}]` : `{"k":${out}}`
  return out
}

/** A destination string or expression, within every bound by construction: shallow, short globs. */
function destination(random: Random, depth: number): unknown {
  switch (random.int(0, 6)) {
    case 0: return '*'
    case 1: return `plugin:${word(random)}`
    case 2: return `module:${random.pick(['observer', 'control', word(random)])}`
    case 3: return `label:${random.pick(['env=prod', '!x', 'k!=v', '__proto__', 'constructor=x'])}`
    case 4: return random.pick(['*a*a*a*a*b', '*a?a*', 'ob*', '?'.repeat(random.int(1, 12)), '*😀*', 'a*'.repeat(random.int(1, 8))])
    default: return expression(random, depth)
  }
}

function expression(random: Random, depth: number): unknown {
  switch (random.int(0, depth > 0 ? 5 : 3)) {
    case 0: return { type: 'glob', glob: random.pick(['*a*a*a*a*a*b', 'tele*', '*']), inverted: random.chance(0.3) }
    case 1: return { type: random.pick(['plugin', 'module', 'ids', 'instance', 'source']) as string, ...listOf(random) }
    case 2: return { type: 'label', selectors: [random.pick(['env', 'env=prod', '!devtools', '__proto__=x'])] }
    case 3: return { type: 'module', modules: ['observer'], inverted: true }
    case 4: return { type: 'and', all: Array.from({ length: random.int(0, 3) }, () => expression(random, depth - 1)) }
    default: return { type: 'or', any: Array.from({ length: random.int(0, 3) }, () => expression(random, depth - 1)) }
  }
}

function listOf(random: Random): Record<string, string[]> {
  const values = Array.from({ length: random.int(0, 3) }, () => word(random))
  return { plugins: values, modules: values, ids: values, instances: values, sources: values }
}

// --- Native frames with a known verdict ------------------------------------------------

interface NativeFrame {
  payload: string | Buffer
  /** Whether an authenticated peer must get an error for it. */
  refused: boolean
  /** Whether even an unauthenticated peer gets none (liveness frames). */
  silent?: boolean
  /** The id the error must name as parentId. */
  id?: string
}

const RESERVED = ['error', 'event:ack', 'module:authenticated', 'module:announced', 'module:de-announced', 'module:configure', 'extension:module:announced', 'extension:module:de-announced', 'registry:modules:sync', 'registry:modules:health:unhealthy', 'registry:x', 'peer:authenticated', 'phx_reply']

let ids = 0
const nextId = (): string => `f${++ids}`

function envelope(random: Random, type: string, id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type, data: data(random), metadata: { event: { id } }, ...extra }
}

function superjsonFrame(random: Random, id: string): string {
  const value: Record<string, unknown> = { at: new Date(random.int(0, 1e12)), nothing: undefined, big: BigInt(random.int(0, 1e9)) }
  if (random.chance(0.3))
    value.set = new Set([1, 2, text(random)])
  if (random.chance(0.3))
    value.map = new Map([[text(random), new Date(0)]])
  if (random.chance(0.2)) {
    const shared = { s: text(random) }
    value.twice = [shared, shared]
  }
  return superjson.stringify({ type: `fuzz:${word(random)}`, data: value, metadata: { event: { id } } })
}

/** A superjson frame whose meta is a trick the hub must refuse. */
function superjsonTrick(random: Random, id: string): string {
  const json = { type: 'fuzz:trick', data: { a: {}, s: [1, 2, 3], x: 1, o: {} }, metadata: { event: { id } } }
  const meta = random.pick<unknown>([
    { referentialEqualities: { data: ['data.a.self'] } },
    { referentialEqualities: [['data.a.root']] },
    { values: { 'data.x': ['bogus'] } },
    { values: { 'data.x': [['class', 'Evil']] } },
    { values: { 'data.__proto__.polluted': ['undefined'] } },
    { values: { 'data.constructor.prototype.polluted': ['undefined'] } },
    { values: { 'data.s': ['set'], 'data.s.2': ['undefined'] } },
    { values: { 'data.s': ['set'] }, referentialEqualities: { 'data.o': ['data.s.1'] } },
    { referentialEqualities: { 'data.o': Array.from({ length: 65 }, (_, i) => `data.k${i}`) } },
    { values: { 'data.x': [random.pick(['symbol', 'custom']), 'nope'] } },
  ])
  if (random.chance(0.1))
    return `{"json":{"type":"fuzz:trick","data":{"__proto__":{"polluted":1},"x":1},"metadata":{"event":{"id":"${id}"}}},"meta":{"values":{"data.x":["undefined"]}}}`
  return JSON.stringify({ json, meta })
}

function nativeFrame(random: Random): NativeFrame {
  const roll = random.next()
  const id = nextId()
  if (roll < 0.30) {
    const route = random.chance(0.5) ? { route: { destinations: Array.from({ length: random.int(0, 3) }, () => destination(random, 1)) } } : {}
    const event = envelope(random, `fuzz:${word(random)}`, id, route)
    return { payload: random.chance(0.8) ? JSON.stringify(event) : superjsonFrame(random, id), refused: false, id }
  }
  if (roll < 0.38) {
    // Truncated JSON: never parses.
    const full = JSON.stringify(envelope(random, 'fuzz:cut', id))
    return { payload: full.slice(0, random.int(1, full.length - 1)), refused: true }
  }
  if (roll < 0.41)
    return { payload: Buffer.from([0xFF, ...Array.from({ length: random.int(0, 40) }, () => random.int(0, 255))]), refused: true }
  if (roll < 0.43)
    return { payload: random.pick(['ping', 'pong']), refused: false, silent: true }
  if (roll < 0.55) {
    // Valid JSON that is no event: the id is kept where it is readable.
    const bad = random.pick<unknown>([
      json(random, 3),
      { type: random.int(0, 9), data: {}, metadata: { event: { id } } },
      { type: '', data: {}, metadata: { event: { id } } },
      { type: 'fuzz:x', data: [json(random, 2)], metadata: { event: { id } } },
      { type: 'fuzz:x', data: {}, route: { destinations: 'not a list' }, metadata: { event: { id } } },
      { type: 'fuzz:x', data: {}, route: { destinations: [{ type: 'nope' }] }, metadata: { event: { id } } },
      { type: 'fuzz:x', data: { destinations: [5] }, metadata: { event: { id } } },
      { json: { type: 'fuzz:x', data: null, metadata: { event: { id } } } },
      { json: json(random, 2), meta: json(random, 2) },
    ])
    const value = typeof bad === 'object' && bad !== null && !Array.isArray(bad) && !('type' in bad) && !('json' in bad) ? { ...bad, type: undefined } : bad
    const carriesId = JSON.stringify(value).includes(`"id":"${id}"`)
    return { payload: JSON.stringify(value) ?? 'null', refused: true, id: carriesId ? id : undefined }
  }
  if (roll < 0.60)
    return { payload: JSON.stringify(envelope(random, random.pick(RESERVED), id)), refused: true, id }
  if (roll < 0.62) {
    const depth = random.chance(0.1) ? random.int(600, 3000) : random.int(66, 200)
    const where = random.pick(['data', 'metadata'])
    const payload = where === 'data'
      ? `{"type":"fuzz:deep","data":{"d":${nested(depth)}},"metadata":{"event":{"id":"${id}"}}}`
      : `{"type":"fuzz:deep","data":{},"metadata":{"event":{"id":"${id}"},"d":${nested(depth)}}}`
    return { payload, refused: true, id }
  }
  if (roll < 0.64) {
    const huge = random.pick<() => unknown[]>([
      () => Array.from({ length: random.int(65, 100) }, () => '*'),
      () => [`${'x'.repeat(random.int(257, 400))}*`],
      () => [{ type: 'or', any: Array.from({ length: random.chance(0.1) ? random.int(2000, 5000) : random.int(257, 400) }, () => ({ type: 'module', modules: ['m'] })) }],
      () => [JSON.parse(nested(0))].map(() => {
        let expression: unknown = { type: 'module', modules: ['m'] }
        for (let i = random.chance(0.1) ? random.int(200, 1000) : random.int(9, 30); i > 0; i--)
          expression = { type: 'and', all: [expression] }
        return expression
      }),
    ])()
    const event = envelope(random, 'fuzz:route', id, random.chance(0.5) ? { route: { destinations: huge } } : {})
    if (!('route' in event))
      event.data = { destinations: huge }
    return { payload: JSON.stringify(event), refused: true, id }
  }
  if (roll < 0.66)
    return { payload: JSON.stringify(envelope(random, `t${'y'.repeat(random.int(256, 600))}`, id)), refused: true, id }
  if (roll < 0.71)
    return { payload: superjsonTrick(random, id), refused: true, id }
  if (roll < 0.78) {
    const name = random.chance(0.1) ? 'a'.repeat(random.int(100, 256)) : word(random)
    const identity = random.pick<unknown>([
      undefined,
      { plugin: word(random), instanceId: `${word(random)}-${id}`, labels: { env: 'prod', [text(random, 8)]: text(random, 8) } },
      { id: `i-${id}`, kind: 'plugin', plugin: { id: word(random), labels: { a: '1' } }, labels: { b: '2' } },
      { id: `i-${id}`, extension: { id: word(random) } },
    ])
    return { payload: JSON.stringify({ type: random.pick(['module:announce', 'extension:module:announce']), data: { name, identity }, metadata: { event: { id } } }), refused: false, id }
  }
  if (roll < 0.82) {
    const data = random.pick<unknown>([
      { name: 'n'.repeat(random.chance(0.1) ? random.int(10_000, 50_000) : random.int(257, 600)) },
      { name: 'x', identity: { plugin: 'hub-server', instanceId: 'x' } },
      { name: 'x', identity: { plugin: 'x', instanceId: HUB_ID } },
      { name: 'x', identity: { plugin: 'p', instanceId: 'i', labels: Object.fromEntries(Array.from({ length: random.int(65, 120) }, (_, i) => [`k${i}`, 'v'])) } },
      { name: 'x', identity: { plugin: 'p', instanceId: 'i', labels: { k: 'v'.repeat(random.int(257, 600)) } } },
      { name: 'x', identity: { plugin: 'p', instanceId: 'i', version: 'v'.repeat(random.int(257, 600)) } },
      { name: '' },
      { name: 'x', identity: { plugin: 5 } },
      { name: 'x', identity: { plugin: 'p', instanceId: 'i', labels: { k: 5 } } },
    ])
    return { payload: JSON.stringify({ type: 'module:announce', data, metadata: { event: { id } } }), refused: true, id }
  }
  if (roll < 0.86)
    return { payload: JSON.stringify({ type: 'transport:connection:heartbeat', data: { kind: random.pick(['ping', 'pong']) }, metadata: { event: { id } } }), refused: false, silent: true, id }
  if (roll < 0.90)
    return { payload: JSON.stringify({ type: 'ui:configure', data: { moduleName: `missing-${id}`, config: json(random, 2) }, metadata: { event: { id } } }), refused: true, id }
  // Pathological globs, within bounds, against the long module names some peers announced.
  const glob = `${'*a'.repeat(random.int(2, 12))}*${random.pick(['b', 'a', '?', ''])}`
  return { payload: JSON.stringify(envelope(random, 'fuzz:glob', id, { route: { destinations: [glob, { type: 'glob', glob }] } })), refused: false, id }
}

// --- Phoenix pushes --------------------------------------------------------------------

function phoenixPush(random: Random, topic: string, ref: string): { text: string, refused: boolean } {
  const roll = random.next()
  if (roll < 0.55)
    return { text: JSON.stringify(['1', ref, topic, `fuzz:${word(random)}`, random.chance(0.3) ? { ...data(random), destinations: [destination(random, 2)] } : data(random)]), refused: false }
  if (roll < 0.65)
    return { text: JSON.stringify(['1', ref, topic, random.pick([...RESERVED, 'phx_join_x', 'transport:connection:heartbeat']), data(random)]), refused: true }
  if (roll < 0.75)
    return { text: JSON.stringify(['1', ref, topic, `fuzz:${word(random)}`, json(random, 2)]), refused: false }
  if (roll < 0.80)
    return { text: `["1",${JSON.stringify(ref)},${JSON.stringify(topic)},"fuzz:deep",{"d":${nested(random.chance(0.1) ? random.int(600, 3000) : random.int(65, 200))}}]`, refused: true }
  if (roll < 0.85)
    return { text: JSON.stringify(['1', ref, topic, 'fuzz:route', { destinations: Array.from({ length: random.int(65, 100) }, () => '*') }]), refused: true }
  if (roll < 0.90)
    return { text: JSON.stringify(['1', ref, topic, `t${'y'.repeat(random.int(256, 600))}`, {}]), refused: true }
  if (roll < 0.95)
    return { text: JSON.stringify(['1', ref, topic, 'fuzz:route', { destinations: [{ type: 'or', any: Array.from({ length: random.int(257, 400) }, () => ({ type: 'module', modules: ['m'] })) }] }]), refused: true }
  return { text: JSON.stringify(['1', ref, topic, 'fuzz:glob', { destinations: [`${'*a'.repeat(random.int(2, 12))}*b`] }]), refused: false }
}

// --- The run ---------------------------------------------------------------------------

const isError = (event: WireEvent): boolean => event.type === 'error'
/** Every message an error may carry: never internal exception text. */
const DOCUMENTED_ERRORS = /^(?:invalid JSON, error: .*|invalid event format|not authenticated|reserved event type|reserved identity|limit exceeded: [a-z ]+|module not found, it hasn't announced itself or the name is incorrect)$/s

describe('fuzz', () => {
  it(`survives ${NATIVE_FRAMES + PHOENIX_FRAMES} generated frames over /ws and Phoenix, answering each bad one exactly once`, async () => {
    const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort()
    const hub = await startHub(HUB_OPTIONS)

    const observer = sdkClient(hub.url(), 'observer', { token: TOKEN })
    await observer.client.connect()
    const control = await RawPeer.connect(hub.url())
    await control.join('control', { token: TOKEN })
    const peers = await Promise.all(NATIVE_PEERS.map(async (authenticated, i) => {
      const peer = await RawPeer.connect(hub.url())
      if (authenticated) {
        await peer.join(`fuzz-${i}`, { token: TOKEN })
        // Some long names for the pathological globs to chew on.
        peer.send({ type: 'module:announce', data: { name: 'a'.repeat(250), identity: { plugin: 'a'.repeat(200), instanceId: `long-${i}` } } })
      }
      return { peer, authenticated }
    }))
    const sockets = await Promise.all(Array.from({ length: PHOENIX_SOCKETS }, async (_, i) => {
      const socket = await RawPhoenix.connect(`${hub.url('/socket/websocket')}?vsn=2.0.0&api_key=${TOKEN}`)
      const topic = `plugin:fuzz-phx-${i}`
      expect((await socket.request(['1', '1', topic, 'phx_join', {}]))[4].status).toBe('ok')
      return { socket, topic }
    }))

    let peakRss = process.memoryUsage.rss()
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss())
    }, 50)
    const started = performance.now()
    let sent = 0
    let errorsReceived = 0
    let refusedPushes = 0
    let controls = 0

    // Each sender draws from a generator of its own: the same frames every run, however the peers interleave.
    async function fuzzNative(peer: RawPeer, authenticated: boolean, frames: number, random: Random): Promise<void> {
      peer.received.splice(0)
      for (let batch = 0; batch * BATCH < frames; batch++) {
        const expectedIds: string[] = []
        let expectedWithoutId = 0
        for (let i = 0; i < Math.min(BATCH, frames - batch * BATCH); i++) {
          const frame = nativeFrame(random)
          peer.sendRaw(frame.payload)
          sent++
          const refused = frame.refused || (!authenticated && !frame.silent)
          if (!refused)
            continue
          if (frame.id !== undefined)
            expectedIds.push(frame.id)
          else
            expectedWithoutId++
        }
        // Frames are answered in order: once the ping's pong is back, every error is.
        const barrier = peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
        await peer.waitFor(e => e.metadata?.event?.parentId === barrier, 20_000)
        const errors = peer.received.filter(isError)
        // Only this batch's answers are needed: the record stays small.
        peer.received.splice(0)
        peer.frames.splice(0)
        errorsReceived += errors.length
        const withId = errors.map(e => e.metadata?.event?.parentId).filter(id => id !== undefined)
        expect(withId.sort()).toEqual(expectedIds.sort())
        expect(errors.length - withId.length).toBe(expectedWithoutId)
        for (const error of errors)
          expect(error.data.message).toMatch(DOCUMENTED_ERRORS)
        if (authenticated) {
          control.send({ type: 'control', data: { n: ++controls }, route: { destinations: ['module:observer'] } })
        }
      }
    }

    async function fuzzPhoenix(socket: RawPhoenix, topic: string, frames: number, random: Random): Promise<void> {
      let ref = 1
      for (let batch = 0; batch * BATCH < frames; batch++) {
        const expected = new Map<string, boolean>()
        for (let i = 0; i < Math.min(BATCH, frames - batch * BATCH); i++) {
          const push = phoenixPush(random, topic, String(++ref))
          expected.set(String(ref), push.refused)
          socket.ws.send(push.text)
          sent++
        }
        // Refusals are answered at once, routed pushes a microtask later: wait for every ref.
        await until(() => socket.closed ?? socket.frames.filter(f => f[3] === 'phx_reply' && expected.has(f[1]!)).length >= expected.size, 'every reply', 20_000)
        expect(socket.closed).toBeUndefined()
        const replies = socket.frames.filter(f => f[3] === 'phx_reply' && expected.has(f[1]!))
        expect(replies).toHaveLength(expected.size)
        for (const [, replyRef, , , payload] of replies as Frame[]) {
          if (expected.get(replyRef!)) {
            refusedPushes++
            expect(payload.status).toBe('error')
          }
        }
        // Keep the socket's record small: only what a later batch could still need.
        socket.frames.splice(0)
      }
    }

    // Frames that are no Phoenix V2 frame at all end their socket; each on a socket of its own.
    async function fuzzPhoenixGarbage(random: Random): Promise<void> {
      for (let i = 0; i < PHOENIX_GARBAGE_SOCKETS; i++) {
        const socket = await RawPhoenix.connect(`${hub.url('/socket/websocket')}?vsn=2.0.0&api_key=${TOKEN}`)
        const frame = random.pick<() => string | Buffer>([
          () => JSON.stringify(json(random, 3)),
          () => JSON.stringify(['1', '2', 'plugin:x', 'ev']),
          () => JSON.stringify([1, 2, 3, 4, 5]),
          () => JSON.stringify(['1', '2', '', 'ev', {}]),
          () => `["1","2","plugin:x","ev",${nested(random.int(100, 3000))}`,
          () => Buffer.from([0xFF, ...Array.from({ length: random.int(0, 40) }, () => random.int(0, 255))]),
        ])()
        socket.ws.send(frame)
        sent++
        await socket.waitForClose()
      }
    }

    await Promise.all([
      ...peers.map(({ peer, authenticated }, i) => fuzzNative(peer, authenticated, Math.ceil(NATIVE_FRAMES / NATIVE_PEERS.length), createRandom(SEED + i))),
      ...sockets.map(({ socket, topic }, i) => fuzzPhoenix(socket, topic, Math.ceil(PHOENIX_FRAMES / PHOENIX_SOCKETS), createRandom(SEED + 100 + i))),
      fuzzPhoenixGarbage(createRandom(SEED + 200)),
    ])
    clearInterval(sampler)
    const seconds = (performance.now() - started) / 1000

    // The observer stayed connected, got every control event, and nothing a peer may not send.
    await observer.waitFor(() => observer.ofType('control').length === controls, 10_000)
    expect((observer.client as unknown as { connected: boolean }).connected).toBe(true)
    expect(observer.ofType('error')).toEqual([])
    const forged = observer.received.filter(e => RESERVED.includes(e.type) && e.metadata?.source?.plugin !== 'hub-server')
    expect(forged).toEqual([])
    for (const { socket } of sockets)
      expect(socket.closed).toBeUndefined()
    for (const { peer } of peers)
      expect(peer.closed).toBeUndefined()

    // The registry holds only live peers' modules, within bounds, none claiming the hub.
    const { registry, peers: connected } = hub.server.hub
    for (const entry of registry.entries()) {
      expect(connected.has(entry.peerId)).toBe(true)
      expect(entry.name.length).toBeLessThanOrEqual(256)
      expect(Object.keys(entry.identity.labels).length).toBeLessThanOrEqual(64)
      expect(entry.identity.pluginId).not.toBe('hub-server')
      expect(entry.identity.instanceId).not.toBe(HUB_ID)
    }
    await Promise.all([...peers.map(({ peer }) => peer.close()), ...sockets.map(({ socket }) => socket.close())])
    await control.waitFor(() => registry.size === 2)
    expect([...registry.entries()].map(e => e.name).sort()).toEqual(['control', 'observer'])

    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeBefore)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(sent).toBeGreaterThanOrEqual(100_000)

    // eslint-disable-next-line no-console -- the figures are the point
    console.log(`fuzz: ${sent} frames in ${seconds.toFixed(1)} s (${Math.round(sent / seconds)}/s); ${errorsReceived} native errors, ${refusedPushes} Phoenix pushes refused; peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`)
  }, 120_000)
})
