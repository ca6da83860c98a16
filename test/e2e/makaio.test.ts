import type { RunningHub } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { announced } from '../helpers/cluster.ts'
import { RawPeer, settle, startHub, upgradeStatus } from '../helpers/hub.ts'
import { hmac, RawMakaio } from '../helpers/makaio.ts'
import { outcome, phoenixSocket, until } from '../helpers/phoenix.ts'

// Makaio bus clients on /makaio, as `@makaio/transport-ws` speaks: the token in the URL or the
// HMAC challenge (server first), the hub's subscribe sync, then bus frames whose subjects are hub
// event types `<namespace>.<subject>`.

const TOKEN = 'secret-token'

async function native(hub: RunningHub, name: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url())
  await peer.join(name)
  return peer
}

function bus(type: string, namespace: string, subject: string, extra: Record<string, unknown> = {}): Record<string, unknown> & { type: string } {
  return { type, namespace, subject, messageId: `m-${Math.random().toString(36).slice(2)}`, ...extra }
}

describe('makaio: handshake', () => {
  it('takes ?token= and ?name=, announces the module, then sends the subscribe sync and subscribe-sync-complete', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const watcher = await RawPeer.connect(hub.url())
    await watcher.join('watcher', { token: TOKEN })
    const client = await RawMakaio.ready(hub.url(`/makaio?token=${TOKEN}&name=orders`))
    expect(client.frames.map(f => f.type)).toEqual(['subscribe', 'subscribe-sync-complete'])
    expect(client.frames[0]).toEqual({ type: 'subscribe', subjects: {} })
    const event = await watcher.waitFor(announced('orders'))
    expect(event.data.identity).toMatchObject({ plugin: 'orders' })
    expect(JSON.stringify(event.data)).toContain('makaio')
  })

  it('refuses a bad token with 401 before the upgrade', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    expect(await upgradeStatus(hub.url('/makaio?token=wrong'))).toBe(401)
  })

  it('authenticates by HMAC challenge: auth-challenge {nonce} → auth-response {signature} → auth-result {success}', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const client = await RawMakaio.connect(hub.url('/makaio?name=hmac'))
    const challenge = await client.waitFor(f => f.type === 'auth-challenge')
    expect(challenge.nonce).toMatch(/^[0-9a-f]{64}$/)
    client.send({ type: 'auth-response', signature: hmac(TOKEN, challenge.nonce) })
    await client.waitFor(f => f.type === 'subscribe-sync-complete')
    expect(client.frames.map(f => f.type)).toEqual(['auth-challenge', 'auth-result', 'subscribe', 'subscribe-sync-complete'])
    expect(client.frames[1]).toEqual({ type: 'auth-result', success: true })
  })

  it('a wrong signature gets auth-result {success: false} and close 1008', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const client = await RawMakaio.connect(hub.url('/makaio'))
    const challenge = await client.waitFor(f => f.type === 'auth-challenge')
    client.send({ type: 'auth-response', signature: hmac('not-the-token', challenge.nonce) })
    expect(await client.waitForClose()).toMatchObject({ code: 1008 })
    expect(client.ofType('auth-result')).toEqual([{ type: 'auth-result', success: false, error: 'Invalid signature' }])
  })

  it('a client that never answers the challenge is closed at auth.timeoutMs (4001)', async () => {
    const hub = await startHub({ auth: { token: TOKEN, timeoutMs: 200 } })
    const client = await RawMakaio.connect(hub.url('/makaio'))
    await client.waitFor(f => f.type === 'auth-challenge')
    expect((await client.waitForClose()).code).toBe(4001)
  })

  it('bus frames before authentication close 1008; not JSON 1003; a frame failing the schema 1008', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const early = await RawMakaio.connect(hub.url('/makaio'))
    await early.waitFor(f => f.type === 'auth-challenge')
    early.send(bus('event', 'chat', 'message', { payload: {} }))
    expect(await early.waitForClose()).toMatchObject({ code: 1008, reason: 'authenticate first' })

    const garbled = await RawMakaio.ready(hub.url(`/makaio?token=${TOKEN}`))
    garbled.ws.send('not json')
    expect((await garbled.waitForClose()).code).toBe(1003)

    const invalid = await RawMakaio.ready(hub.url(`/makaio?token=${TOKEN}`))
    invalid.send({ type: 'request', subject: 'x', namespace: 'ns', payload: {} })
    expect((await invalid.waitForClose()).code).toBe(1008)
  })

  it('a name in use is refused with 1008; a name is generated when none is given', async () => {
    const hub = await startHub()
    const watcher = await native(hub, 'watcher')
    await RawMakaio.ready(hub.url('/makaio?name=orders'))
    const second = await RawMakaio.connect(hub.url('/makaio?name=orders'))
    expect(await second.waitForClose()).toMatchObject({ code: 1008, reason: 'name already in use' })
    await RawMakaio.ready(hub.url('/makaio'))
    await watcher.waitFor(e => e.type === 'module:announced' && String(e.data.name).startsWith('makaio-'))
  })

  it('ignores heartbeats and closes with 1001 on shutdown', async () => {
    const hub = await startHub()
    const client = await RawMakaio.ready(hub.url('/makaio'))
    client.send({ type: 'heartbeat', timestamp: Date.now() })
    await settle(100)
    expect(client.closed).toBeUndefined()
    expect(client.frames).toHaveLength(2)
    await hub.close()
    expect((await client.waitForClose()).code).toBe(1001)
  })
})

describe('makaio: events', () => {
  it('routes events both ways with native and Phoenix peers, never echoed, without the hub\'s own events', async () => {
    const hub = await startHub()
    const peer = await native(hub, 'airi')
    const socket = phoenixSocket(hub.url('/socket'))
    const channel = socket.channel('plugin:phx', {})
    expect(await outcome(channel.join())).toMatchObject({ status: 'ok' })
    const pushed: any[] = []
    channel.on('chat.message', (payload) => { pushed.push(payload) })
    const client = await RawMakaio.ready(hub.url('/makaio?name=chat'))
    await peer.waitFor(announced('chat'))

    client.send(bus('event', 'chat', 'message', { payload: { text: 'hi' } }))
    expect(await peer.waitForType('chat.message')).toMatchObject({ data: { text: 'hi' }, metadata: { source: { plugin: 'chat' } } })
    await until(() => pushed.length > 0, 'the Phoenix push')
    expect(pushed[0]).toEqual({ text: 'hi' })
    // A payload that is not an object travels as {value}.
    client.send(bus('event', 'chat', 'count', { payload: 3 }))
    expect((await peer.waitForType('chat.count')).data).toEqual({ value: 3 })

    peer.send({ type: 'chat.reply', data: { text: 'hello' } })
    channel.push('tool:done', { ok: true })
    const reply = await client.waitFor(f => f.type === 'event' && f.subject === 'reply')
    expect(reply).toMatchObject({ namespace: 'chat', subject: 'reply', payload: { text: 'hello' } })
    expect(typeof reply.messageId).toBe('string')
    expect(await client.waitFor(f => f.type === 'event' && f.namespace === 'tool')).toMatchObject({ subject: 'done', payload: { ok: true } })
    await settle()
    expect(client.ofType('event').map(f => `${f.namespace}.${f.subject}`)).toEqual(['chat.reply', 'tool.done'])
  })
})

describe('makaio: subscriptions', () => {
  it('acks frames with an ackId; wildcards *, ns.* and ns:* and payload filters are the routing filter', async () => {
    const hub = await startHub()
    const peer = await native(hub, 'airi')
    const client = await RawMakaio.ready(hub.url('/makaio?name=filtered'))
    await peer.waitFor(announced('filtered'))
    client.send({ type: 'subscribe', subjects: { 'chat.*': [], 'tool:*': [], 'alerts.raised': [] }, filters: { 'alerts.raised': { 'level': 'high', 'origin.zone': 'eu' } }, ackId: 'a1' })
    expect(await client.waitFor(f => f.type === 'subscription-ack')).toEqual({ type: 'subscription-ack', ackId: 'a1' })

    peer.send({ type: 'chat.message', data: { n: 1 } })
    peer.send({ type: 'tool:run', data: { n: 2 } })
    peer.send({ type: 'other.thing', data: { n: 3 } })
    peer.send({ type: 'alerts.raised', data: { n: 4, level: 'low', origin: { zone: 'eu' } } })
    peer.send({ type: 'alerts.raised', data: { n: 5, level: 'high', origin: { zone: 'eu' } } })
    peer.send({ type: 'alerts.raised', data: { n: 6, level: 'high', origin: { zone: 'us' } } })
    peer.send({ type: 'chat.last', data: { n: 7 } })
    await client.waitFor(f => f.type === 'event' && f.payload.n === 7)
    expect(client.ofType('event').map(f => f.payload.n)).toEqual([1, 2, 5, 7])

    client.send({ type: 'unsubscribe', subjects: { 'chat.*': [] }, ackId: 2 })
    await client.waitFor(f => f.type === 'subscription-ack' && f.ackId === 2)
    peer.send({ type: 'chat.message', data: { n: 8 } })
    peer.send({ type: 'tool:run', data: { n: 9 } })
    await client.waitFor(f => f.type === 'event' && f.payload.n === 9)
    expect(client.ofType('event').map(f => f.payload.n)).toEqual([1, 2, 5, 7, 9])

    // `*` is every peer's event again.
    client.send({ type: 'subscribe', subjects: { '*': [] } })
    peer.send({ type: 'other.thing', data: { n: 10 } })
    await client.waitFor(f => f.type === 'event' && f.payload.n === 10)
  })

  it('subscribing past makaio.maxSubscriptions closes 1008; a filter of too many fields fails the schema (1008)', async () => {
    const hub = await startHub({ env: { MAKAIO_MAX_SUBSCRIPTIONS: '2' } })
    const client = await RawMakaio.ready(hub.url('/makaio'))
    client.send({ type: 'subscribe', subjects: { 'a.*': [], 'b.*': [] }, ackId: 1 })
    await client.waitFor(f => f.type === 'subscription-ack')
    client.send({ type: 'subscribe', subjects: { 'c.*': [] } })
    expect(await client.waitForClose()).toMatchObject({ code: 1008, reason: 'too many subscriptions' })

    const wide = await RawMakaio.ready(hub.url('/makaio'))
    const filter = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`f${i}`, i]))
    wide.send({ type: 'subscribe', subjects: { 'a.b': [] }, filters: { 'a.b': filter } })
    expect((await wide.waitForClose()).code).toBe(1008)
  })

  it('advertises the subjects other modules handle on open, and later changes as subscribe / unsubscribe', async () => {
    const hub = await startHub()
    const peer = await native(hub, 'airi')
    peer.send({ type: 'module:consumer:register', data: { event: 'search.query', priority: 5 } })
    const handler = await RawMakaio.ready(hub.url('/makaio?name=handler'))
    expect(handler.frames[0]).toEqual({ type: 'subscribe', subjects: { 'search.query': [5] } })

    const watcher = await RawMakaio.ready(hub.url('/makaio?name=watcher'))
    handler.send({ type: 'subscribe', subjects: { 'math.add': [100] } })
    expect(await watcher.waitFor(f => f.type === 'subscribe' && 'math.add' in f.subjects)).toEqual({ type: 'subscribe', subjects: { 'math.add': [100] } })
    handler.send({ type: 'unsubscribe', subjects: { 'math.add': [100] } })
    expect(await watcher.waitFor(f => f.type === 'unsubscribe')).toEqual({ type: 'unsubscribe', subjects: { 'math.add': [] } })
    // Its own handlers are not advertised back to it.
    await settle()
    expect(handler.frames.filter(f => f.type === 'subscribe' || f.type === 'unsubscribe')).toHaveLength(1)
    await peer.close()
    await handler.waitFor(f => f.type === 'unsubscribe' && 'search.query' in f.subjects)
  })
})

describe('makaio: requests', () => {
  it('request → one handler (a native consumer) → response; NO_HANDLER at once; TIMEOUT; errors as error responses', async () => {
    const hub = await startHub()
    const peer = await native(hub, 'calc')
    peer.send({ type: 'module:consumer:register', data: { event: 'math.add' } })
    const client = await RawMakaio.ready(hub.url('/makaio?name=asker'))
    await client.waitFor(f => f.type === 'subscribe' && 'math.add' in f.subjects)

    client.send(bus('request', 'math', 'add', { payload: { a: 1, b: 2 }, correlationId: 'c1', timeout: 2000 }))
    const asked = await peer.waitForType('math.add')
    expect(asked.data).toEqual({ a: 1, b: 2 })
    peer.send({ type: 'math.sum', data: { sum: 3 }, metadata: { event: { parentId: asked.metadata!.event!.id } } })
    expect(await client.waitFor(f => f.type === 'response')).toEqual({ type: 'response', correlationId: 'c1', result: { sum: 3 } })

    client.send(bus('request', 'math', 'divide', { payload: {}, correlationId: 'c2' }))
    expect(await client.waitFor(f => f.correlationId === 'c2')).toEqual({ type: 'response', correlationId: 'c2', error: { code: 'NO_HANDLER', subject: 'divide', message: 'no responder' } })

    client.send(bus('request', 'math', 'add', { payload: {}, correlationId: 'c3', timeout: 200 }))
    expect(await client.waitFor(f => f.correlationId === 'c3')).toMatchObject({ type: 'response', error: { code: 'TIMEOUT', subject: 'add' } })

    client.send(bus('request', 'math', 'add', { payload: { bad: true }, correlationId: 'c4' }))
    const failing = await peer.waitFor(e => e.type === 'math.add' && e.data.bad === true)
    peer.send({ type: 'error', data: { message: 'cannot add' }, metadata: { event: { parentId: failing.metadata!.event!.id } } })
    expect(await client.waitFor(f => f.correlationId === 'c4')).toEqual({ type: 'response', correlationId: 'c4', error: { code: 'HANDLER_ERROR', message: 'cannot add' } })
  })

  it('hub requests reach a Makaio handler as request frames; its response is the reply (native and Phoenix requesters)', async () => {
    const hub = await startHub()
    const peer = await native(hub, 'airi')
    const client = await RawMakaio.ready(hub.url('/makaio?name=mul'))
    client.send({ type: 'subscribe', subjects: { 'math.mul': [0] }, ackId: 1 })
    await client.waitFor(f => f.type === 'subscription-ack')

    const id = peer.send({ type: 'math.mul', data: { a: 2, b: 3 }, route: { reply: true, delivery: { mode: 'consumer' } } })
    const request = await client.waitFor(f => f.type === 'request')
    expect(request).toMatchObject({ namespace: 'math', subject: 'mul', payload: { a: 2, b: 3 }, correlationId: id })
    client.send({ type: 'response', correlationId: request.correlationId, result: 6 })
    expect(await peer.waitFor(e => e.metadata?.event?.parentId === id)).toMatchObject({ type: 'math.mul', data: { value: 6 } })

    const socket = phoenixSocket(hub.url('/socket'))
    const channel = socket.channel('plugin:phx', {})
    expect(await outcome(channel.join())).toMatchObject({ status: 'ok' })
    const asked = outcome(channel.push('math.mul', { a: 4, b: 5, reply: true, destinations: ['plugin:mul'] }))
    const second = await client.waitFor(f => f.type === 'request' && f.payload.a === 4)
    client.send({ type: 'response', correlationId: second.correlationId, error: { message: 'overflow', code: 'E_RANGE' } })
    expect(await asked).toEqual({ status: 'error', response: { reason: 'overflow' } })
    // A response to no request it serves is dropped.
    client.send({ type: 'response', correlationId: 'unknown', result: 1 })
    await settle()
    expect(client.closed).toBeUndefined()
  })
})

describe('makaio: broadcasts', () => {
  it('fans out to every handler and answers broadcast-response with the replies in time, partial at the timeout', async () => {
    const hub = await startHub()
    const one = await RawMakaio.ready(hub.url('/makaio?name=one'))
    const two = await RawMakaio.ready(hub.url('/makaio?name=two'))
    const silent = await native(hub, 'silent')
    for (const handler of [one, two]) {
      handler.send({ type: 'subscribe', subjects: { 'health.check': [0] }, ackId: 1 })
      await handler.waitFor(f => f.type === 'subscription-ack')
    }
    const client = await RawMakaio.ready(hub.url('/makaio?name=caller'))
    expect(client.frames[0]).toEqual({ type: 'subscribe', subjects: { 'health.check': [0, 0] } })

    client.send(bus('broadcast', 'health', 'check', { payload: { deep: true }, correlationId: 'b1' }))
    for (const [handler, status] of [[one, 'ok'], [two, 'degraded']] as const) {
      const request = await handler.waitFor(f => f.type === 'request' && f.subject === 'check')
      expect(request.payload).toEqual({ deep: true })
      handler.send({ type: 'response', correlationId: request.correlationId, result: { status } })
    }
    const all = await client.waitFor(f => f.type === 'broadcast-response')
    expect(all.correlationId).toBe('b1')
    expect(all.results).toEqual(expect.arrayContaining([{ nodeId: 'one', payload: { status: 'ok' } }, { nodeId: 'two', payload: { status: 'degraded' } }]))
    expect(all.results).toHaveLength(2)

    // A third handler that never answers: the others' replies at the timeout.
    silent.send({ type: 'module:consumer:register', data: { event: 'health.check' } })
    await client.waitFor(f => f.type === 'subscribe' && f.subjects['health.check']?.length === 3)
    client.send(bus('broadcast', 'health', 'check', { payload: {}, correlationId: 'b2', timeout: 300 }))
    const request = await one.waitFor(f => f.type === 'request' && f.correlationId !== one.frames.find(g => g.type === 'request')!.correlationId)
    one.send({ type: 'response', correlationId: request.correlationId, result: { status: 'ok' } })
    await silent.waitFor(e => e.type === 'health.check')
    const partial = await client.waitFor(f => f.type === 'broadcast-response' && f.correlationId === 'b2')
    expect(partial.results).toEqual([{ nodeId: 'one', payload: { status: 'ok' } }])

    client.send(bus('broadcast', 'nobody', 'home', { payload: {}, correlationId: 'b3' }))
    expect(await client.waitFor(f => f.correlationId === 'b3')).toEqual({ type: 'broadcast-response', correlationId: 'b3', results: [] })
  })
})
