import type { Channel } from 'phoenix'
import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import type { Message } from '../helpers/phoenix.ts'
import { describe, expect, it } from 'vitest'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { outcome, phoenixSocket, RawPhoenix, until } from '../helpers/phoenix.ts'

// A Phoenix plugin as a chat-ingestion consumer: it registers with a join parameter or a push of
// `module:consumer:register` (the data AIRI's peers send), and gets `input:text` from a HEAD peer.

const KEY = 'plugin-key'
const NO_CONSUMER = 'no consumer registered for requested event delivery'

/** A raw HEAD extension peer (handshake `module`): authenticate, announce, wait for its announce echoed. */
async function headPeer(hub: RunningHub, name: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url())
  peer.send({ type: 'module:authenticate', data: { token: KEY } })
  await peer.waitForType('module:authenticated')
  const identity = { id: `${name}-1`, extension: { id: `proj-airi:${name}` } }
  peer.send({ type: 'extension:module:announce', data: { name, identity, possibleEvents: ['input:text'], dependencies: [] } })
  await peer.waitFor(e => e.type === 'extension:module:announced' && e.data.name === name)
  return peer
}

/** `input:text` as stage-ui sends it; its own source claim, which the hub replaces. */
function sendText(peer: RawPeer, text: string, route?: WireEvent['route']): string {
  return peer.send({ type: 'input:text', data: { text }, route, metadata: { source: { kind: 'plugin', id: 'x', plugin: { id: 'x' } } } })
}

/** The real `phoenix` client, recording every message of its channels. */
function phoenixPlugin(hub: RunningHub) {
  const socket = phoenixSocket(hub.url('/socket'), { params: { api_key: KEY } })
  const messages: Message[] = []
  socket.onMessage((message) => {
    messages.push(message as Message)
  })
  const texts = (topic: string): unknown[] => messages.filter(m => m.topic === topic && m.event === 'input:text').map(m => m.payload.text)
  return { socket, messages, texts }
}

async function joined(channel: Channel, hub: RunningHub, name: string): Promise<void> {
  expect(await outcome(channel.join())).toMatchObject({ status: 'ok' })
  await until(() => hub.server.registry.find(name), `${name} in the registry`)
}

describe('phoenix consumers', () => {
  it('registers with a join parameter and gets exactly one input:text, which the other peers never see', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const sender = await headPeer(hub, 'discord')
    const stage = await headPeer(hub, 'stage-web')
    const plugin = phoenixPlugin(hub)
    const chat = plugin.socket.channel('plugin:chat', { consumers: [{ event: 'input:text', group: 'chat-ingestion', priority: 1 }] })
    await joined(chat, hub, 'chat')

    sendText(sender, 'hello')
    await until(() => plugin.texts('plugin:chat').length > 0, 'the consumer to get input:text')
    // As any hub event to the channel: `[join_ref, null, topic, type, data]`, the source stamped by the hub.
    const message = plugin.messages.find(m => m.event === 'input:text')!
    expect(message.payload).toEqual({ text: 'hello' })
    await settle()
    expect(plugin.texts('plugin:chat')).toEqual(['hello'])
    expect(stage.ofType('input:text')).toHaveLength(0)
    expect(sender.ofType('input:text')).toHaveLength(0)

    // Raw frames: the event carries the channel's join_ref and no ref.
    const raw = await RawPhoenix.connect(hub.url(`/socket/websocket?vsn=2.0.0&api_key=${KEY}`))
    await raw.request(['7', '8', 'plugin:rawchat', 'phx_join', { consumers: [{ event: 'input:text', group: 'chat-ingestion', priority: 5 }] }])
    sendText(sender, 'to the higher priority', { delivery: { selection: 'priority' } })
    expect(await raw.waitFor(f => f[3] === 'input:text')).toEqual(['7', null, 'plugin:rawchat', 'input:text', { text: 'to the higher priority' }])
    await settle()
    expect(plugin.texts('plugin:chat')).toEqual(['hello'])
  })

  it('registers and unregisters with a push, answered ok, or with the hub\'s reason', async () => {
    const hub = await startHub({ auth: { token: KEY }, limits: { maxConsumersPerPeer: 1 } })
    const sender = await headPeer(hub, 'discord')
    const plugin = phoenixPlugin(hub)
    const chat = plugin.socket.channel('plugin:chat')
    await joined(chat, hub, 'chat')

    // Before registering, a required delivery finds nobody.
    const early = sendText(sender, 'nobody', { delivery: { required: true } })
    expect((await sender.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === early)).data.message).toBe(NO_CONSUMER)

    expect(await outcome(chat.push('module:consumer:register', { event: 'input:text', mode: 'consumer-group', group: 'chat-ingestion' }))).toEqual({ status: 'ok', response: {} })
    sendText(sender, 'one')
    await until(() => plugin.texts('plugin:chat').length > 0, 'input:text')
    expect(plugin.texts('plugin:chat')).toEqual(['one'])

    // The core's refusals come back as the reply: bad data, and a limit.
    expect(await outcome(chat.push('module:consumer:register', { group: 'chat-ingestion' })))
      .toEqual({ status: 'error', response: { reason: 'invalid consumer: expected {event, group?, priority?, mode?}' } })
    expect(await outcome(chat.push('module:consumer:register', { event: 'input:voice' })))
      .toEqual({ status: 'error', response: { reason: 'limit exceeded: consumer registrations' } })

    expect(await outcome(chat.push('module:consumer:unregister', { event: 'input:text', mode: 'consumer-group', group: 'chat-ingestion' }))).toEqual({ status: 'ok', response: {} })
    const late = sendText(sender, 'gone', { delivery: { required: true } })
    expect((await sender.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === late)).data.message).toBe(NO_CONSUMER)
    await settle()
    expect(plugin.texts('plugin:chat')).toEqual(['one'])
  })

  it('drops the registrations when the channel leaves and when the socket closes', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const sender = await headPeer(hub, 'discord')
    // The error of a required delivery is sent while routing: a ping answered after it proves there was none.
    const required = async (text: string): Promise<string | undefined> => {
      const id = sendText(sender, text, { delivery: { required: true } })
      const ping = sender.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
      await sender.waitFor(e => e.type === 'transport:connection:heartbeat' && e.metadata?.event?.parentId === ping)
      return sender.received.find(e => e.type === 'error' && e.metadata?.event?.parentId === id)?.data.message as string | undefined
    }
    const consumers = [{ event: 'input:text', group: 'chat-ingestion' }]

    const plugin = phoenixPlugin(hub)
    const chat = plugin.socket.channel('plugin:chat', { consumers })
    await joined(chat, hub, 'chat')
    expect(await required('while joined')).toBeUndefined()
    await until(() => plugin.texts('plugin:chat').length > 0, 'input:text')
    expect(await outcome(chat.leave())).toMatchObject({ status: 'ok' })
    expect(await required('after leave')).toBe(NO_CONSUMER)

    const raw = await RawPhoenix.connect(hub.url(`/socket/websocket?vsn=2.0.0&api_key=${KEY}`))
    await raw.request(['1', '1', 'plugin:rawchat', 'phx_join', { consumers }])
    expect(await required('while connected')).toBeUndefined()
    await raw.close()
    await until(() => !hub.server.registry.find('rawchat'), 'rawchat to leave')
    expect(await required('after close')).toBe(NO_CONSUMER)
  })

  it('refuses a join with bad consumers, or more than the hub allows, with a clear reason', async () => {
    const hub = await startHub({ auth: { token: KEY }, limits: { maxConsumersPerPeer: 1 } })
    const watcher = await headPeer(hub, 'watcher')
    const plugin = phoenixPlugin(hub)
    const bad = plugin.socket.channel('plugin:bad', { consumers: [{ group: 'chat-ingestion' }] })
    expect(await outcome(bad.join())).toEqual({ status: 'error', response: { reason: 'invalid consumer: expected {event, group?, priority?, mode?} in consumers' } })

    const raw = await RawPhoenix.connect(hub.url(`/socket/websocket?vsn=2.0.0&api_key=${KEY}`))
    expect((await raw.request(['1', '1', 'plugin:notalist', 'phx_join', { consumers: 'input:text' }]))[4].status).toBe('error')
    expect((await raw.request(['2', '2', 'plugin:badmode', 'phx_join', { consumers: [{ event: 'input:text', mode: 'broadcast' }] }]))[4].status).toBe('error')
    expect((await raw.request(['3', '3', 'plugin:many', 'phx_join', { consumers: [{ event: 'input:text' }, { event: 'input:voice' }] }]))[4])
      .toEqual({ status: 'error', response: { reason: 'limit exceeded: consumer registrations' } })
    await settle()
    // Refused joins never reach the registry, not even for a moment.
    expect(hub.server.registry.size).toBe(1)
    expect(watcher.received.filter(e => e.type.endsWith('announced') && e.data.name !== 'watcher')).toEqual([])
    // The socket stays usable: a good join after the bad ones.
    expect((await raw.request(['4', '4', 'plugin:good', 'phx_join', { consumers: [{ event: 'input:text' }] }]))[4]).toEqual({ status: 'ok', response: {} })
  })
})
