import type { WireEvent } from '../helpers/hub.ts'
import { Client } from '@proj-airi/server-sdk'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createServer } from '../../src/server.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { outcome, phoenixSocket, RawPhoenix, until, upgradeStatus } from '../helpers/phoenix.ts'

const KEY = 'plugin-key'

/** An authenticated native watcher that records registry deltas. */
async function watcher(hub: Awaited<ReturnType<typeof startHub>>): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url())
  await peer.join('watcher', { token: KEY })
  return peer
}

/** A real `@proj-airi/server-sdk@0.8.4` client recording what it receives. */
function airiClient(url: string, name: string) {
  const received: WireEvent[] = []
  const client = new Client({
    name,
    url,
    token: KEY,
    identity: { plugin: name, instanceId: `${name}-1` },
    autoReconnect: false,
    onAnyMessage: event => received.push(event as WireEvent),
  })
  onCleanup(() => client.close())
  const waitFor = (predicate: (event: WireEvent) => boolean, what: string): Promise<WireEvent> =>
    until(() => received.find(predicate), `${name}: ${what}`)
  return { client, received, waitFor }
}

const announcedAs = (name: string) => (e: WireEvent) => e.type === 'module:announced' && e.data.name === name
const deannounced = (name: string) => (e: WireEvent) => e.type === 'module:de-announced' && e.data.name === name

describe('phoenix gateway: upgrade', () => {
  it('refuses a wrong or missing api_key with 403 before the upgrade, and the phoenix client sees it', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const url = `ws://127.0.0.1:${hub.port}/debug_socket/websocket`
    expect(await upgradeStatus(`${url}?vsn=2.0.0&api_key=wrong`)).toBe(403)
    expect(await upgradeStatus(`${url}?vsn=2.0.0`)).toBe(403)

    const errors: unknown[] = []
    const socket = phoenixSocket(hub.url('/debug_socket'), { params: { api_key: 'wrong' } })
    socket.onError((error) => {
      errors.push(error)
    })
    const channel = socket.channel('debug_plugin:intruder')
    channel.join()
    await until(() => errors.length > 0, 'the client error')
    expect(String((errors[0] as { message?: string }).message)).toContain('403')
    await settle()
    expect(channel.state).not.toBe('joined')
    expect(socket.isConnected()).toBe(false)
    expect(hub.server.registry.size).toBe(0)

    // Either query parameter name carries a good key.
    await RawPhoenix.connect(`${url}?vsn=2.0.0&api_key=${KEY}`)
    await RawPhoenix.connect(`${url}?vsn=2.0.0&token=${KEY}`)
  })

  it('takes the phoenix client\'s authToken (a Sec-WebSocket-Protocol token) too', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const socket = phoenixSocket(hub.url('/socket'), { authToken: KEY })
    const channel = socket.channel('plugin:subprotocol', {})
    channel.join()
    await until(() => channel.state === 'joined', 'the join')
    expect([...hub.server.registry.entries()].map(e => e.name)).toEqual(['subprotocol'])

    const errors: unknown[] = []
    const refused = phoenixSocket(hub.url('/socket'), { authToken: 'wrong' })
    refused.onError((error) => {
      errors.push(error)
    })
    await until(() => errors.length > 0, 'the client error')
    expect(String((errors[0] as { message?: string }).message)).toContain('403')
  })

  it('serves every default path with and without /websocket, and only V2', async () => {
    const hub = await startHub()
    for (const base of ['/socket', '/debug_socket', '/release_socket', '/plugin_socket']) {
      for (const path of [base, `${base}/websocket`]) {
        const socket = await RawPhoenix.connect(hub.url(`${path}?vsn=2.0.0`))
        expect(await socket.request([null, '1', 'phoenix', 'heartbeat', {}]))
          .toEqual([null, '1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }])
        await socket.close()
      }
    }
    expect(await upgradeStatus(hub.url('/socket/websocket?vsn=1.0.0'))).toBe(400)
    expect(await upgradeStatus(hub.url('/elsewhere/websocket?vsn=2.0.0'))).toBe(404)
  })

  it('takes its paths from options', async () => {
    const hub = await startHub({ phoenix: { paths: ['/hub_socket'] } })
    const socket = await RawPhoenix.connect(hub.url('/hub_socket/websocket?vsn=2.0.0'))
    expect((await socket.request(['1', '1', 'plugin:custom', 'phx_join', {}]))[4].status).toBe('ok')
    expect(await upgradeStatus(hub.url('/socket/websocket?vsn=2.0.0'))).toBe(404)
  })

  it('refuses invalid paths and topics, and a path another endpoint has', () => {
    expect(() => createServer({ phoenix: { paths: ['socket'] } })).toThrow('Invalid phoenix.paths: "socket"')
    expect(() => createServer({ phoenix: { paths: ['/socket/'] } })).toThrow('Invalid phoenix.paths')
    expect(() => createServer({ phoenix: { topics: ['a:b'] } })).toThrow('Invalid phoenix.topics: "a:b"')
    expect(() => createServer({ phoenix: { maxChannels: 0 } })).toThrow('Invalid PHOENIX_MAX_CHANNELS: 0')
    expect(() => createServer({ path: '/socket', logger: { level: 'silent' } })).toThrow('/socket is already an endpoint')
  })
})

describe('phoenix gateway: channels over raw V2 frames', () => {
  it('joins with the same refs, announces the module with phoenix labels, several channels per socket', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const watch = await watcher(hub)
    const socket = await RawPhoenix.connect(hub.url(`/socket/websocket?vsn=2.0.0&api_key=${KEY}`))

    expect(await socket.request(['3', '4', 'debug_plugin:echo', 'phx_join', { hub_events: true }]))
      .toEqual(['3', '4', 'debug_plugin:echo', 'phx_reply', { status: 'ok', response: {} }])
    const announced = await watch.waitFor(announcedAs('echo'))
    expect(announced.data.identity).toMatchObject({ plugin: 'echo', labels: { protocol: 'phoenix', topic: 'debug_plugin' } })

    // A Layr8-style DID topic: the module name is everything after the first ':'.
    expect((await socket.request(['5', '5', 'plugins:did:web:agent.example', 'phx_join', { protocols: ['x'] }]))[4])
      .toEqual({ status: 'ok', response: {} })
    await watch.waitFor(announcedAs('did:web:agent.example'))
    expect([...hub.server.registry.entries()].map(e => e.name).sort()).toEqual(['did:web:agent.example', 'echo', 'watcher'])

    // The join is answered before the hub's own events reach the channel.
    const replyAt = socket.frames.findIndex(f => f[0] === '3' && f[3] === 'phx_reply')
    const sync = socket.frames.findIndex(f => f[0] === '3' && f[3] === 'registry:modules:sync')
    expect(sync).toBeGreaterThan(replyAt)
    expect(socket.frames[sync]).toMatchObject(['3', null, 'debug_plugin:echo', 'registry:modules:sync', { modules: expect.any(Array) }])
  })

  it('pushes the hub\'s own events only into channels whose join asked for them (hub_events)', async () => {
    const hub = await startHub()
    const socket = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await socket.request(['1', '1', 'plugin:plain', 'phx_join', {}])
    await socket.request(['2', '2', 'plugin:listed', 'phx_join', { hub_events: ['module:announced'] }])
    const other = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await other.request(['1', '1', 'plugin:all', 'phx_join', { hub_events: true }])
    await other.waitFor(f => f[3] === 'registry:modules:sync', 'the sync')

    const native = await RawPeer.connect(hub.url())
    await native.join('newcomer')
    native.send({ type: 'hello', data: { n: 1 } })
    await until(() => socket.frames.filter(f => f[3] === 'hello').length === 2 && other.frames.some(f => f[3] === 'hello'), 'the event on every channel')
    await native.close()
    await other.waitFor(f => f[3] === 'module:de-announced', 'the de-announcement')
    await settle()

    // A plugin that asked for nothing sees its routed events only; a list gets those types alone.
    const pushes = (frames: typeof socket.frames): string[][] => frames.filter(f => f[3] !== 'phx_reply').map(f => [f[2], f[3], f[4].name].filter(Boolean))
    expect(pushes(socket.frames)).toEqual([
      ['plugin:listed', 'module:announced', 'all'],
      ['plugin:listed', 'module:announced', 'newcomer'],
      ['plugin:plain', 'hello'],
      ['plugin:listed', 'hello'],
    ])
    expect(pushes(other.frames)).toEqual([
      ['plugin:all', 'module:authenticated'],
      ['plugin:all', 'registry:modules:sync'],
      ['plugin:all', 'module:announced', 'newcomer'],
      ['plugin:all', 'hello'],
      ['plugin:all', 'module:de-announced', 'newcomer'],
    ])
    expect((await socket.request(['3', '3', 'plugin:bad', 'phx_join', { hub_events: ['hello'] }]))[4])
      .toEqual({ status: 'error', response: { reason: 'invalid hub_events: expected true or a list of the hub\'s event types' } })
  })

  it('answers bad joins, unknown topics and bad pushes with status error, keeping the socket', async () => {
    const hub = await startHub()
    const watch = await RawPeer.connect(hub.url())
    await watch.join('watcher')
    const socket = await RawPhoenix.connect(hub.url('/debug_socket/websocket?vsn=2.0.0'))
    const error = async (frame: Parameters<RawPhoenix['request']>[0]): Promise<unknown> => (await socket.request(frame))[4]

    expect(await error(['1', '1', 'rooms:lobby', 'phx_join', {}])).toEqual({ status: 'error', response: { reason: 'unmatched topic' } })
    expect(await error(['2', '2', 'debug_plugin', 'phx_join', {}])).toEqual({ status: 'error', response: { reason: 'unmatched topic' } })
    expect(await error(['3', '3', 'debug_plugin:', 'phx_join', {}])).toEqual({ status: 'error', response: { reason: 'unmatched topic' } })
    expect(await error(['4', '4', 'debug_plugin:a', 'phx_join', 'nope'])).toEqual({ status: 'error', response: { reason: 'invalid payload' } })

    expect((await socket.request(['5', '5', 'debug_plugin:a', 'phx_join', {}]))[4].status).toBe('ok')
    expect(await error(['6', '6', 'debug_plugin:a', 'phx_join', {}])).toEqual({ status: 'error', response: { reason: 'already joined' } })
    expect(await error(['5', '7', 'debug_plugin:b', 'hello', {}])).toEqual({ status: 'error', response: { reason: 'unmatched topic' } })
    expect(await error(['1', '8', 'debug_plugin:a', 'hello', {}])).toEqual({ status: 'error', response: { reason: 'unmatched topic' } })
    expect(await error(['5', '9', 'debug_plugin:a', 'hello', [1, 2]])).toEqual({ status: 'error', response: { reason: 'invalid payload' } })
    expect(await error(['5', '10', 'debug_plugin:a', 'hello', { destinations: [42] }])).toEqual({ status: 'error', response: { reason: 'invalid payload' } })
    expect(await error(['5', '11', 'debug_plugin:a', 'phx_close', {}])).toEqual({ status: 'error', response: { reason: 'reserved event' } })

    expect(watch.ofType('module:announced').map(e => e.data.name)).toEqual(['a'])
    expect(watch.ofType('hello')).toHaveLength(0)
    expect(await error(['5', '12', 'debug_plugin:a', 'hello', { n: 1 }])).toEqual({ status: 'ok', response: { delivered: 1 } })
    expect((await watch.waitForType('hello')).data).toEqual({ n: 1 })
  })

  it('closes a socket that sends a frame that is not a V2 array with 1007, de-announcing its channels', async () => {
    const hub = await startHub()
    const watch = await RawPeer.connect(hub.url())
    await watch.join('watcher')
    for (const garbage of ['not json', '{"topic":"phoenix"}', '["1","1","phoenix","heartbeat"]', '[1,2,3,4,5]']) {
      const socket = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
      expect((await socket.request(['1', '1', 'plugin:victim', 'phx_join', {}]))[4].status).toBe('ok')
      socket.ws.send(garbage)
      expect(await socket.waitForClose()).toMatchObject({ code: 1007 })
      await until(() => hub.server.registry.size === 1, 'the channel to be de-announced')
    }
    expect(watch.ofType('module:de-announced').map(e => e.data.reason)).toEqual(Array.from({ length: 4 }).fill('connection closed'))
  })

  it('leaves: reply ok, then phx_close, and the module is de-announced', async () => {
    const hub = await startHub()
    const watch = await RawPeer.connect(hub.url())
    await watch.join('watcher')
    const socket = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await socket.request(['1', '1', 'plugin:a', 'phx_join', {}])
    await socket.request(['2', '2', 'plugin:b', 'phx_join', {}])

    expect(await socket.request(['1', '3', 'plugin:a', 'phx_leave', {}])).toEqual(['1', '3', 'plugin:a', 'phx_reply', { status: 'ok', response: {} }])
    expect(await socket.waitFor(f => f[3] === 'phx_close')).toEqual(['1', '1', 'plugin:a', 'phx_close', {}])
    expect((await watch.waitFor(deannounced('a'))).data.reason).toBe('connection closed')
    expect([...hub.server.registry.entries()].map(e => e.name).sort()).toEqual(['b', 'watcher'])

    // The other channel lives on, and the topic can be joined again.
    expect((await socket.request(['2', '4', 'plugin:b', 'ping', {}]))[4].status).toBe('ok')
    expect((await socket.request(['5', '5', 'plugin:a', 'phx_join', {}]))[4].status).toBe('ok')
  })
})

describe('phoenix gateway: the real phoenix client', () => {
  it('an Atomemo-style plugin and a native SDK peer exchange events both ways', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const airi = airiClient(hub.url(), 'assistant')
    await airi.waitFor(e => e.type === 'registry:modules:sync', 'sync')

    const socket = phoenixSocket(hub.url('/debug_socket'), { params: { api_key: KEY } })
    const channel = socket.channel('debug_plugin:my-plugin', {})
    const invocations: any[] = []
    channel.on('invoke_tool', (payload) => {
      invocations.push(payload)
      channel.push('invoke_tool_response', { request_id: payload.request_id, result: { sum: payload.args.a + payload.args.b } })
    })
    expect(await outcome(channel.join())).toEqual({ status: 'ok', response: {} })

    const announced = await airi.waitFor(announcedAs('my-plugin'), 'announce')
    expect(announced.data.identity).toMatchObject({ plugin: 'my-plugin', labels: { protocol: 'phoenix', topic: 'debug_plugin' } })

    // A push is routed to the native peer and answered once routed.
    const registered = await outcome(channel.push('register_plugin', { name: 'my-plugin', tools: ['add'] }))
    expect(registered).toEqual({ status: 'ok', response: { delivered: 1 } })
    const registration = await airi.waitFor(e => e.type === 'register_plugin', 'register_plugin')
    expect(registration.data).toEqual({ name: 'my-plugin', tools: ['add'] })
    expect(registration.metadata?.source).toMatchObject({ plugin: 'my-plugin', labels: { protocol: 'phoenix' } })

    // The native peer invokes a tool; the plugin answers with the same request_id.
    airi.client.send({ type: 'invoke_tool', data: { request_id: 'r-1', tool: 'add', args: { a: 2, b: 3 } }, route: { destinations: ['label:protocol=phoenix'] } } as never)
    const response = await airi.waitFor(e => e.type === 'invoke_tool_response', 'invoke_tool_response')
    expect(response.data).toEqual({ request_id: 'r-1', result: { sum: 5 } })
    expect(response.metadata?.source?.plugin).toBe('my-plugin')
    expect(invocations).toEqual([{ request_id: 'r-1', tool: 'add', args: { a: 2, b: 3 } }])
  })

  it('no peer can forge phx_* lifecycle events into a channel', async () => {
    const hub = await startHub()
    const native = await RawPeer.connect(hub.url())
    await native.join('native')
    const socket = phoenixSocket(hub.url('/plugin_socket'))
    const channel = socket.channel('plugin:target', {})
    const seen: string[] = []
    channel.on('note', () => {
      seen.push('note')
    })
    await outcome(channel.join())

    native.send({ type: 'phx_close', data: {} })
    native.send({ type: 'phx_error', data: {} })
    native.send({ type: 'note', data: {} })
    await until(() => seen.length === 1, 'the note')
    expect(channel.state).toBe('joined')
  })

  it('heartbeats keep a plugin alive past the hub heartbeat timeout; a silent one expires', async () => {
    // Closed after 2 × 300 ms of silence; the plugin beats every 50 ms (a wide margin on a busy machine).
    const hub = await startHub({ heartbeat: { readTimeout: 300 } })
    const watch = await RawPeer.connect(hub.url())
    await watch.join('watcher')
    // Sockets that never answer native pings: only Phoenix heartbeats can keep them alive.
    class NoPong extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { autoPong: false })
      }
    }
    const keepsBeating = phoenixSocket(hub.url('/socket'), { transport: NoPong, heartbeatIntervalMs: 50 })
    const beating = keepsBeating.channel('plugin:beating', {})
    const silent = phoenixSocket(hub.url('/socket'), { transport: NoPong, heartbeatIntervalMs: 60_000 })
    const quiet = silent.channel('plugin:quiet', {})
    const quieter = silent.channel('plugins:quieter', {})
    await Promise.all([beating, quiet, quieter].map(channel => outcome(channel.join())))

    // Every channel of the silent socket goes, for the same reason.
    expect((await watch.waitFor(deannounced('quiet'))).data.reason).toBe('heartbeat expired')
    expect((await watch.waitFor(deannounced('quieter'))).data.reason).toBe('heartbeat expired')
    await settle(1300) // over four read timeouts
    expect(watch.received.some(deannounced('beating'))).toBe(false)
    expect([...hub.server.registry.entries()].map(e => e.name)).toContain('beating')
    expect(beating.state).toBe('joined')
    watch.send({ type: 'still-there', data: {}, route: { destinations: ['module:beating'] } })
    const pushes: unknown[] = []
    beating.on('still-there', (payload) => {
      pushes.push(payload)
    })
    await until(() => pushes.length === 1, 'a push to the live plugin')
  })

  it('closes a socket that joins nothing and stays silent, like a silent module', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 100 } })
    const idle = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    const beating = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    const left = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await left.request(['1', '1', 'plugin:left', 'phx_join', {}])
    await left.request(['1', '2', 'plugin:left', 'phx_leave', {}])
    const timer = setInterval(() => beating.send([null, String(Date.now()), 'phoenix', 'heartbeat', {}]), 30)
    onCleanup(() => clearInterval(timer))

    expect(await idle.waitForClose()).toEqual({ code: 4000, reason: 'heartbeat expired' })
    expect(await left.waitForClose()).toEqual({ code: 4000, reason: 'heartbeat expired' })
    await settle(400)
    expect(beating.closed).toBeUndefined()
  })

  it('leave and disconnect de-announce, seen by another peer', async () => {
    const hub = await startHub({ auth: { token: KEY } })
    const watch = await watcher(hub)
    const socket = phoenixSocket(hub.url('/release_socket'), { params: { api_key: KEY } })
    const one = socket.channel('release_plugin:one', {})
    const two = socket.channel('release_plugin:two', {})
    const three = socket.channel('plugins:three', {})
    await Promise.all([one, two, three].map(channel => outcome(channel.join())))
    await until(() => hub.server.registry.size === 4, 'three channels announced')

    expect((await outcome(one.leave())).status).toBe('ok')
    expect((await watch.waitFor(deannounced('one'))).data).toMatchObject({ name: 'one', reason: 'connection closed' })
    expect(hub.server.registry.size).toBe(3)

    socket.disconnect()
    await watch.waitFor(deannounced('two'))
    await watch.waitFor(deannounced('three'))
    expect([...hub.server.registry.entries()].map(e => e.name)).toEqual(['watcher'])
  })
})
