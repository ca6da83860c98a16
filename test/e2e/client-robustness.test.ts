import type { Socket } from 'node:net'
import type { ClientOptions, HubClient } from '../../src/client/index.ts'
import type { RunningHub } from '../helpers/hub.ts'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'
import superjson from 'superjson'
import { describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { createClient } from '../../src/client/index.ts'
import { onCleanup, RawPeer, settle, startHub, startMuteServer } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'
import { ROOT, run, tempDir } from '../helpers/process.ts'

// What a user of hub-server/client runs into when something around the client misbehaves: its
// own listeners throwing or closing it, data that cannot be sent, a hub that never completes
// the upgrade, a hub of another kind (AIRI's server-runtime) or a hostile one.

const token = 'secret'
const fast = { reconnect: { initialDelayMs: 10, maxDelayMs: 50 } }

/** `ws` that keeps every socket it made and calls `onSend` with each frame the client sends. */
function recordingWebSocket(onSend: (text: string) => void = () => {}): { WebSocket: typeof WebSocket, sockets: WebSocket[] } {
  const sockets: WebSocket[] = []
  class Recording extends WebSocket {
    constructor(url: string) {
      super(url)
      sockets.push(this)
    }

    override send(data: any): void {
      super.send(data)
      onSend(String(data))
    }
  }
  return { WebSocket: Recording as typeof WebSocket, sockets }
}

function client(hub: RunningHub | string, name: string | undefined, options: Partial<ClientOptions> = {}): HubClient {
  const created = createClient({ url: typeof hub === 'string' ? hub : hub.url(), token, WebSocket, ...fast, ...(name !== undefined && { module: { name } }), ...options })
  onCleanup(() => created.close())
  return created
}

/** A stand-in hub: a `ws` server whose `answer` gets each event a client sends (plain JSON), and the socket. */
async function fakeHub(answer: (event: any, socket: WebSocket) => void): Promise<{ url: string, connections: WebSocket[] }> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(server, 'listening')
  const connections: WebSocket[] = []
  server.on('connection', (socket) => {
    connections.push(socket)
    socket.on('message', data => answer(JSON.parse(data.toString()), socket))
  })
  onCleanup(() => new Promise((resolve) => {
    for (const socket of connections)
      socket.terminate()
    server.close(resolve)
  }))
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/ws`, connections }
}

/** Sends an event as AIRI's server-runtime does: superjson, the hub as source, `parentId` when it answers one. */
function sendAs(socket: WebSocket, type: string, data: Record<string, unknown>, parentId?: string): void {
  socket.send(superjson.stringify({ type, data, metadata: { source: { plugin: 'other-hub' }, event: { id: Math.random().toString(36).slice(2), ...(parentId && { parentId }) } } }))
}

/** Answers pings with a parentId'd pong, so a client opens. */
function pong(event: any, socket: WebSocket): void {
  if (event.type === 'transport:connection:heartbeat' && event.data.kind === 'ping')
    sendAs(socket, 'transport:connection:heartbeat', { kind: 'pong' }, event.metadata.event.id)
}

describe('hub-server/client and its own listeners', () => {
  it('stops for good when close() is called from onClose or onReconnect', async () => {
    for (const hook of ['onClose', 'onReconnect'] as const) {
      const hub = await fakeHub(pong)
      const c = client(hub.url, 'x')
      c[hook](() => c.close())
      await until(() => c.status === 'open', 'the client to open')
      hub.connections[0]!.terminate()
      await until(() => c.status === 'closed', 'the client to close')
      // Past the backoff: no second socket was opened.
      await settle(100)
      expect(hub.connections, hook).toHaveLength(1)
      expect(c.status).toBe('closed')
    }
  })

  it('keeps going when a listener throws: the reconnect, the view, the other listeners; onError hears it', async () => {
    const hub = await startHub({ auth: { token } })
    const socket = recordingWebSocket()
    // A backoff long enough for the test to see the client away.
    const c = client(hub, 'watcher', { WebSocket: socket.WebSocket, reconnect: { initialDelayMs: 300 } })
    const errors: string[] = []
    c.onError(error => errors.push(error.message))
    c.onError(() => {
      throw new Error('the error listener too')
    })
    c.onClose(() => {
      throw new Error('onClose broke')
    })
    c.onModules(() => {
      throw new Error('onModules broke')
    })
    const seen: string[] = []
    c.onModules(change => seen.push(...change.added.map(entry => entry.name)))
    let opens = 0
    c.onOpen(() => {
      opens++
      throw new Error('onOpen broke')
    })
    await until(() => c.status === 'open' && seen.includes('watcher'), 'the first view')
    // An event waiting while away still leaves once back (the throwing onOpen must not keep it).
    socket.sockets[0]!.terminate()
    await until(() => c.status === 'reconnecting', 'the drop')
    const queued = c.emit('note', {}, { ack: true })
    await until(() => opens === 2, 'the client to come back')
    expect(await queued).toEqual({ delivered: 0 })
    const other = client(hub, 'other')
    await until(() => c.find('other') && seen.includes('other'), 'the view to follow')
    expect(other.status).toBe('open')
    expect(errors).toEqual(expect.arrayContaining(['onClose broke', 'onModules broke', 'onOpen broke']))
  })
})

describe('hub-server/client and async handlers', () => {
  it('reports what an async handler or listener rejects with to onError, not as an unhandled rejection', async () => {
    const hub = await startHub({ auth: { token } })
    const c = client(hub, 'c')
    const errors: string[] = []
    c.onError(error => errors.push(error.message))
    c.onOpen(async () => {
      throw new Error('async onOpen')
    })
    c.on('x', async () => {
      throw new Error('async handler')
    })
    const other = client(hub, 'other')
    await until(() => c.status === 'open' && other.status === 'open', 'both to open')
    await other.emit('x', {}, { to: 'module:c' })
    await until(() => errors.length === 2, 'both errors')
    expect(errors.sort()).toEqual(['async handler', 'async onOpen'])
  })
})

describe('hub-server/client registry view', () => {
  it('follows health, and two peers holding modules of one name, as the hub has them', async () => {
    const hub = await startHub({ auth: { token }, heartbeat: { readTimeout: 500 } })
    const watcher = client(hub, 'watcher')
    const health: Array<[string, boolean]> = []
    watcher.onModules(change => health.push(...change.updated.map(entry => [entry.name, entry.healthy] as [string, boolean])))
    const one = client(hub, 'twin')
    const two = client(hub, 'twin')
    await until(() => [...watcher.modules.values()].filter(entry => entry.name === 'twin').length === 2, 'both twins')
    one.close()
    await until(() => hub.server.hub.registry.size === 2, 'the hub to drop one twin')
    await until(() => watcher.modules.size === 2, 'the view to drop one twin')
    expect([...watcher.modules.values()].map(entry => entry.peer).sort()).toEqual([...hub.server.hub.registry.entries()].map(entry => entry.peerId).sort())
    expect(two.status).toBe('open')

    // A peer that answers not even the hub's pings: unhealthy at the read timeout, gone at twice it.
    const silent = await RawPeer.connect(hub.url(), { autoPong: false })
    await silent.join('silent', { token })
    await until(() => health.some(([name, healthy]) => name === 'silent' && !healthy), 'the silent peer to turn unhealthy')
    await until(() => !watcher.find('silent'), 'the silent peer to leave the view')
    expect(watcher.find('watcher')!.healthy).toBe(true)
    expect([...watcher.modules.values()].map(entry => entry.name).sort()).toEqual(['twin', 'watcher'])
  })
})

describe('hub-server/client registry view under churn', () => {
  it('equals the hub\'s registry, peer by peer, after joins, leaves and re-announces in the same turns, and a reconnect among them', async () => {
    const hub = await startHub({ auth: { token } })
    const socket = recordingWebSocket()
    const watcher = client(hub, 'watcher', { WebSocket: socket.WebSocket })
    await until(() => watcher.status === 'open', 'the watcher to open')
    const keys = (): string[] => [...watcher.modules.values()].map(entry => `${entry.name}#${entry.index}@${entry.peer}`).sort()
    const hubKeys = (): string[] => [...hub.server.hub.registry.entries()].map(entry => `${entry.name}#${entry.index}@${entry.peerId}`).sort()
    const peers: HubClient[] = []
    for (let round = 0; round < 4; round++) {
      // Several join at once, one of a name already held; some leave in the same turn.
      for (let i = 0; i < 5; i++)
        peers.push(client(hub, undefined, { module: { name: `m${i % 3}`, index: i % 2 } }))
      await until(() => peers.every(peer => peer.status === 'open'), 'the peers to open')
      for (const peer of peers.splice(0, 3))
        peer.close()
      if (round === 2)
        socket.sockets.at(-1)!.terminate()
      await until(() => watcher.status === 'open' && hub.server.hub.registry.size === peers.length + 1 && keys().join() === hubKeys().join(), `the view to equal the registry (round ${round})`)
    }
    expect(keys()).toHaveLength(peers.length + 1)
  })
})

describe('hub-server/client calls', () => {
  it('registers a responder given while the handshake is under way', async () => {
    const hub = await startHub({ auth: { token } })
    let late: HubClient | undefined
    let registered = false
    // The moment between the socket's opening and the hub's answer to the handshake.
    const socket = recordingWebSocket((text) => {
      if (!registered && text.includes('"handshake"')) {
        registered = true
        late!.respond('late:answer', () => ({ ok: true }))
      }
    })
    late = client(hub, 'late', { WebSocket: socket.WebSocket })
    expect(late.status).toBe('connecting')
    const asker = client(hub, 'asker')
    await until(() => late.status === 'open' && asker.status === 'open' && registered, 'both to open')
    expect(await asker.request('late:answer', {})).toEqual({ ok: true })
  })

  it('sends the calls that waited for the connection before what an onOpen listener sends', async () => {
    const hub = await startHub({ auth: { token } })
    const receiver = client(hub, 'receiver')
    const got: unknown[] = []
    receiver.on('n', data => got.push(data.n))
    await until(() => receiver.status === 'open', 'the receiver to open')
    const sender = client(hub, 'sender')
    sender.onOpen(() => void sender.emit('n', { n: 2 }, { to: 'module:receiver' }))
    const waited = sender.emit('n', { n: 1 }, { to: 'module:receiver' })
    expect(sender.status).toBe('connecting')
    await waited
    await until(() => got.length === 2, 'both events')
    expect(got).toEqual([1, 2])
  })

  it('sends a call made while the socket is already closing once it is back, instead of losing it', async () => {
    const hub = await startHub({ auth: { token } })
    const socket = recordingWebSocket()
    const sender = client(hub, 'sender', { WebSocket: socket.WebSocket })
    const other = client(hub, 'other')
    const got: unknown[] = []
    other.on('x', data => got.push(data))
    await until(() => sender.status === 'open' && other.status === 'open', 'both to open')
    // Closing from now on; the client hears of it only when the close completes.
    socket.sockets[0]!.close()
    expect(sender.status).toBe('open')
    const sent = sender.emit('x', { n: 1 }, { to: 'module:other' })
    const acked = sender.emit('x', { n: 2 }, { to: 'module:other', ack: true })
    await sent
    expect(await acked).toEqual({ delivered: 1 })
    await until(() => got.length === 2, 'both events to arrive')
    expect(got).toEqual([{ n: 1 }, { n: 2 }])
    expect(socket.sockets).toHaveLength(2)
  })

  it('drops a reply its handler finishes after the connection it was asked on is gone (the hub would route it to everyone)', async () => {
    const hub = await startHub({ auth: { token } })
    const socket = recordingWebSocket()
    const responder = client(hub, 'responder', { WebSocket: socket.WebSocket })
    let finish: (() => void) | undefined
    responder.respond('slow', () => new Promise(resolve => finish = () => resolve({ done: true })))
    const asker = client(hub, 'asker')
    const watcher = client(hub, 'watcher')
    const overheard: unknown[] = []
    asker.on('slow', data => overheard.push(data))
    watcher.on('slow', data => overheard.push(data))
    await until(() => [responder, asker, watcher].every(c => c.status === 'open'), 'all to open')
    const asked = asker.request('slow', {})
    await until(() => finish, 'the request to reach the responder')
    socket.sockets[0]!.terminate()
    await expect(asked).rejects.toMatchObject({ code: 'responder_gone' })
    await until(() => responder.status === 'open' && socket.sockets.length === 2, 'the responder to come back')
    finish!()
    await settle(100)
    expect(overheard).toEqual([])
  })

  it('rejects data that cannot be sent at the call, even when it waited for the connection; a responder\'s such reply is an error reply', async () => {
    const hub = await startHub({ auth: { token } })
    const socket = recordingWebSocket()
    const c = client(hub, 'c', { WebSocket: socket.WebSocket, reconnect: { initialDelayMs: 300 } })
    c.respond('bad:reply', () => ({ n: 1n }) as any)
    const asker = client(hub, 'asker')
    await until(() => c.status === 'open' && asker.status === 'open', 'both to open')
    await expect(c.emit('x', { n: 1n } as any)).rejects.toThrow(TypeError)
    await expect(asker.request('bad:reply', {})).rejects.toMatchObject({ code: 'error_reply', message: expect.stringMatching(/BigInt/) })

    socket.sockets[0]!.terminate()
    await until(() => c.status === 'reconnecting', 'the drop')
    const bad = c.emit('x', { n: 1n } as any)
    const good = c.emit('y', {}, { ack: true })
    await expect(bad).rejects.toThrow(TypeError)
    expect(await good).toEqual({ delivered: 1 })
    expect(c.status).toBe('open')
  })
})

describe('hub-server/client as built', () => {
  it('imports nothing Node-only in dist/client: its own modules and valibot, no Node globals', () => {
    const dir = join(ROOT, 'dist/client')
    const files = readdirSync(dir).filter(file => file.endsWith('.js'))
    expect(files).toContain('index.js')
    for (const file of files) {
      const source = readFileSync(join(dir, file), 'utf8')
      for (const [, specifier] of source.matchAll(/(?:from|import)[\s(]*['"]([^'"]+)['"]/g))
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^(\.\/[\w-]+\.js|valibot)$/)
      expect(source, file).not.toMatch(/\b(process\.|Buffer\.|require\(|__dirname)/)
    }
  })
})

describe('hub-server/client options', () => {
  it('refuses durations a timer cannot keep: 0 (a ping flood), NaN, past 24.8 days (they fire at once)', async () => {
    for (const options of [{ heartbeat: { intervalMs: 0 } }, { heartbeat: { timeoutMs: Number.NaN } }, { requestTimeoutMs: 30 * 86_400_000 }, { queue: { maxWaitMs: -1 } }, { queue: { maxSize: Number.NaN } }])
      expect(() => createClient({ url: 'ws://127.0.0.1:1/ws', WebSocket, ...options }), JSON.stringify(options)).toThrow(TypeError)
    const c = client('ws://127.0.0.1:1/ws', undefined)
    await expect(c.request('x', {}, { timeoutMs: 30 * 86_400_000 })).rejects.toThrow('invalid timeoutMs')
  })

  it('goes on to the next attempt when the WebSocket constructor throws on a reconnect (a page that may not open one of its URLs)', async () => {
    const hub = await startHub({ auth: { token } })
    let made = 0
    const sockets: WebSocket[] = []
    class Refusing extends WebSocket {
      constructor(url: string) {
        if (++made === 2)
          throw new Error('refused by the page')
        super(url)
        sockets.push(this)
      }
    }
    const c = client(hub, 'x', { WebSocket: Refusing as typeof WebSocket })
    const errors: string[] = []
    c.onError(error => errors.push(error.message))
    await until(() => c.status === 'open', 'the client to open')
    sockets[0]!.terminate()
    await until(() => made === 3 && c.status === 'open', 'the third attempt to open')
    expect(errors).toEqual(['refused by the page'])
  })

  it('refuses at once a URL no WebSocket takes, wherever it stands in the list', () => {
    for (const url of ['ftp://127.0.0.1/ws', 'ws://127.0.0.1/ws#x'])
      expect(() => createClient({ url: ['ws://127.0.0.1:1/ws', url], WebSocket })).toThrow(`not a WebSocket URL: ${url}`)
  })
})

describe('hub-server/client liveness', () => {
  it('keeps a live connection whose heartbeats come further apart than the timeout (a background tab\'s throttled timers)', async () => {
    const hub = await startHub({ auth: { token } })
    const c = client(hub, 'tab', { heartbeat: { intervalMs: 250, timeoutMs: 100 } })
    const closes: string[] = []
    c.onClose(info => closes.push(info.reason))
    await until(() => c.status === 'open', 'the client to open')
    // Several beats: each finds its last ping answered, however long ago that was.
    await settle(1000)
    expect(closes).toEqual([])
    expect(c.status).toBe('open')
  })
})

describe('hub-server/client stopped by the hub', () => {
  it('stops as unauthorized whatever words the hub refuses its authenticate with', async () => {
    const hub = await fakeHub((event, socket) => {
      if (event.type === 'module:authenticate')
        sendAs(socket, 'error', { message: 'Invalid token.' }, event.metadata.event.id)
    })
    const c = client(hub.url, 'x')
    const errors: unknown[] = []
    c.onError(error => errors.push(error))
    await until(() => c.status === 'closed', 'the client to stop')
    expect(errors).toMatchObject([{ code: 'unauthorized', message: 'Invalid token.' }])
    expect(hub.connections).toHaveLength(1)
  })

  it('fails waiting and later calls with why it stopped, not as if closed by the user', async () => {
    const hub = await startHub({ auth: { token } })
    const refused = client(hub, 'x', { token: 'wrong' })
    const waiting = refused.emit('x', {})
    await expect(waiting).rejects.toMatchObject({ code: 'unauthorized', message: 'invalid token' })
    expect(refused.status).toBe('closed')
    await expect(refused.request('y', {})).rejects.toMatchObject({ code: 'unauthorized' })

    const once = client('ws://127.0.0.1:1/ws', 'y', { reconnect: false })
    await expect(once.emit('x', {})).rejects.toMatchObject({ code: 'not_connected', message: 'connection lost (1006) and reconnect is off' })
    expect(once.status).toBe('closed')
  })
})

describe('hub-server/client against other hubs', () => {
  it('lets a Node process exit once closed, even when the hub froze (reads nothing, answers no close)', async () => {
    const frozen = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(frozen, 'listening')
    const connections: WebSocket[] = []
    // It freezes once the client is open (its first frame has come).
    frozen.on('connection', (socket) => {
      socket.once('message', () => {
        connections.push(socket)
        ;(socket as unknown as { _socket: Socket })._socket.pause()
      })
    })
    onCleanup(() => new Promise((resolve) => {
      for (const socket of connections)
        socket.terminate()
      frozen.close(resolve)
    }))
    // The built client, as a user's program loads it; it closes on SIGTERM, as a bot would.
    const dir = tempDir({ 'bot.mjs': [
      `import { createClient } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/client/index.js')).href)}`,
      `import WebSocket from ${JSON.stringify(pathToFileURL(join(ROOT, 'node_modules/ws/wrapper.mjs')).href)}`,
      `const client = createClient({ url: ${JSON.stringify(`ws://127.0.0.1:${(frozen.address() as { port: number }).port}/ws`)}, WebSocket, module: { name: 'bot' } })`,
      `process.on('SIGTERM', () => client.close())`,
    ].join('\n') })
    const bot = run(process.execPath, [join(dir, 'bot.mjs')])
    await until(() => connections.length === 1, 'the bot to open')
    bot.child.kill('SIGTERM')
    // `ws` alone would hold the process 30 s waiting for the frozen hub's close.
    expect(await bot.exitCode(10_000)).toBe(0)
  })

  it('drops and retries a socket whose upgrade is never answered', async () => {
    const { url, connections } = await startMuteServer()
    const c = client(url, 'x', { heartbeat: { intervalMs: 20, timeoutMs: 100 } })
    const closes: string[] = []
    c.onClose(info => closes.push(info.reason))
    await until(() => connections.size >= 2, 'a second attempt')
    expect(closes[0]).toBe('connect timeout')
    expect(c.status).not.toBe('open')
  })

  it('takes the sync that answers its authenticate (AIRI server-runtime sends it so)', async () => {
    const hub = await fakeHub((event, socket) => {
      pong(event, socket)
      if (event.type === 'module:authenticate') {
        const parentId = event.metadata.event.id
        sendAs(socket, 'module:authenticated', { authenticated: true }, parentId)
        sendAs(socket, 'registry:modules:sync', { modules: [{ name: 'stage', identity: { plugin: 'stage', instanceId: 's-1' } }] }, parentId)
      }
    })
    const c = client(hub.url, 'bot')
    await until(() => c.status === 'open', 'the client to open')
    await until(() => c.find('stage'), 'the module of the sync')
    expect(c.find('stage')).toMatchObject({ name: 'stage', healthy: true, identity: { instanceId: 's-1' } })
    // Then AIRI's per-change events.
    const socket = hub.connections[0]!
    const hands = { name: 'hands', index: 1, identity: { plugin: 'hands', instanceId: 'h-1' } }
    sendAs(socket, 'module:announced', hands)
    sendAs(socket, 'registry:modules:health:unhealthy', { ...hands, reason: 'heartbeat late' })
    sendAs(socket, 'module:de-announced', { name: 'stage', identity: { plugin: 'stage', instanceId: 's-1' }, reason: 'connection closed' })
    await until(() => !c.find('stage'), 'stage to leave')
    expect([...c.modules.values()]).toEqual([{ ...hands, healthy: false }])
  })

  it('times out a request and an ack itself when the hub never answers them (AIRI\'s server-runtime knows neither)', async () => {
    const hub = await fakeHub(pong)
    const c = client(hub.url, 'x', { requestTimeoutMs: 50 })
    await until(() => c.status === 'open', 'the client to open')
    await expect(c.request('x', {}, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'timeout', message: 'request timed out' })
    await expect(c.emit('x', {}, { ack: true })).rejects.toMatchObject({ code: 'timeout', message: 'no ack in time' })
  })

  it('asks once to be brought up to date when deltas stop following, however many more arrive meanwhile', async () => {
    const asks: Array<unknown> = []
    const hub = await fakeHub((event, socket) => {
      pong(event, socket)
      if (event.type !== 'module:authenticate')
        return
      asks.push(event.data.registry.since)
      if (asks.length === 1) {
        sendAs(socket, 'registry:modules:sync', { modules: [], epoch: 'e', revision: 1 })
        // Revision 2 never comes: 3, 4 and 5 do not apply.
        for (const revision of [3, 4, 5])
          sendAs(socket, 'registry:modules:delta', { epoch: 'e', from: revision - 1, revision, added: [{ peer: 'p', name: `m${revision}`, identity: {}, healthy: true }], removed: [], health: [] })
      }
      else {
        sendAs(socket, 'registry:modules:delta', { epoch: 'e', from: 1, revision: 5, added: ['m3', 'm4', 'm5'].map(name => ({ peer: 'p', name, identity: {}, healthy: true })), removed: [], health: [] })
      }
    })
    const c = client(hub.url, undefined)
    await until(() => c.modules.size === 3, 'the view to be brought up to date')
    await settle(50)
    expect(asks).toEqual([undefined, { epoch: 'e', revision: 1 }])
  })

  it('shrugs off what a hostile hub sends', async () => {
    const hub = await fakeHub((event, socket) => {
      pong(event, socket)
      if (event.type !== 'module:authenticate')
        return
      for (const frame of [
        'not json',
        '[]',
        'null',
        JSON.stringify({ json: { type: 'registry:modules:sync', data: { modules: [{ name: 1 }] } } }),
        JSON.stringify({ json: { type: 'registry:modules:delta', data: { epoch: 'e', from: 0, revision: 1, added: 'x', removed: [], health: [] } } }),
        JSON.stringify({ json: { type: 'module:announced', data: { name: {} } } }),
        JSON.stringify({ json: { type: 'error', data: { message: { toString: 1 } } } }),
        JSON.stringify({ json: { type: 'transport:connection:heartbeat', data: { kind: 'ping' }, metadata: { event: { id: 5 } } } }),
        JSON.stringify({ json: { type: 'anything', data: { x: 1 }, route: { reply: true }, metadata: { event: { id: 'r1' } } } }),
        JSON.stringify({ json: { type: '__proto__', data: {} } }),
      ])
        socket.send(frame)
      sendAs(socket, 'registry:modules:sync', { modules: [{ name: 'fine', identity: {} }] })
    })
    const c = client(hub.url, 'bot')
    await until(() => c.status === 'open' && c.find('fine'), 'the client to open with the one good sync')
    expect([...c.modules.keys()]).toEqual(['fine'])
  })
})
