import type { ClientOptions, HubClient, ModulesChange } from '../../src/client/index.ts'
import type { RunningHub } from '../helpers/hub.ts'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { ClientError, createClient } from '../../src/client/index.ts'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'
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

function viewOf(c: HubClient): string[] {
  return [...c.modules.keys()].sort()
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
    expect(watcher.modules.get('bot#2')).toMatchObject({ name: 'bot', index: 2, healthy: true, identity: { plugin: 'bot', labels: { team: 'a' } } })
    // The AIRI peer hears of the client's module as AIRI clients do.
    await airi.waitFor(e => e.type === 'module:announced' && e.data.name === 'bot')

    bot.close()
    expect(bot.status).toBe('closed')
    await until(() => !watcher.modules.has('bot#2'), 'the bot to leave the view')
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
    b.on('chat:message', (data, event) => got.push({ data, from: event.source?.plugin }))

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
