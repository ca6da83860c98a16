import type { Hub } from '../../src/hub.ts'
import type { RunningHub } from '../helpers/hub.ts'
import type { Frame, Message } from '../helpers/phoenix.ts'
import { describe, expect, it } from 'vitest'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'
import { outcome, phoenixSocket, RawPhoenix, until } from '../helpers/phoenix.ts'

// A reply echoes its ref: 16 KiB refs make every reply 16 KiB.
const PADDING = 'r'.repeat(16 * 1024)
const BATCH = 100
// 64 MiB of replies in all: far more than loopback socket buffers hold, so a paused reader must overflow.
const MAX_BATCHES = 40

/** What the hub itself saw: frames it read, and sockets it closed as slow consumers. */
function hubSide(hub: Hub): { received: () => number, slowConsumers: () => number } {
  let received = 0
  let slowConsumers = 0
  hub.observers.on('received', () => received++)
  hub.observers.on('error', (reason) => {
    if (reason === 'slow_consumer')
      slowConsumers++
  })
  return { received: () => received, slowConsumers: () => slowConsumers }
}

const names = (hub: Hub): string[] => [...hub.registry.entries()].map(e => e.name).sort()
const rawUrl = (hub: RunningHub): string => hub.url('/socket/websocket?vsn=2.0.0')

describe('phoenix gateway: slow consumers', () => {
  it('closes a socket that sends pushes but never reads the replies with 1013, de-announcing all its channels', async () => {
    // It floods on purpose: no rate limit, so only its not reading decides.
    const hub = await startHub({ limits: { maxBufferedBytes: 256 * 1024, eventsPerSec: 0, bytesPerSec: 0 } })
    const core = hub.server.hub
    const seen = hubSide(core)
    const watch = await RawPeer.connect(hub.url())
    await watch.join('watcher')
    const slow = await RawPhoenix.connect(rawUrl(hub))
    await slow.request(['1', '1', 'plugin:slow', 'phx_join', {}])
    await slow.request(['2', '2', 'plugin:slower', 'phx_join', {}])
    expect(core.peers.size).toBe(3)

    // Pushes routed to no one: the replies are all the hub writes to this socket.
    slow.ws.pause()
    let sent = 0
    const before = seen.received()
    for (let batch = 0; batch < MAX_BATCHES && seen.slowConsumers() === 0; batch++) {
      for (let i = 0; i < BATCH; i++)
        slow.send(['1', `${PADDING}${sent++}`, 'plugin:slow', 'note', { destinations: ['module:nobody'] }])
      await until(() => seen.received() - before >= sent || seen.slowConsumers() > 0, 'the hub to read the batch')
    }

    expect(seen.slowConsumers()).toBe(1)
    expect(names(core)).toEqual(['watcher'])
    expect(core.peers.size).toBe(1)
    const gone = (await Promise.all(['slow', 'slower'].map(name => watch.waitFor(e => e.type === 'module:de-announced' && e.data.name === name))))
    expect(gone.map(e => e.data.reason)).toEqual(['connection closed', 'connection closed'])

    // Closed for good: what it still sends is neither read nor answered.
    const read = seen.received()
    for (let i = 0; i < BATCH; i++)
      slow.send(['1', `${PADDING}late${i}`, 'plugin:slow', 'note', {}])
    slow.send(['3', '3', 'plugin:again', 'phx_join', {}])
    await settle(300)
    expect(seen.received()).toBe(read)
    expect(names(core)).toEqual(['watcher'])

    slow.ws.resume()
    expect(await slow.waitForClose()).toEqual({ code: 1013, reason: 'slow consumer' })
  })

  it('closes a socket with no channel that sends heartbeats but never reads the replies', async () => {
    const hub = await startHub({ limits: { maxBufferedBytes: 256 * 1024, eventsPerSec: 0, bytesPerSec: 0 } })
    const seen = hubSide(hub.server.hub)
    const slow = await RawPhoenix.connect(rawUrl(hub))
    const reader = await RawPhoenix.connect(rawUrl(hub))

    slow.ws.pause()
    let sent = 0
    for (let batch = 0; batch < MAX_BATCHES && seen.slowConsumers() === 0; batch++) {
      for (let i = 0; i < BATCH; i++)
        slow.send([null, `${PADDING}${sent++}`, 'phoenix', 'heartbeat', {}])
      await until(() => seen.received() >= sent || seen.slowConsumers() > 0, 'the hub to read the batch')
    }
    expect(seen.slowConsumers()).toBe(1)

    // Another socket is answered as before.
    expect((await reader.request([null, 'r', 'phoenix', 'heartbeat', {}]))[4]).toEqual({ status: 'ok', response: {} })
    slow.ws.resume()
    expect(await slow.waitForClose()).toEqual({ code: 1013, reason: 'slow consumer' })
  })
})

describe('phoenix gateway: registry changes once per socket', () => {
  const CHANNELS = 422

  it(`a socket with ${CHANNELS} channels (the phoenix client) gets each registry change once; routed events still reach their channel`, async () => {
    // All its joins at once are more frames than the default rate limit's burst.
    const hub = await startHub({ phoenix: { maxChannels: CHANNELS }, limits: { eventsPerSec: 0 } })
    const core = hub.server.hub
    const socket = phoenixSocket(hub.url('/socket'))
    const messages: Message[] = []
    socket.onMessage((message) => {
      messages.push(message as Message)
    })
    const channels = Array.from({ length: CHANNELS }, (_, i) => socket.channel(`plugin:c${i}`, { hub_events: true }))
    const replies = await Promise.all(channels.map(channel => outcome(channel.join())))
    expect(replies.every(r => r.status === 'ok')).toBe(true)
    await until(() => core.registry.size === CHANNELS, 'every channel announced')
    const ofEvent = (event: string): Message[] => messages.filter(m => m.event === event)

    // One sync and one announcement per other channel, all on the oldest channel.
    await until(() => ofEvent('registry:modules:sync').length > 0, 'the sync')
    await settle()
    expect(ofEvent('registry:modules:sync').map(m => m.topic)).toEqual(['plugin:c0'])
    const announced = ofEvent('module:announced')
    expect(announced.map(m => m.payload.name).sort()).toEqual(channels.slice(1).map(c => c.topic.slice('plugin:'.length)).sort())
    expect(new Set(announced.map(m => m.topic))).toEqual(new Set(['plugin:c0']))

    const before = messages.length
    const native = await RawPeer.connect(hub.url())
    await native.join('newcomer')
    await until(() => ofEvent('module:announced').some(m => m.payload.name === 'newcomer'), 'the announcement')
    native.send({ type: 'to-one', data: { n: 1 }, route: { destinations: ['module:c7'] } })
    native.send({ type: 'to-all', data: { n: 2 } })
    await until(() => ofEvent('to-all').length === CHANNELS, 'the broadcast on every channel')
    await native.close()
    await until(() => ofEvent('module:de-announced').length > 0, 'the de-announcement')
    await settle()

    const since = messages.slice(before)
    expect(since.filter(m => m.event === 'module:announced').map(m => [m.topic, m.payload.name])).toEqual([['plugin:c0', 'newcomer']])
    expect(since.filter(m => m.event === 'module:de-announced').map(m => [m.topic, m.payload.name])).toEqual([['plugin:c0', 'newcomer']])
    expect(since.filter(m => m.event === 'to-one').map(m => m.topic)).toEqual(['plugin:c7'])
    // Registry traffic aside, a peer's broadcast reaches every module as before.
    expect(new Set(since.filter(m => m.event === 'to-all').map(m => m.topic)).size).toBe(CHANNELS)
    expect(since.filter(m => m.event !== 'to-all' && m.event !== 'to-one')).toHaveLength(2)
  })

  it('health changes reach a socket once', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 300 } })
    const socket = phoenixSocket(hub.url('/socket'), { heartbeatIntervalMs: 50 })
    const messages: Message[] = []
    socket.onMessage((message) => {
      messages.push(message as Message)
    })
    await Promise.all(['a', 'b', 'c'].map(name => outcome(socket.channel(`plugin:${name}`, { hub_events: ['module:announced', 'module:de-announced', 'registry:modules:health:unhealthy'] }).join())))

    // A native module that answers no ping: unhealthy, then expired.
    const silent = await RawPeer.connect(hub.url(), { autoPong: false })
    await silent.join('silent')
    const about = (event: string): Message[] => messages.filter(m => m.event === event && m.payload.name === 'silent')
    await until(() => about('module:de-announced').length > 0, 'the silent module to expire')
    await settle()
    for (const event of ['module:announced', 'registry:modules:health:unhealthy', 'module:de-announced'])
      expect(about(event).map(m => m.topic), event).toEqual(['plugin:a'])
  })

  it('when the channel that carries the registry leaves, the next oldest takes over with a fresh sync', async () => {
    const hub = await startHub()
    const socket = await RawPhoenix.connect(rawUrl(hub))
    // The oldest channel asked for none of the hub's events: it carries none.
    await socket.request(['0', '0', 'plugin:quiet', 'phx_join', {}])
    for (const [ref, name] of [['1', 'a'], ['2', 'b'], ['3', 'c']] as const)
      await socket.request([ref, ref, `plugin:${name}`, 'phx_join', { hub_events: true }])
    await until(() => socket.frames.some(f => f[3] === 'registry:modules:sync'), 'the sync')
    await settle()
    const registryFrames = (from: number): Frame[] => socket.frames.slice(from).filter(f => /^(?:module:(?:de-)?announced|registry:)/.test(f[3]))
    expect(registryFrames(0).map(f => [f[2], f[3], f[4].name])).toEqual([
      ['plugin:a', 'registry:modules:sync', undefined],
      ['plugin:a', 'module:announced', 'b'],
      ['plugin:a', 'module:announced', 'c'],
    ])

    const left = socket.frames.length
    await socket.request(['1', '4', 'plugin:a', 'phx_leave', {}])
    const sync = await socket.waitFor(f => f[3] === 'registry:modules:sync' && socket.frames.indexOf(f) >= left, 'the new carrier\'s sync')
    expect(sync[2]).toBe('plugin:b')
    expect(sync[4].modules.map((m: { name: string }) => m.name).sort()).toEqual(['b', 'c', 'quiet'])

    const native = await RawPeer.connect(hub.url())
    await native.join('newcomer')
    await socket.waitFor(f => f[3] === 'module:announced' && f[4].name === 'newcomer')
    await settle()
    expect(registryFrames(left).map(f => [f[2], f[3], f[4].name])).toEqual([
      ['plugin:b', 'module:de-announced', 'a'],
      ['plugin:b', 'registry:modules:sync', undefined],
      ['plugin:b', 'module:announced', 'newcomer'],
    ])
  })
})

describe('phoenix gateway: liveness pings', () => {
  it('pings a silent socket once per sweep, not once per channel', async () => {
    const readTimeout = 400
    const hub = await startHub({ heartbeat: { readTimeout } })
    const socket = await RawPhoenix.connect(rawUrl(hub), { autoPong: false })
    let pings = 0
    socket.ws.on('ping', () => pings++)
    const joined = Date.now()
    for (let i = 1; i <= 10; i++)
      await socket.request([String(i), String(i), `plugin:p${i}`, 'phx_join', {}])
    expect((await socket.waitForClose()).code).toBe(4000)
    // The hub sweeps four times per read timeout; a ping per channel would be ten per sweep.
    const sweeps = (Date.now() - joined) / (readTimeout / 4)
    expect(pings).toBeGreaterThan(0)
    expect(pings).toBeLessThanOrEqual(sweeps + 1)
  })
})

describe('phoenix gateway: channels per socket', () => {
  it('refuses a join past the cap (PHOENIX_MAX_CHANNELS here) with "too many channels", counted', async () => {
    const hub = await startHub({ env: { PHOENIX_MAX_CHANNELS: '3' } })
    const core = hub.server.hub
    const socket = await RawPhoenix.connect(rawUrl(hub))
    for (const ref of ['1', '2', '3'])
      expect((await socket.request([ref, ref, `plugin:m${ref}`, 'phx_join', {}]))[4].status).toBe('ok')
    expect((await socket.request(['4', '4', 'plugin:m4', 'phx_join', {}]))[4]).toEqual({ status: 'error', response: { reason: 'too many channels' } })
    expect(names(core)).toEqual(['m1', 'm2', 'm3'])

    // The socket keeps its channels; leaving one makes room.
    expect((await socket.request(['1', '5', 'plugin:m1', 'ping', {}]))[4].status).toBe('ok')
    await socket.request(['1', '6', 'plugin:m1', 'phx_leave', {}])
    expect((await socket.request(['7', '7', 'plugin:m4', 'phx_join', {}]))[4].status).toBe('ok')

    // The real client sees the refusal as a join error; another socket has its own allowance.
    const client = phoenixSocket(hub.url('/socket'))
    const joins = await Promise.all(['x', 'y', 'z', 'w'].map(name => outcome(client.channel(`plugin:${name}`, {}).join())))
    expect(joins.map(j => j.status)).toEqual(['ok', 'ok', 'ok', 'error'])
    expect(joins[3]!.response).toEqual({ reason: 'too many channels' })
    client.disconnect()

    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_errors_total{reason="too_many_channels"}')).toBe(2)
  })

  it('refuses a join whose join_ref is longer than a name: a channel holds it for the socket\'s life', async () => {
    const hub = await startHub()
    const socket = await RawPhoenix.connect(rawUrl(hub))
    const long = 'j'.repeat(300_000)
    expect((await socket.request([long, '1', 'plugin:hoarder', 'phx_join', {}]))[4]).toEqual({ status: 'error', response: { reason: 'limit exceeded: join_ref' } })
    expect(names(hub.server.hub)).toEqual([])
    expect((await socket.request(['j'.repeat(256), '2', 'plugin:modest', 'phx_join', {}]))[4].status).toBe('ok')
    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_errors_total{reason="limit_exceeded"}')).toBe(1)
  })

  it('refuses a request whose ref or request_id is longer than a name: it is held until the reply, up to the longest timeout', async () => {
    const hub = await startHub()
    // A responder that reads every request and answers none.
    const silent = await RawPeer.connect(hub.url())
    await silent.join('silent')
    silent.send({ type: 'module:consumer:register', data: { event: 'work', mode: 'consumer' } })
    await until(() => hub.server.hub.consumers.handlers('work').length > 0, 'the consumer to register')
    const socket = await RawPhoenix.connect(rawUrl(hub))
    await socket.request(['1', '1', 'plugin:asker', 'phx_join', {}])
    const long = 'r'.repeat(1000)
    expect((await socket.request(['1', long, 'plugin:asker', 'work', { reply: true }]))[4]).toEqual({ status: 'error', response: { reason: 'limit exceeded: ref' } })
    expect((await socket.request(['1', '2', 'plugin:asker', 'hub_call:work', { request_id: long }]))[4]).toEqual({ status: 'error', response: { reason: 'limit exceeded: ref' } })
    // Short refs are served; a push that asks for nothing keeps any ref.
    expect((await socket.request(['1', '3', 'plugin:asker', 'hub_call:work', { request_id: 'call-1' }]))[4].status).toBe('ok')
    expect((await socket.request(['1', `${long}-note`, 'plugin:asker', 'note', { destinations: ['plugin:silent'] }]))[4].status).toBe('ok')
    expect(silent.ofType('work')).toHaveLength(1)
  })

  it('remembers no request_id of a request to a channel that is longer than a name: that request is not answered in the plugin\'s terms', async () => {
    const hub = await startHub()
    const plugin = await RawPhoenix.connect(rawUrl(hub))
    await plugin.request(['1', '1', 'debug_plugin:models', 'phx_join', {}])
    const requester = await RawPeer.connect(hub.url())
    await requester.join('agent')
    const long = 'q'.repeat(1000)
    for (const [id, requestId] of [['call-long', long], ['call-short', 'req-1']]) {
      requester.send({ type: 'invoke_model', data: { request_id: requestId }, metadata: { event: { id } }, route: { destinations: ['plugin:models'], reply: { timeoutMs: 500 } } })
      await plugin.waitFor(f => f[3] === 'invoke_model' && f[4].request_id === requestId)
      plugin.send(['1', `answer-${id}`, 'debug_plugin:models', 'invoke_model_response', { request_id: requestId, data: { text: 'hi' } }])
    }
    await requester.waitFor(event => event.type === 'invoke_model_response' && event.metadata?.event?.parentId === 'call-short')
    const timedOut = await requester.waitFor(event => event.type === 'error' && event.metadata?.event?.parentId === 'call-long')
    expect(timedOut.data.message).toBe('request timed out')
    // Unmatched, the plugin's answer is a push like any other: no reply to the long request.
    expect(requester.ofType('invoke_model_response').map(event => event.metadata?.event?.parentId)).toEqual([undefined, 'call-short'])
  })

  it('logs a flood of refused joins at most once a second, not once a join', async () => {
    const hub = await startHub({ env: { PHOENIX_MAX_CHANNELS: '1' }, limits: { eventsPerSec: 0 } })
    const warnings: string[] = []
    hub.server.hub.options.logger.warn = ((line: string) => { warnings.push(line) }) as typeof hub.server.hub.options.logger.warn
    const socket = await RawPhoenix.connect(rawUrl(hub))
    expect((await socket.request(['1', '1', 'plugin:m1', 'phx_join', {}]))[4].status).toBe('ok')
    for (let i = 2; i < 40; i++)
      expect((await socket.request([`${i}`, `${i}`, `plugin:m${i}`, 'phx_join', {}]))[4]).toEqual({ status: 'error', response: { reason: 'too many channels' } })
    expect(warnings.length).toBeGreaterThan(0)
    expect(warnings.length).toBeLessThan(5)
  })
})
