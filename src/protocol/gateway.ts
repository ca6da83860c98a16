import type { Hooks, Peer } from 'crossws'
import type { Close } from '../core/close.ts'
import type { Session } from '../core/session.ts'
import type { ConnectInit } from '../core/sessions.ts'
import type { HubError } from '../errors.ts'
import type { Hub } from '../hub.ts'
import type { Connection, EventEncoder, HubEvent } from '../types.ts'
import type { Corkable } from './cork.ts'
import type { RateLimitedSocket } from './limits.ts'
import { Buffer } from 'node:buffer'
import { CLOSE } from '../core/close.ts'
import { createTickCorker } from './cork.ts'
import { clientAddress, isFrameTooBig, limitFrameSize, refuseUpgrade, socketRateLimit, withinRate } from './limits.ts'

// The contract every wire protocol implements, and the plumbing they all share, written once:
// token and admission at the upgrade, frame size, rate limit, liveness, the slow-consumer bound,
// disconnect on close and error reporting. A gateway only translates frames.

/** How a gateway's sockets authenticate at the upgrade. */
export interface GatewayAuth {
  /**
   * Query parameters that may carry the token (`Authorization: Bearer` is always read).
   * @default ['token']
   */
  params?: readonly string[]
  /**
   * The protocol can authenticate after the upgrade: a socket without a token is let in
   * (pending, its frames held to `limits.maxPendingPayloadBytes`) instead of refused.
   * @default false
   */
  inBand?: boolean
  /**
   * The status refusing a bad (or, without `inBand`, missing) token: 401 asks for credentials, 403 does not.
   * @default 403
   */
  status?: 401 | 403
}

/** What a gateway's own upgrade check may add: a token found elsewhere, a subprotocol to answer. */
export interface UpgradeExtras {
  token?: string
  protocol?: string
  /**
   * This upgrade may come without a token (pending, as with `auth.inBand`): the gateway admits
   * its sessions by configuration (`GatewaySocket.connect(connection, { admittedAs })`) or not at all.
   */
  keyless?: boolean
}

/** One open socket of a gateway, as the plumbing keeps it. */
export interface GatewaySocket {
  readonly hub: Hub
  /** The token presented at the upgrade, if any. */
  readonly token?: string
  /** The client's address (behind a trusted proxy, the one it forwarded). */
  readonly address: string
  /** The query of the upgrade URL (a module name the client put there). */
  readonly query: URLSearchParams
  /** The path of the upgrade URL (one of the gateway's `paths`). */
  readonly path: string
  /** The host of the upgrade URL (its `Host` header), port included. */
  readonly host: string
  /** The socket's hub sessions still open: liveness and disconnect apply to all of them. */
  readonly sessions: ReadonlySet<Session>
  /** Opens a hub session on this socket: `registry`, how it hears the registry (asked at the upgrade); `admittedAs`, admitted without a token for that module name alone (see `Sessions.connect`). */
  connect: (connection: Connection, init?: Pick<ConnectInit, 'registry' | 'admittedAs'>) => Session
  /** The port of a session that is the whole socket: frames go out as they are. */
  connection: (encoder: EventEncoder) => Connection
  /** Queues a frame (held to the end of the turn); returns what earlier turns left unsent. */
  send: (frame: string) => number
  /** Sends a frame of the gateway's own (a reply): a socket that stops reading is closed with 1013. */
  write: (frame: string) => void
  /** The bytes waiting for this socket now. */
  buffered: () => number
  /** A native ping; its pong counts as liveness of every session. */
  ping: () => void
  /** Disconnects every session of the socket and closes it. */
  close: (close: Close) => void
  /** Set once it is being closed: nothing more is written to it or taken from it. */
  readonly closed: boolean
  /** For log lines: the socket's id and address. */
  describe: () => string
}

/** What a gateway does with one socket's frames. */
export interface GatewayHandler {
  /** One text frame, within the size and rate limits; a promise is awaited for errors only. */
  message: (text: string) => void | Promise<unknown>
  /** The first frame dropped over the rate limit: tell the client, in the protocol's words. */
  rateLimited?: (text: string) => void
  /** The socket is gone; its sessions are disconnected already. */
  closed?: () => void
}

export interface Gateway {
  /** Names the gateway in log lines. */
  name: string
  /** The paths it serves; each is one endpoint of the server. */
  paths: readonly string[]
  /** A port of its own where `/` is its first path, for clients that dial the root (Thymian's); `listenHub` serves it. */
  port?: number
  /** Event types the protocol itself speaks: metrics always label them by name. */
  events?: readonly string[]
  auth?: GatewayAuth
  /** Checks of its own before the token (a protocol version, a subprotocol): a refusal, or extras. */
  upgrade?: (request: Request, hub: Hub) => Response | UpgradeExtras | undefined
  /** A socket opened: the handler of its frames. */
  open: (socket: GatewaySocket) => GatewayHandler
}

/** Declares a gateway (typed input for `createServer({ gateways })`). */
export function defineGateway(gateway: Gateway): Gateway {
  return gateway
}

/** crossws hooks, as the server mounts them on each path. */
export type GatewayHooks = Partial<Hooks>

/** A token presented at the upgrade: one of `params` in the query, or `Authorization: Bearer`. */
export function upgradeToken(request: Request, params: readonly string[] = ['token']): string | undefined {
  const query = new URL(request.url).searchParams
  for (const param of params) {
    const value = query.get(param)
    if (value !== null)
      return value
  }
  const authorization = request.headers.get('authorization')
  return authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined
}

/** Whether a text frame is over `max` bytes, without encoding it when its length already tells. */
export function isOversized(text: string, max: number): boolean {
  if (text.length > max)
    return true
  return text.length * 3 > max && Buffer.byteLength(text) > max
}

/**
 * The TCP socket under a crossws peer, where the runtime has one: crossws exposes no cork, but
 * its Node adapter's `peer.websocket` is a `ws` WebSocket that keeps its socket in `_socket`.
 */
function socketOf(peer: Peer): Corkable | undefined {
  const socket = (peer.websocket as { _socket?: Partial<Corkable> })._socket
  return typeof socket?.cork === 'function' && typeof socket.uncork === 'function' ? socket as Corkable : undefined
}

// crossws sends a Buffer as a binary frame unless told otherwise; its Node adapter passes the
// options through to `ws`.
const AS_TEXT = { binary: false } as { compress?: boolean }

/**
 * The UTF-8 bytes of the frame last sent. The router hands every recipient of an event the
 * same string, so it is encoded once and all their queued writes share one Buffer, where
 * `ws` would otherwise copy the text into each socket's write queue.
 */
function createFrameBytes(): (frame: string) => Buffer {
  let text: string | undefined
  let bytes = Buffer.alloc(0)
  return (frame) => {
    if (frame !== text) {
      text = frame
      bytes = Buffer.from(frame)
    }
    return bytes
  }
}

const REFUSED_TOKEN = {
  401: () => new Response('Unauthorized', { status: 401, headers: { 'www-authenticate': 'Bearer' } }),
  403: () => new Response('Forbidden', { status: 403 }),
}

interface UpgradeContext {
  token?: string
  address: string
  search: string
  path: string
  host: string
  /** Upgraded without a token while auth is required: it must authenticate in-band. */
  pending: boolean
}

/** What the plumbing holds for one open socket. */
interface OpenSocket {
  socket: GatewaySocket
  handler: GatewayHandler
  /** Names the socket to `onError`: its first session's id, else the socket's. */
  id: () => string
  rate: RateLimitedSocket
  /** The size a frame may have now. */
  maxFrameBytes: () => number
  /** After each frame: a pending socket whose session authenticated gets the full limits. */
  checkAuthenticated: () => void
  /** Any sign of life: every session is touched, and the idle timer restarts. */
  alive: () => void
  /** After a frame: sessions it closed are let go; without sessions, the idle timer runs. */
  settle: () => void
  /** The socket went away (`details` of the peer's close): its ticket and timer go, its sessions are disconnected. */
  gone: (details: { code?: number, reason?: string }) => void
}

/**
 * A failure the hub reports after the call that caused it (`Connection.fail`), as every
 * gateway's connection sends it by default: an `error` event `{message}` answering `parentId`,
 * in the connection's own encoding.
 */
export function failureEvent(hub: Hub, error: HubError, parentId?: string): HubEvent {
  return hub.event('error', { message: error.message }, parentId)
}

/** The crossws hooks of one gateway over `hub`: the plumbing around its handler. */
export function createGatewayHooks(hub: Hub, gateway: Gateway, { trustProxy }: { trustProxy: boolean }): GatewayHooks {
  const sockets = new WeakMap<Peer, OpenSocket>()
  const { maxPayloadBytes, maxPendingPayloadBytes, maxBufferedBytes } = hub.options.limits
  const { logger } = hub.options
  const onError = hub.report
  const { params, inBand = false, status = 403 } = gateway.auth ?? {}
  const cork = createTickCorker()
  const bytesOf = createFrameBytes()
  // A socket without a session (a Phoenix socket that joined nothing) has no heartbeat of its own.
  const idleMs = 2 * hub.options.heartbeat.readTimeout

  function open(peer: Peer): OpenSocket {
    const { token, address, search, path, host, pending: pendingAtUpgrade } = peer.context as unknown as UpgradeContext
    let pending = pendingAtUpgrade
    const ticket = hub.admission.open(address, pending)
    const tcp = socketOf(peer)
    const sessions = new Set<Session>()
    let idle: ReturnType<typeof setTimeout> | undefined
    let closed = false
    // Corked frames count in bufferedAmount before they were even tried: a socket is judged by
    // what earlier turns left unsent, taken when it is corked for this turn.
    let backlog = 0
    const id = (): string => sessions.values().next().value?.id ?? peer.id
    const describe = (): string => `${gateway.name} peer ${id()} (${address})`
    // Who closed, for a live view: its id and first module names, while they are still known.
    const closedObservation = (code: number, reason: string): void => {
      if (!hub.observers.has('closed'))
        return
      const names = [...sessions].flatMap(session => session.modules.map(module => module.name))
      const peer = names.length > 0 ? `${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''} (${id()})` : id()
      hub.observers.emit('closed', peer, code, reason, gateway.name)
    }

    const socket: GatewaySocket = {
      hub,
      token,
      address,
      query: new URLSearchParams(search),
      path,
      host,
      sessions,
      get closed() {
        return closed
      },
      describe,
      connect(connection, init) {
        const session = hub.connect(connection, { ...init, token })
        sessions.add(session)
        return session
      },
      connection(encoder) {
        const connection: Connection = {
          encoder,
          protocol: gateway.name,
          send: socket.send,
          buffered: socket.buffered,
          close: socket.close,
          ping: socket.ping,
          fail: (error, parentId) => connection.send(connection.encoder.encode(failureEvent(hub, error, parentId))),
        }
        return connection
      },
      send(frame) {
        if (!tcp) {
          peer.send(frame)
          return peer.bufferedAmount
        }
        if (cork(tcp))
          backlog = peer.bufferedAmount
        peer.send(bytesOf(frame), AS_TEXT)
        return backlog
      },
      write(frame) {
        if (closed)
          return
        socket.send(frame)
        if (peer.bufferedAmount <= maxBufferedBytes)
          return
        logger.warn(`${describe()} is not reading (over ${maxBufferedBytes} bytes unsent): closing it`)
        hub.observers.emit('error', 'slow_consumer')
        socket.close(CLOSE.slowConsumer)
      },
      buffered: () => peer.bufferedAmount,
      ping: () => peer.ping('hub'),
      close(close) {
        if (closed)
          return
        closed = true
        clearTimeout(idle)
        closedObservation(close.code, close.reason)
        for (const session of sessions)
          hub.disconnect(session, close.deannounce)
        sessions.clear()
        peer.close(close.code, close.reason)
      },
    }

    const handler = gateway.open(socket)
    if (pending)
      limitFrameSize(peer, maxPendingPayloadBytes)
    return {
      socket,
      handler,
      id,
      rate: {
        rate: socketRateLimit(hub),
        describe,
        tell: text => handler.rateLimited?.(text),
        close: () => socket.close(CLOSE.rateLimited),
      },
      maxFrameBytes: () => pending ? maxPendingPayloadBytes : maxPayloadBytes,
      checkAuthenticated() {
        if (!pending || ![...sessions].some(session => session.authenticated))
          return
        pending = false
        ticket.authenticated()
        limitFrameSize(peer, maxPayloadBytes)
      },
      alive() {
        for (const session of sessions)
          hub.touch(session)
        clearTimeout(idle)
        this.settle()
      },
      settle() {
        for (const session of sessions) {
          if (session.state === 'closed')
            sessions.delete(session)
        }
        if (sessions.size === 0 && !closed) {
          clearTimeout(idle)
          idle = setTimeout(() => socket.close(CLOSE.heartbeatExpired), idleMs)
          idle.unref?.()
        }
      },
      gone(details) {
        ticket.close()
        clearTimeout(idle)
        if (!socket.closed)
          closedObservation(details.code ?? 1005, details.reason ?? '')
        for (const session of sessions)
          hub.disconnect(session)
        sessions.clear()
        handler.closed?.()
      },
    }
  }

  return {
    upgrade(request) {
      const extras = gateway.upgrade?.(request, hub)
      if (extras instanceof Response)
        return extras
      const token = upgradeToken(request, params) ?? extras?.token
      if (hub.authRequired && (token === undefined ? !(inBand || extras?.keyless) : !hub.verifyToken(token)))
        return REFUSED_TOKEN[status]()
      const pending = hub.authRequired && token === undefined
      const address = clientAddress(request, trustProxy)
      const url = new URL(request.url)
      const context: UpgradeContext = { token, address, search: url.search, path: url.pathname, host: url.host, pending }
      return refuseUpgrade(hub, address, pending) ?? { context: context as unknown as Record<string, unknown>, protocol: extras?.protocol }
    },
    open(peer) {
      const entry = open(peer)
      sockets.set(peer, entry)
      entry.alive()
    },
    message(peer, message) {
      const entry = sockets.get(peer)
      if (!entry || entry.socket.closed)
        return
      const { socket, handler } = entry
      try {
        const text = message.text()
        if (isOversized(text, entry.maxFrameBytes())) {
          hub.observers.emit('error', 'payload_too_large')
          logger.info(`${socket.describe()} sent a frame over the size limit: closing it (4009)`)
          return socket.close(CLOSE.tooBig)
        }
        if (!withinRate(hub, entry.rate, text))
          return
        entry.alive()
        const pending = handler.message(text)
        entry.checkAuthenticated()
        // The frame may have opened or closed sessions.
        entry.settle()
        if (pending)
          pending.catch(error => onError(error, { stage: 'middleware', peerId: entry.id() }))
      }
      catch (error) {
        onError(error, { stage: 'decode', peerId: entry.id() })
      }
    },
    ping: peer => sockets.get(peer)?.alive(),
    pong: peer => sockets.get(peer)?.alive(),
    close: (peer, details) => sockets.get(peer)?.gone(details),
    error(peer, error) {
      const entry = sockets.get(peer)
      if (entry && isFrameTooBig(error)) {
        hub.observers.emit('error', 'payload_too_large')
        logger.info(`${entry.socket.describe()} sent a frame over the size limit: closed (1009)`)
        return
      }
      onError(error, { stage: 'hook', peerId: entry?.id() ?? peer.id })
    },
  }
}
