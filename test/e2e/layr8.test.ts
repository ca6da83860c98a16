import type { RunningHub } from '../helpers/hub.ts'
import type { Frame } from '../helpers/phoenix.ts'
import { describe, expect, it } from 'vitest'
import { startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { RawPhoenix, until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'

// Layr8 agents (`layr8/node-sdk`), replayed frame by frame as its PhoenixChannel writes them:
// it dials `<nodeUrl>?api_key=<key>&vsn=2.0.0`, joins `plugins:<did>` (or `plugins:` to be
// given a DID) with `{payload_types, did_spec}` and join_ref = ref = "1", then pushes with
// join_ref null: `message` (a DIDComm plaintext), `ack {ids}` (before running a handler), and
// heartbeats on `phoenix`. Its `request()` resolves on an inbound `message` with its `thid`.

const KEY = 'layr8-key'
const ECHO_REQUEST = 'https://layr8.io/protocols/echo/1.0/request'
const ECHO_RESPONSE = 'https://layr8.io/protocols/echo/1.0/response'

/** The SDK's join payload for handlers of the echo protocol. */
const JOIN = {
  payload_types: ['https://layr8.io/protocols/echo/1.0'],
  did_spec: { mode: 'Create', storage: 'ephemeral', type: 'plugin', verificationMethods: [{ purpose: 'authentication' }, { purpose: 'assertionMethod' }, { purpose: 'keyAgreement' }] },
}

/** An agent as the SDK connects it: the socket, its topic and the join reply's response. */
async function agent(hub: RunningHub, did = ''): Promise<{ socket: RawPhoenix, topic: string, did: string, refs: () => string }> {
  const socket = await RawPhoenix.connect(hub.url(`/plugin_socket/websocket?api_key=${KEY}&vsn=2.0.0`))
  const topic = `plugins:${did}`
  const [, , , , joined] = await socket.request(['1', '1', topic, 'phx_join', JOIN])
  expect(joined.status).toBe('ok')
  let ref = 1
  return { socket, topic, did: joined.response.did ?? did, refs: () => String(++ref) }
}

const pushes = (socket: RawPhoenix, event: string): Frame[] => socket.frames.filter(f => f[3] === event)

describe('layr8 agents on the Phoenix gateway', () => {
  it('assigns a DID to an agent that joins plugins:, and routes an agent-to-agent request, its ack and its thid reply', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const watch = await RawPeer.connect(hub.url())
    await watch.join('watcher', { token: KEY })

    const echo = await agent(hub)
    expect(echo.did).toMatch(new RegExp(`^did:web:127\\.0\\.0\\.1%3A${hub.port}:[\\w-]+$`))
    const asker = await agent(hub, 'did:web:myorg:asker')
    expect(asker.socket.frames.find(f => f[3] === 'phx_reply')![4]).toEqual({ status: 'ok', response: {} })
    // The DIDs are the module names.
    await watch.waitFor(e => e.type === 'module:announced' && e.data.name === echo.did)
    await watch.waitFor(e => e.type === 'module:announced' && e.data.name === 'did:web:myorg:asker')

    // client.request(): a message with a fresh thid.
    const request = { id: 'm-1', type: ECHO_REQUEST, from: 'did:web:myorg:asker', to: [echo.did], thid: 't-1', body: { message: 'hi' } }
    expect((await asker.socket.request([null, asker.refs(), asker.topic, 'message', request]))[4]).toEqual({ status: 'ok', response: { delivered: 1 } })
    const [joinRef, ref, topic, , inbound] = await echo.socket.waitFor(f => f[3] === 'message', 'the request')
    expect([joinRef, ref, topic]).toEqual(['1', null, 'plugins:'])
    expect(inbound).toEqual({ context: { recipient: echo.did, authorized: true, sender_credentials: [] }, plaintext: request })

    // The handler's SDK acks first, then answers to [from] in the same thread.
    expect((await echo.socket.request([null, echo.refs(), echo.topic, 'ack', { ids: ['m-1'] }]))[4]).toEqual({ status: 'ok', response: { delivered: 1 } })
    expect((await asker.socket.waitFor(f => f[3] === 'ack', 'the receipt'))[4]).toEqual({ ids: ['m-1'], from: echo.did })
    const response = { id: 'm-2', type: ECHO_RESPONSE, from: echo.did, to: ['did:web:myorg:asker'], thid: 't-1', body: { echo: 'hi' } }
    expect((await echo.socket.request([null, echo.refs(), echo.topic, 'message', response]))[4].status).toBe('ok')
    const [, , , , answer] = await asker.socket.waitFor(f => f[3] === 'message', 'the reply')
    expect(answer).toEqual({ context: { recipient: 'did:web:myorg:asker', authorized: true, sender_credentials: [] }, plaintext: response })

    // An ack again, or of an id never received, reaches nobody; nothing was broadcast.
    expect((await echo.socket.request([null, echo.refs(), echo.topic, 'ack', { ids: ['m-1', 'm-404'] }]))[4]).toEqual({ status: 'ok', response: { delivered: 0 } })
    await settle()
    expect(pushes(asker.socket, 'ack')).toHaveLength(1)
    expect(watch.ofType('message')).toHaveLength(0)
    expect(watch.ofType('ack')).toHaveLength(0)
  })

  it('answers a message for nobody with "no route", and refuses another agent\'s from or a bad message', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const a = await agent(hub, 'did:web:myorg:a')
    const b = await agent(hub)
    const error = async (payload: unknown): Promise<unknown> => (await a.socket.request([null, a.refs(), a.topic, 'message', payload]))[4]

    expect(await error({ id: 'x1', type: ECHO_REQUEST, from: 'did:web:myorg:a', to: ['did:web:nobody'], body: {} }))
      .toEqual({ status: 'error', response: { reason: 'no route' } })
    expect(await error({ id: 'x2', type: ECHO_REQUEST, from: b.did, to: [b.did], body: {} }))
      .toEqual({ status: 'error', response: { reason: 'from is not this channel\'s DID' } })
    expect(await error({ type: ECHO_REQUEST, to: [b.did] }))
      .toEqual({ status: 'error', response: { reason: 'invalid payload: expected a DIDComm message {id, type, to, from?, thid?, body?}' } })
    expect((await a.socket.request([null, a.refs(), a.topic, 'ack', { ids: 'm-1' }]))[4])
      .toEqual({ status: 'error', response: { reason: 'invalid payload: expected {ids: [message id]}' } })
    // A `to` string, and a DID both listed and repeated, reach the agent once; a missing from is the channel's DID.
    expect(await error({ id: 'x3', type: ECHO_REQUEST, to: b.did, body: {} })).toEqual({ status: 'ok', response: { delivered: 1 } })
    expect(await error({ id: 'x4', type: ECHO_REQUEST, to: [b.did, b.did, 'did:web:nobody'], body: {} })).toEqual({ status: 'ok', response: { delivered: 1 } })
    await b.socket.waitFor(f => f[3] === 'message' && f[4].plaintext.id === 'x4', 'the second message')
    expect(pushes(b.socket, 'message').map(f => [f[4].plaintext.id, f[4].plaintext.from])).toEqual([['x3', 'did:web:myorg:a'], ['x4', 'did:web:myorg:a']])
    expect(pushes(b.socket, 'message').map(f => f[4].plaintext.to)).toEqual([b.did, [b.did, b.did, 'did:web:nobody']])

    // Heartbeats as the SDK sends them, and its phx_leave with a null join_ref, de-announce it.
    expect((await b.socket.request([null, b.refs(), 'phoenix', 'heartbeat', {}]))[4]).toEqual({ status: 'ok', response: {} })
    await b.socket.request([null, b.refs(), b.topic, 'phx_leave', {}])
    expect(hub.server.registry.find(b.did)).toBeUndefined()
    expect(await error({ id: 'x5', type: ECHO_REQUEST, to: [b.did], body: {} })).toEqual({ status: 'error', response: { reason: 'no route' } })
  })
})

describe('layr8 message ids the hub remembers for acks', () => {
  it('refuses a message id longer than limits.maxNameLength, and remembers none from another protocol', async () => {
    const hub = await startHub({ auth: { token: KEY }, limits: { maxNameLength: 64 } })
    const a = await agent(hub, 'did:web:myorg:a')
    const b = await agent(hub, 'did:web:myorg:b')
    // Each remembered id is held until acked, 4096 per channel: a long one would hold up to a frame each.
    const long = 'm'.repeat(65)
    expect((await a.socket.request([null, a.refs(), a.topic, 'message', { id: long, type: ECHO_REQUEST, to: [b.did], body: {} }]))[4])
      .toEqual({ status: 'error', response: { reason: 'limit exceeded: message id' } })
    expect((await a.socket.request([null, a.refs(), a.topic, 'message', { id: 'm'.repeat(64), type: ECHO_REQUEST, to: [b.did], body: {} }]))[4])
      .toEqual({ status: 'ok', response: { delivered: 1 } })
    await b.socket.waitFor(f => f[3] === 'message', 'the message at the limit')
    expect(pushes(b.socket, 'message')).toHaveLength(1)

    // A native peer may route a `message` to the agent itself, naming any id and sender: it is delivered, its id not remembered.
    const native = await RawPeer.connect(hub.url())
    await native.join('native', { token: KEY })
    native.send({ type: 'message', data: { context: {}, plaintext: { id: long, from: 'native', type: ECHO_REQUEST } }, route: { destinations: [`module:${b.did}`] } })
    await b.socket.waitFor(f => f[3] === 'message' && f[4].plaintext.id === long, 'the native message')
    expect((await b.socket.request([null, b.refs(), b.topic, 'ack', { ids: [long, 'm'.repeat(64)] }]))[4]).toEqual({ status: 'ok', response: { delivered: 1 } })
    await a.socket.waitFor(f => f[3] === 'ack', 'the receipt of the message at the limit')
    await settle()
    expect(native.ofType('ack')).toEqual([])
  })
})

describe('layr8 agents on two hub nodes over one real Redis', () => {
  it('a request, its ack and its reply cross nodes, addressed by DID', async () => {
    const redis = await startRedis()
    onCleanup(() => redis.kill())
    const [a, b] = await startNodes(redis.url, 2, 2000, { auth: { token: KEY } }) as [RunningHub, RunningHub]
    const echo = await agent(a)
    const asker = await agent(b, 'did:web:myorg:asker')
    await until(() => b.server.registry.find(echo.did), 'node B to learn the echo agent')

    const request = { id: 'm-1', type: ECHO_REQUEST, from: 'did:web:myorg:asker', to: [echo.did], thid: 't-1', body: { message: 'hi' } }
    expect((await asker.socket.request([null, asker.refs(), asker.topic, 'message', request]))[4]).toEqual({ status: 'ok', response: { delivered: 1 } })
    expect((await echo.socket.waitFor(f => f[3] === 'message', 'the request'))[4].plaintext).toEqual(request)
    await echo.socket.request([null, echo.refs(), echo.topic, 'ack', { ids: ['m-1'] }])
    expect((await asker.socket.waitFor(f => f[3] === 'ack', 'the receipt'))[4]).toEqual({ ids: ['m-1'], from: echo.did })
    const response = { id: 'm-2', type: ECHO_RESPONSE, from: echo.did, to: ['did:web:myorg:asker'], thid: 't-1', body: { echo: 'hi' } }
    await echo.socket.request([null, echo.refs(), echo.topic, 'message', response])
    expect((await asker.socket.waitFor(f => f[3] === 'message', 'the reply'))[4].plaintext).toEqual(response)
  })
})
