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
    channel.on('chat.message', payload => pushed.push(payload))
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
