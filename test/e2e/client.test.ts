import type { ClientOptions, HubClient, ModulesChange } from '../../src/client/index.ts'
import type { RunningHub } from '../helpers/hub.ts'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { ClientError, createClient } from '../../src/client/index.ts'
import { listenHub } from '../../src/listen.ts'
import { createServer } from '../../src/server.ts'
import { onCleanup, RawPeer, settle, startHub, startMuteServer } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'

const token = 'secret'
const fast = { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } }

/** A client of the hub, closed after the test. */
function client(hub: RunningHub, name: string | undefined, options: Partial<ClientOptions> = {}): HubClient {
  const created = createClient({ url: hub.url(), token, WebSocket, ...fast, ...(name !== undefined && { module: { name } }), ...options })
  onCleanup(() => created.close())
  return created
}

async function opened(...clients: HubClient[]): Promise<void> {
  await until(() => clients.every(c => c.status === 'open'), 'the clients to open')
}

/** The hub's registry, keyed as `client.modules` is. */
function hubModules(hub: RunningHub): string[] {
  return [...hub.server.hub.registry.entries()].map(entry => entry.index === undefined ? entry.name : `${entry.name}#${entry.index}`).sort()
}

/** The client's view, keyed as `hubModules` is (names with their index). */
function viewOf(c: HubClient): string[] {
  return [...c.modules.values()].map(entry => entry.index === undefined ? entry.name : `${entry.name}#${entry.index}`).sort()
}

describe('hub-server/client', () => {
  it('connects, authenticates and announces; its view equals the hub registry and follows it', async () => {
    const hub = await startHub({ auth: { token } })
    const watcher = client(hub, 'watcher')
    const changes: ModulesChange[] = []
    watcher.onModules(change => changes.push(change))
    const opens: boolean[] = []
    watcher.onOpen(info => opens.push(info.reconnected))
    expect(watcher.status).toBe('connecting')
    await opened(watcher)
    expect(opens).toEqual([false])

    const airi = await RawPeer.connect(hub.url())
    await airi.join('legacy', { token })
    const bot = client(hub, 'bot', { module: { name: 'bot', index: 2, labels: { team: 'a' } } })
    await opened(bot)
    await until(() => viewOf(watcher).length === 3 && viewOf(bot).length === 3, 'both views to hold three modules')
    expect(viewOf(watcher)).toEqual(hubModules(hub))
    expect(viewOf(bot)).toEqual(['bot#2', 'legacy', 'watcher'])
    expect(watcher.find('bot', 2)).toMatchObject({ name: 'bot', index: 2, healthy: true, identity: { plugin: 'bot', labels: { team: 'a' } } })
    // The AIRI peer hears of the client's module as AIRI clients do.
    await airi.waitFor(e => e.type === 'module:announced' && e.data.name === 'bot')

    bot.close()
    expect(bot.status).toBe('closed')
    await until(() => !watcher.find('bot', 2), 'the bot to leave the view')
    expect(viewOf(watcher)).toEqual(hubModules(hub))
    expect(changes.flatMap(c => c.removed.map(m => m.name))).toEqual(['bot'])
  })

  it('emits to destinations, and acks count the peers reached', async () => {
    const hub = await startHub({ auth: { token } })
    const a = client(hub, 'a')
    const b = client(hub, 'b')
    const airi = await RawPeer.connect(hub.url())
    await airi.join('legacy', { token })
    await opened(a, b)
    const got: Array<{ data: unknown, from: unknown }> = []
    b.on('chat:message', (data, event) => got.push({ data, from: event.from?.plugin }))

    expect(await a.emit('chat:message', { text: 'hi' }, { to: 'module:b' })).toEqual({})
    await until(() => got.length === 1, 'b to receive')
    expect(got[0]).toEqual({ data: { text: 'hi' }, from: 'a' })
    expect(await a.emit('chat:message', { text: 'all' }, { ack: true })).toEqual({ delivered: 2 })
    expect(await a.emit('chat:message', { text: 'none' }, { to: ['plugin:nobody'], ack: true })).toEqual({ delivered: 0 })
    await airi.waitFor(e => e.type === 'chat:message' && e.data.text === 'all')
    // An AIRI peer's event reaches a client handler; `off` stops it.
    const handler = (): void => {
      got.push({ data: 'extra', from: undefined })
    }
    b.on('note', handler)
    b.off('note', handler)
    airi.send({ type: 'chat:message', data: { text: 'from airi' }, route: { destinations: ['module:b'] } })
    airi.send({ type: 'note', data: {}, route: { destinations: ['module:b'] } })
    await until(() => got.length === 3, 'the AIRI event')
    expect(got[2]).toEqual({ data: { text: 'from airi' }, from: 'legacy' })
  })

  it('requests and responds: a reply, an error reply, no responder, a timeout, a responder gone', async () => {
    const hub = await startHub({ auth: { token } })
    const asker = client(hub, 'asker')
    const calc = client(hub, 'calc')
    calc.respond('calc:add', ({ a, b }) => ({ sum: a + b }))
    calc.respond('calc:div', async ({ b }) => {
      if (b === 0)
        throw new Error('division by zero')
      return {}
    })
    let slow = 0
    calc.respond('calc:slow', () => {
      slow++
      return new Promise(() => {})
    })
    await opened(asker, calc)

    // Without `to`, the request goes to the consumer of its type.
    expect(await asker.request('calc:add', { a: 2, b: 2 })).toEqual({ sum: 4 })
    expect(await asker.request('calc:add', { a: 1, b: 2 }, { to: 'module:calc' })).toEqual({ sum: 3 })
    await expect(asker.request('calc:div', { a: 1, b: 0 })).rejects.toMatchObject({ code: 'error_reply', message: 'division by zero' })
    await expect(asker.request('calc:mul', {})).rejects.toMatchObject({ code: 'no_responder', message: 'no responder' })
    await expect(asker.request('calc:add', {}, { to: 'plugin:nobody' })).rejects.toMatchObject({ code: 'no_responder' })
    await expect(asker.request('calc:slow', {}, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'timeout', message: 'request timed out' })
    // A request for a type it does not answer, sent to it by destination: an error reply, not a hang.
    await expect(asker.request('calc:sub', {}, { to: 'module:calc' })).rejects.toMatchObject({ code: 'error_reply', message: 'no handler for calc:sub' })

    const pending = asker.request('calc:slow', {})
    await until(() => slow === 2, 'the request to reach calc')
    calc.close()
    await expect(pending).rejects.toMatchObject({ code: 'responder_gone', message: 'responder gone' })
    const error = await asker.request('calc:add', {}).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ClientError)
  })
})

describe('hub-server/client imports', () => {
  it('imports nothing Node-only: relative modules and valibot only', () => {
    const dir = join(import.meta.dirname, '../../src/client')
    for (const file of readdirSync(dir)) {
      const source = readFileSync(join(dir, file), 'utf8')
      for (const [, specifier] of source.matchAll(/from '([^']+)'/g))
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^(\.\/[\w-]+\.ts|valibot)$/)
    }
  })
})

/** A hub on a fixed port that can be stopped and started again there, as a restarted process would. */
async function hubOnPort(port: number): Promise<RunningHub & { received: (type: string) => number }> {
  const server = createServer({ logger: { level: 'silent' }, env: {}, auth: { token } })
  const received = new Map<string, number>()
  server.hub.observers.on('received', type => received.set(type, (received.get(type) ?? 0) + 1))
  const listener = await listenHub(server, { port, host: '127.0.0.1', env: {} })
  onCleanup(() => listener.close())
  return { server, port, url: (path = '/ws') => `ws://127.0.0.1:${port}${path}`, close: () => listener.close(), received: type => received.get(type) ?? 0 }
}

describe('hub-server/client across disconnects', () => {
  it('comes back after the hub restarts on the same port: views equal, each module announced once, pending calls rejected', async () => {
    const first = await startHub({ auth: { token } })
    const port = first.port
    const watcher = client(first, 'watcher')
    const bot = client(first, 'bot')
    let slowCalls = 0
    bot.respond('slow', () => {
      slowCalls++
      return new Promise(() => {})
    })
    const closes: Array<{ code: number, willReconnect: boolean }> = []
    const reconnects: number[] = []
    const opens: boolean[] = []
    watcher.onClose(info => closes.push({ code: info.code, willReconnect: info.willReconnect }))
    watcher.onReconnect(info => reconnects.push(info.attempt))
    watcher.onOpen(info => opens.push(info.reconnected))
    await opened(watcher, bot)
    await until(() => watcher.modules.size === 2, 'the watcher to see both')
    const pending = watcher.request('slow', {})
    const ack = pending.catch((error: unknown) => error)
    await until(() => slowCalls === 1, 'the request to reach the bot')

    await first.close()
    expect(await ack).toMatchObject({ code: 'disconnected' })
    await until(() => watcher.status === 'reconnecting' && bot.status === 'reconnecting', 'both to notice')
    expect(closes[0]).toEqual({ code: 1001, willReconnect: true })
    // While the hub is down, a call waits; with no room to wait, it fails at once.
    const queued = watcher.emit('note', { text: 'sent once back' }, { ack: true })

    const second = await hubOnPort(port)
    await opened(watcher, bot)
    expect(opens).toEqual([false, true])
    expect(reconnects[0]).toBe(1)
    // The queued event left once the watcher was back (whoever was back by then got it), once.
    expect(await queued).toMatchObject({ delivered: expect.any(Number) })
    expect(second.received('note')).toBe(1)
    await until(() => viewOf(watcher).join() === hubModules(second).join() && viewOf(bot).join() === hubModules(second).join(), 'the views to equal the new registry')
    expect(viewOf(watcher)).toEqual(['bot', 'watcher'])
    expect(second.received('module:announce')).toBe(2)
    // The consumer registration came back too: a request without `to` finds the bot again.
    bot.respond('ping', () => ({ pong: true }))
    expect(await watcher.request('ping', {})).toEqual({ pong: true })
  })

  it('fails calls clearly: no queue, a queue that waited too long, a closed client', async () => {
    const hub = await startHub({ auth: { token } })
    const noQueue = client(hub, 'a', { queue: { maxSize: 0 } })
    await expect(noQueue.emit('x', {})).rejects.toMatchObject({ code: 'not_connected', message: 'not connected' })
    const shortQueue = client(hub, 'b', { queue: { maxSize: 1, maxWaitMs: 1 }, url: 'ws://127.0.0.1:1/ws' })
    await expect(shortQueue.emit('x', {})).rejects.toMatchObject({ code: 'not_connected', message: 'not connected within 1 ms' })
    const c = client(hub, 'c')
    c.respond('never', () => new Promise(() => {}))
    const d = client(hub, 'd')
    await opened(c, d)
    const pending = d.request('never', {})
    const waiting = client(hub, 'e', { url: 'ws://127.0.0.1:1/ws' })
    const queued = waiting.emit('x', {})
    await new Promise(resolve => setTimeout(resolve, 20))
    d.close()
    waiting.close()
    await expect(pending).rejects.toMatchObject({ code: 'closed' })
    await expect(queued).rejects.toMatchObject({ code: 'closed' })
    await expect(d.emit('x', {})).rejects.toMatchObject({ code: 'closed' })
    expect(waiting.status).toBe('closed')
  })

  it('stops on a refused token, and on a refused announce, saying why', async () => {
    const hub = await startHub({ auth: { token }, modules: [{ name: 'brain', token: 'brain-secret' }] })
    const errors: unknown[] = []
    const closes: boolean[] = []
    const bad = client(hub, 'x', { token: 'wrong' })
    bad.onError(error => errors.push(error))
    bad.onClose(info => closes.push(info.willReconnect))
    await until(() => bad.status === 'closed', 'the client to stop')
    expect(errors).toEqual([new ClientError('unauthorized', 'invalid token')])
    expect(errors[0]).toMatchObject({ code: 'unauthorized' })
    expect(closes).toEqual([false])
    const imposter = client(hub, 'brain')
    imposter.onError(error => errors.push(error))
    await until(() => imposter.status === 'closed', 'the imposter to stop')
    expect(errors[1]).toMatchObject({ code: 'hub_error', message: 'announce refused: token not valid for module brain' })
    const brain = client(hub, 'brain', { token: 'brain-secret' })
    await opened(brain)
  })

  it('drops a connection that stays silent past the heartbeat timeout, and tries again', async () => {
    // A server that accepts the socket and never answers, as a half-open connection looks.
    const silent = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(silent, 'listening')
    onCleanup(() => new Promise(resolve => silent.close(resolve)))
    let sockets = 0
    silent.on('connection', () => sockets++)
    const port = (silent.address() as { port: number }).port
    const c = createClient({ url: `ws://127.0.0.1:${port}/ws`, WebSocket, heartbeat: { intervalMs: 20, timeoutMs: 100 }, reconnect: { initialDelayMs: 10 } })
    onCleanup(() => c.close())
    const closes: Array<{ code: number, reason: string }> = []
    c.onClose(info => closes.push({ code: info.code, reason: info.reason }))
    await until(() => sockets >= 2, 'a second socket')
    expect(closes[0]).toEqual({ code: 4000, reason: 'heartbeat timeout' })
    expect(c.status).not.toBe('open')
  })

  it('closes while still connecting without an uncaught error from ws', async () => {
    // A server that takes the TCP connection and never answers the upgrade: the socket stays CONNECTING.
    const { url, connections } = await startMuteServer()
    const c = createClient({ url, WebSocket })
    await until(() => connections.size === 1, 'the TCP connection')
    c.close()
    await settle(50)
    expect(c.status).toBe('closed')
  })

  it('with registry "none" keeps no view and still routes', async () => {
    const hub = await startHub({ auth: { token } })
    const bot = client(hub, 'quiet', { registry: 'none' })
    const other = client(hub, 'other')
    await opened(bot, other)
    const got: unknown[] = []
    bot.on('hello', data => got.push(data))
    await other.emit('hello', { n: 1 }, { to: 'module:quiet' })
    await until(() => got.length === 1, 'the event')
    await until(() => other.modules.size === 2, 'the other to see both')
    expect(bot.modules.size).toBe(0)
  })
})
