import type { Buffer } from 'node:buffer'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { ListenOptions } from './options.ts'
import type { HubServer } from './server.ts'
import nodeAdapter from 'crossws/adapters/node'
import { toNodeHandler } from 'h3'
import { listen } from 'listhen'
import { HubError } from './errors.ts'
import { resolveListenOptions } from './options.ts'

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
 * The upgrade request as crossws' hooks see it, plus the client's address as `ip` (like
 * srvx's requests): the one crossws' Node adapter builds carries only the URL and headers.
 * Undefined when its URL cannot be one (a malformed Host).
 */
function upgradeRequest(request: IncomingMessage): Request | undefined {
  const secure = (request.socket as { encrypted?: boolean }).encrypted || request.headers['x-forwarded-proto'] === 'https'
  try {
    const url = `${secure ? 'https' : 'http'}://${request.headers.host || 'localhost'}${request.url}`
    return Object.assign(new Request(url, { headers: request.headers as Record<string, string> }), { ip: request.socket.remoteAddress })
  }
  catch {
    return undefined
  }
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

/** Serves a hub server over Node's HTTP server (listhen), WebSockets upgraded by crossws. */
export async function listenHub(server: HubServer, options: ListenOptions = {}): Promise<HubListener> {
  const { port, host, shutdownTimeoutMs, headersTimeoutMs } = resolveListenOptions(options)
  const ws = nodeAdapter(server.websocket)
  // Upgraded sockets, so shutdown can wait for their close handshakes.
  const sockets = new Set<Duplex>()
  let slowRequests: ReturnType<typeof cutSlowRequests> | undefined
  const upgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    slowRequests?.headersIn(request.socket)
    const webRequest = upgradeRequest(request)
    if (!webRequest) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
      return
    }
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    ws.handleUpgrade(request, socket, head, webRequest)
  }

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

  let listening = true
  server.hub.readiness.set('listening', () => listening)
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
      await server.closeAllPeers()
      const deadline = Date.now() + shutdownTimeoutMs
      while (sockets.size > 0 && Date.now() < deadline)
        await new Promise(resolve => setTimeout(resolve, 20))
      await listener.close()
    },
  }
}
