import type { Buffer } from 'node:buffer'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Env } from './env-options.ts'
import type { HubServer } from './server.ts'
import { createServer } from 'node:http'
import process from 'node:process'
import nodeAdapter from 'crossws/adapters/node'
import { toNodeHandler } from 'h3'
import { listen } from 'listhen'
import { NodeRequest } from 'srvx/node'
import { envOptions, positiveInt } from './env-options.ts'
import { HubError } from './errors.ts'

export interface ListenOptions {
  /** @default env `PORT`, else 6121 (0 = any free port) */
  port?: number
  /** @default env `HOST`, else 127.0.0.1 */
  host?: string
  /**
   * On close, how long peers get to finish their close handshake before their sockets are cut.
   * @default env `SHUTDOWN_TIMEOUT_MS`, else 3000
   */
  shutdownTimeoutMs?: number
  /**
   * A connection that has not sent its request headers (e.g. a WebSocket upgrade) by then is
   * cut, so slow requests cannot hold sockets open.
   * @default env `HEADERS_TIMEOUT_MS`, else 10000
   */
  headersTimeoutMs?: number
  env?: Env
}

export const DEFAULT_PORT = 6121
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 3000
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000

/** The listener's env-configurable options. */
export const LISTEN_ENV_OPTIONS = envOptions({
  PORT: { flag: 'port', value: '<port>', default: String(DEFAULT_PORT), description: 'port to listen on (0 = any free port)' },
  HOST: { flag: 'host', value: '<host>', default: DEFAULT_HOST, description: 'interface to listen on (0.0.0.0 = all)' },
  HEADERS_TIMEOUT_MS: { flag: 'headers-timeout', value: '<ms>', default: String(DEFAULT_HEADERS_TIMEOUT_MS), description: 'a connection that has not sent its request headers by then is cut' },
  SHUTDOWN_TIMEOUT_MS: { flag: 'shutdown-timeout', value: '<ms>', default: String(DEFAULT_SHUTDOWN_TIMEOUT_MS), description: 'on SIGINT/SIGTERM, how long peers get to close' },
})

export function resolveListenOptions(options: ListenOptions = {}): { port: number, host: string, shutdownTimeoutMs: number, headersTimeoutMs: number } {
  const env = options.env ?? process.env
  return {
    port: positiveInt(LISTEN_ENV_OPTIONS.PORT, options.port, env, DEFAULT_PORT, 0),
    host: options.host || env.HOST || DEFAULT_HOST,
    shutdownTimeoutMs: positiveInt(LISTEN_ENV_OPTIONS.SHUTDOWN_TIMEOUT_MS, options.shutdownTimeoutMs, env, DEFAULT_SHUTDOWN_TIMEOUT_MS, 0),
    headersTimeoutMs: positiveInt(LISTEN_ENV_OPTIONS.HEADERS_TIMEOUT_MS, options.headersTimeoutMs, env, DEFAULT_HEADERS_TIMEOUT_MS),
  }
}

export interface HubListener {
  url: string
  port: number
  /** Every URL the hub answers on (one per interface when listening on all of them). */
  urls: string[]
  /**
   * Stops accepting connections, closes every peer with 1001 "server shutdown", gives them
   * `shutdownTimeoutMs` to finish the close handshake, then closes the HTTP server.
   */
  close: () => Promise<void>
}

function portTaken(port: number, host: string, cause?: unknown): HubError {
  return new HubError('invalid_option', `Port ${port} on ${host} is already in use (or not allowed); choose another with --port / PORT`, { cause })
}

/**
 * Cuts connections that have not sent their request headers within `timeoutMs` (slowloris).
 * Node's own `headersTimeout` is set too, but Node checks it only every 30 s
 * (`connectionsCheckingInterval`, fixed when listhen creates the server): a first request
 * gets a deadline of its own, cleared once its headers are in.
 */
function cutSlowRequests(server: Server, timeoutMs: number): { headersIn: (socket: Socket) => void } {
  server.headersTimeout = timeoutMs
  server.requestTimeout = timeoutMs // the hub's requests are GETs: complete with their headers
  const deadlines = new WeakMap<Socket, ReturnType<typeof setTimeout>>()
  server.on('connection', (socket: Socket) => {
    const deadline = setTimeout(() => socket.destroy(), timeoutMs)
    deadline.unref()
    deadlines.set(socket, deadline)
    socket.once('close', () => clearTimeout(deadline))
  })
  const headersIn = (socket: Socket): void => clearTimeout(deadlines.get(socket))
  server.on('request', (request: IncomingMessage) => headersIn(request.socket))
  return { headersIn }
}

type Upgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => void

/**
 * A gateway's own port (`Gateway.port`): an upgrade of `/` is the gateway's path on the hub's
 * port (same hooks, guard and limits); anything else is refused.
 */
async function listenRootPort({ port, path }: { port: number, path: string }, host: string, headersTimeoutMs: number, upgrade: Upgrade): Promise<Server> {
  const server = createServer((_request, response) => response.writeHead(426, { connection: 'close' }).end('Upgrade Required'))
  const slowRequests = cutSlowRequests(server, headersTimeoutMs)
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    slowRequests.headersIn(request.socket)
    const url = request.url ?? '/'
    if (url !== '/' && !url.startsWith('/?'))
      return socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    request.url = path + url.slice(1)
    upgrade(request, socket, head)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', error => reject(portTaken(port, host, error)))
    server.listen(port, host, resolve)
  })
  return server
}

/** Serves a hub server over Node's HTTP server (listhen), WebSockets upgraded by crossws. */
export async function listenHub(server: HubServer, options: ListenOptions = {}): Promise<HubListener> {
  const { port, host, shutdownTimeoutMs, headersTimeoutMs } = resolveListenOptions(options)
  const ws = nodeAdapter(server.websocket)
  // Upgraded sockets, so shutdown can wait for their close handshakes.
  const sockets = new Set<Duplex>()
  let slowRequests: ReturnType<typeof cutSlowRequests> | undefined
  const upgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    slowRequests?.headersIn(request.socket)
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    // srvx's request, as h3 and Nitro make it: a URL that parses whatever the Host, and `ip` for
    // the guard's log lines.
    ws.handleUpgrade(request, socket, head, new NodeRequest({ req: request }))
  }
  // Before the first request: on a loopback address with auth off, only loopback Hosts are served.
  server.guard.listeningOn(host)

  let listener: Awaited<ReturnType<typeof listen>>
  try {
    listener = await listen(toNodeHandler(server.app), {
      // An explicit port must be that port: no random fallback (and, as a port is given, no
      // alternative range).
      port: { port, random: port === 0 },
      hostname: host,
      // listhen's types predate crossws' (req, socket, head) upgrade handler; it passes all three.
      ws: upgrade as never,
      showURL: false,
      isProd: true,
      // listhen's own SIGINT/SIGTERM handlers exit at once; shutdown is the caller's (the CLI's).
      autoClose: false,
      public: host !== '127.0.0.1' && host !== 'localhost' && host !== '::1',
    })
  }
  catch (error) {
    if ((error as { name?: string }).name === 'GetPortError' || (error as { code?: string }).code === 'EADDRINUSE')
      throw portTaken(port, host, error)
    throw error
  }
  slowRequests = cutSlowRequests(listener.server, headersTimeoutMs)
  const address = listener.address as { port: number }
  // get-port-please silently swaps ports it considers unsafe; a port we did not ask for is an error.
  if (port !== 0 && address.port !== port) {
    await listener.close()
    throw portTaken(port, host)
  }

  const rootPorts: Server[] = []
  try {
    for (const root of server.rootPorts)
      rootPorts.push(await listenRootPort(root, host, headersTimeoutMs, upgrade))
  }
  catch (error) {
    for (const root of rootPorts)
      root.close()
    await listener.close()
    throw error
  }

  let listening = true
  server.hub.readiness.set('listening', () => listening)
  server.hub.start()
  const urls = (await listener.getURLs()).map(entry => entry.url)

  return {
    url: listener.url,
    port: address.port,
    urls,
    async close() {
      if (!listening)
        return
      listening = false
      listener.server.close() // stop accepting; listhen's close below cuts what is left
      for (const root of rootPorts)
        root.close()
      await server.closeAllPeers()
      const deadline = Date.now() + shutdownTimeoutMs
      while (sockets.size > 0 && Date.now() < deadline)
        await new Promise(resolve => setTimeout(resolve, 20))
      for (const root of rootPorts)
        root.closeAllConnections()
      await listener.close()
    },
  }
}
