import type { Buffer } from 'node:buffer'
import type { Socket } from 'node:net'
import type { ServerOptions } from '../../src/server.ts'
import { once } from 'node:events'
import { createServer as createTcpServer } from 'node:net'
import superjson from 'superjson'
import { afterEach } from 'vitest'
import WebSocket from 'ws'
import { listenHub } from '../../src/listen.ts'
import { createServer } from '../../src/server.ts'

export interface RunningHub {
  server: ReturnType<typeof createServer>
  port: number
  url: (path?: string) => string
  close: () => Promise<void>
}

const running: Array<() => Promise<unknown>> = []

/** Registers cleanup run after each test (servers, clients). */
export function onCleanup(fn: () => Promise<unknown> | unknown): void {
  running.push(async () => fn())
}

afterEach(async () => {
  const fns = running.splice(0).reverse()
  for (const fn of fns)
    await fn()
})

/**
 * A TCP server that takes connections and never answers an upgrade (a WebSocket to it stays
 * CONNECTING), closed after the test: its URL and the connections it took.
 */
export async function startMuteServer(): Promise<{ url: string, connections: Set<Socket> }> {
  const server = createTcpServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const connections = new Set<Socket>()
  server.on('connection', socket => connections.add(socket))
  onCleanup(() => new Promise((resolve) => {
    for (const socket of connections)
      socket.destroy()
    server.close(resolve)
  }))
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}/ws`, connections }
}

/** Starts a real hub on a free port (closed after the test). Logs are silenced unless asked for. */
export async function startHub(options: ServerOptions = {}): Promise<RunningHub> {
  const server = createServer({ logger: { level: 'silent' }, env: {}, ...options })
  const listener = await listenHub(server, { port: 0, host: '127.0.0.1', env: {} })
  const hub: RunningHub = {
    server,
    port: listener.port,
    url: (path = '/ws') => `ws://127.0.0.1:${listener.port}${path}`,
    close: () => listener.close(),
  }
  onCleanup(hub.close)
  return hub
}

export interface WireEvent {
  type: string
  data: any
  metadata?: { source?: any, event?: { id?: string, parentId?: string } }
  route?: any
}

/** A raw `ws` peer speaking AIRI frames, with a queue of what it received. */
export class RawPeer {
  readonly received: WireEvent[] = []
  readonly frames: string[] = []
  closed?: { code: number, reason: string }
  private waiters: Array<() => void> = []

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString()
      this.frames.push(text)
      const event = superjson.parse<WireEvent>(text)
      if (event)
        this.received.push(event)
      this.wake()
    })
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
      this.wake()
    })
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0))
      waiter()
  }

  static async connect(url: string, options?: WebSocket.ClientOptions): Promise<RawPeer> {
    const ws = new WebSocket(url, options)
    const peer = new RawPeer(ws)
    onCleanup(() => peer.close())
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return peer
  }

  send(event: WireEvent | Record<string, unknown>): string {
    const id = Math.random().toString(36).slice(2)
    const withId = { ...event, metadata: { ...(event as WireEvent).metadata, event: { id, ...(event as WireEvent).metadata?.event } } }
    this.ws.send(superjson.stringify(withId))
    return (withId.metadata.event as { id: string }).id
  }

  sendRaw(text: string | Buffer): void {
    this.ws.send(text)
  }

  /** Waits until an event matching `predicate` has arrived (searching all received so far). */
  async waitFor(predicate: (event: WireEvent) => boolean, timeoutMs = 5000): Promise<WireEvent> {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const found = this.received.find(predicate)
      if (found)
        return found
      if (this.closed)
        throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before the event arrived`)
      const left = deadline - Date.now()
      if (left <= 0)
        throw new Error(`timed out; received: ${this.received.map(e => e.type).join(', ')}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  waitForType(type: string, timeoutMs?: number): Promise<WireEvent> {
    return this.waitFor(event => event.type === type, timeoutMs)
  }

  async waitForClose(timeoutMs = 5000): Promise<{ code: number, reason: string }> {
    const deadline = Date.now() + timeoutMs
    while (!this.closed) {
      if (Date.now() > deadline)
        throw new Error('socket did not close')
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    return this.closed
  }

  /** Authenticates (when a token is given) and announces; resolves once a sync lists the module. */
  async join(name: string, options: { token?: string, identity?: Record<string, unknown>, index?: number } = {}): Promise<void> {
    if (options.token !== undefined) {
      this.send({ type: 'module:authenticate', data: { token: options.token } })
      await this.waitForType('module:authenticated')
    }
    const syncs = this.received.filter(e => e.type === 'registry:modules:sync').length
    this.send({ type: 'module:announce', data: { name, index: options.index, identity: options.identity ?? { plugin: name, instanceId: `${name}-1` } } })
    // The sync that answers the authentication may still be on its way: wait for one naming us.
    await this.waitFor(() => this.received.filter(e => e.type === 'registry:modules:sync').slice(syncs).some(e => (e.data.modules as Array<{ name: string, index?: number }>).some(m => m.name === name && m.index === options.index)))
  }

  /** Received events of one type, ignoring heartbeats and registry traffic. */
  ofType(type: string): WireEvent[] {
    return this.received.filter(e => e.type === type)
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close()
      await this.waitForClose().catch(() => this.ws.terminate())
    }
  }
}

/** Resolves after `ms`; use only to prove that something did NOT happen. */
export const settle = (ms = 150): Promise<unknown> => new Promise(resolve => setTimeout(resolve, ms))

/** The HTTP status a WebSocket upgrade is refused with, or 101 when it opens (that socket is closed after the test). */
export async function upgradeStatus(url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<number> {
  const ws = new WebSocket(url, protocols, options)
  onCleanup(() => ws.terminate())
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(101))
    ws.once('unexpected-response', (_request, response) => {
      response.resume()
      resolve(response.statusCode!)
    })
    ws.once('error', reject)
  })
}
