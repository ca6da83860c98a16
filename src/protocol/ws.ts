import type { Hooks, Peer } from 'crossws'
import type { Ticket } from '../core/admission.ts'
import type { RateLimit } from '../core/rate-limit.ts'
import type { Session } from '../core/session.ts'
import type { Hub } from '../hub.ts'
import type { Connection } from '../types.ts'
import type { Corkable } from './cork.ts'
import { Buffer } from 'node:buffer'
import { createRateLimit } from '../core/rate-limit.ts'
import { HubError } from '../errors.ts'
import { airiEncoder, decodeAiriFrame, handleAiriFrame } from './airi.ts'
import { createTickCorker } from './cork.ts'

export type GatewayHooks = Partial<Hooks>

/** A token presented at the upgrade: `?token=` or `Authorization: Bearer`. */
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

/**
 * The client's address: the upgrade request's `ip` (srvx's requests have one, and `listenHub`
 * passes one), or behind a trusted proxy the last `X-Forwarded-For` entry, the one the proxy
 * itself added (earlier entries are whatever the client claimed).
 */
export function clientAddress(request: Request, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = request.headers.get('x-forwarded-for')?.split(',').at(-1)?.trim()
    if (forwarded)
      return forwarded
  }
  return (request as { ip?: string }).ip ?? 'unknown'
}

const REFUSALS = {
  max_peers: { status: 503, text: 'Service Unavailable: too many connections' },
  pending_per_address: { status: 429, text: 'Too Many Requests: too many unauthenticated connections from this address' },
} as const

// A flood of refused upgrades must not become a flood of log lines: one a second per hub,
// counting the others (the metric counts them all).
const refusalLogs = new WeakMap<Hub, { at: number, unlogged: number }>()

function logRefusal(hub: Hub, address: string, refusal: keyof typeof REFUSALS): void {
  const log = refusalLogs.get(hub) ?? { at: 0, unlogged: 0 }
  refusalLogs.set(hub, log)
  const now = Date.now()
  if (now - log.at < 1000) {
    log.unlogged++
    return
  }
  const why = refusal === 'max_peers' ? `${hub.admission.sockets} sockets open (MAX_PEERS)` : 'too many unauthenticated sockets from it (MAX_PENDING_PER_ADDRESS)'
  hub.options.logger.warn(`refused a connection from ${address}: ${why}${log.unlogged ? ` (and ${log.unlogged} more refusals since the last line)` : ''}`)
  log.at = now
  log.unlogged = 0
}

/**
 * Admission at the upgrade, for every gateway: the HTTP answer refusing a socket from
 * `address` (`pending` when it brings no token), or undefined when it may upgrade.
 */
export function refuseUpgrade(hub: Hub, address: string, pending: boolean): Response | undefined {
  const refusal = hub.admission.refusal(address, pending)
  if (!refusal)
    return undefined
  hub.observers.emit('refused', refusal)
  logRefusal(hub, address, refusal)
  const { status, text } = REFUSALS[refusal]
  return new Response(text, { status, headers: { 'retry-after': '1' } })
}

/**
 * Caps the frames a socket may receive. crossws' Node adapter's `peer.websocket` is a `ws`
 * WebSocket whose receiver checks `_maxPayload` against each frame's header, before it
 * buffers the payload: a peer that has not authenticated cannot make the hub hold a large
 * frame at all. Elsewhere the size check after receipt still applies.
 */
export function limitFrameSize(peer: Peer, maxBytes: number): void {
  const receiver = (peer.websocket as { _receiver?: { _maxPayload?: unknown } })._receiver
  if (typeof receiver?._maxPayload === 'number')
    receiver._maxPayload = maxBytes
}

/** `ws` refused a frame over its receiver's limit (and closes the socket with 1009). */
export function isFrameTooBig(error: Error): boolean {
  return error.message.includes('Max payload size exceeded')
}

export interface RateLimitedSocket {
  rate: RateLimit
  /** For the log line: the peer's id and address. */
  describe: () => string
  /** Answers the first dropped frame of an episode. */
  tell: (text: string) => void
  /** Closes the socket with 4029. */
  close: () => void
}

/** Applies a socket's rate limit to one frame: whether the frame may go on. */
export function withinRate(hub: Hub, socket: RateLimitedSocket, text: string): boolean {
  const verdict = socket.rate.take(text.length)
  if (verdict === 'pass')
    return true
  if (verdict === 'close') {
    hub.observers.emit('rateLimited', 'closed')
    hub.options.logger.warn(`${socket.describe()} stayed over its rate limit: closing it (4029)`)
    socket.close()
    return false
  }
  hub.observers.emit('rateLimited', 'dropped')
  if (verdict === 'limited') {
    hub.options.logger.info(`${socket.describe()} is over its rate limit: dropping its frames`)
    socket.tell(text)
  }
  return false
}

/** The rate limit of one socket, from the hub's options. */
export function socketRateLimit(hub: Hub): RateLimit {
  const { eventsPerSec, eventsBurst, bytesPerSec, bytesBurst, rateLimitGraceMs } = hub.options.limits
  return createRateLimit({ eventsPerSec, eventsBurst, bytesPerSec, bytesBurst, graceMs: rateLimitGraceMs })
}

/** The id of an AIRI frame's event, if it has one; it costs a parse, so only for errors. */
function eventIdOf(text: string): string | undefined {
  try {
    return decodeAiriFrame(text).metadata?.event?.id
  }
  catch {
    return undefined
  }
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

interface SendQueue {
  cork: (socket: Corkable) => boolean
  bytesOf: (frame: string) => Buffer
}

function connectionOf(peer: Peer, { cork, bytesOf }: SendQueue): Connection {
  const socket = socketOf(peer)
  // Corked frames count in bufferedAmount before they were even tried: a peer is judged by
  // what earlier turns left unsent, taken when its socket is corked for this turn.
  let backlog = 0
  return {
    encoder: airiEncoder,
    send: (frame) => {
      if (!socket) {
        peer.send(frame)
        return peer.bufferedAmount
      }
      if (cork(socket))
        backlog = peer.bufferedAmount
      peer.send(bytesOf(frame), AS_TEXT)
      return backlog
    },
    close: (code, reason) => peer.close(code, reason),
    ping: () => peer.ping('hub'),
  }
}

/** One `/ws` socket: its hub session, its admission ticket and its rate limit. */
interface AiriSocket extends RateLimitedSocket {
  session: Session
  ticket: Ticket
  /** Until it authenticates: its frames are held to `maxPendingPayloadBytes`. */
  pending: boolean
}

/** crossws hooks of the native AIRI endpoint (`/ws`). */
export function createAiriHooks(hub: Hub): GatewayHooks {
  const sockets = new WeakMap<Peer, AiriSocket>()
  const { maxPayloadBytes, maxPendingPayloadBytes } = hub.options.limits
  const { onError, logger } = hub.options
  const queue: SendQueue = { cork: createTickCorker(), bytesOf: createFrameBytes() }

  return {
    upgrade(request) {
      const token = upgradeToken(request)
      if (token !== undefined && hub.authRequired && !hub.verifyToken(token))
        return new Response('Unauthorized', { status: 401, headers: { 'www-authenticate': 'Bearer' } })
      const address = clientAddress(request, hub.options.trustProxy)
      return refuseUpgrade(hub, address, hub.authRequired && token === undefined) ?? { context: { token, address } }
    },
    open(peer) {
      const { token, address } = peer.context as { token?: string, address: string }
      const session = hub.connect(connectionOf(peer, queue), { token })
      const pending = !session.authenticated
      if (pending)
        limitFrameSize(peer, maxPendingPayloadBytes)
      const describe = (): string => `peer ${session.id} (${address})`
      sockets.set(peer, {
        session,
        ticket: hub.admission.open(address, pending),
        pending,
        rate: socketRateLimit(hub),
        describe,
        tell: text => hub.reject(session, new HubError('rate_limited', 'rate limited'), eventIdOf(text)),
        close() {
          hub.disconnect(session)
          peer.close(4029, 'rate limited')
        },
      })
    },
    message(peer, message) {
      const socket = sockets.get(peer)
      if (!socket || socket.session.state === 'closed')
        return
      const { session } = socket
      try {
        const text = message.text()
        if (isOversized(text, socket.pending ? maxPendingPayloadBytes : maxPayloadBytes)) {
          hub.observers.emit('error', 'payload_too_large')
          logger.info(`${socket.describe()} sent a frame over the size limit: closing it (4009)`)
          hub.disconnect(session)
          peer.close(4009, 'message too big')
          return
        }
        if (!withinRate(hub, socket, text))
          return
        const pending = handleAiriFrame(hub, session, text)
        if (socket.pending && session.authenticated) {
          socket.pending = false
          socket.ticket.authenticated()
          limitFrameSize(peer, maxPayloadBytes)
        }
        if (pending)
          pending.catch(error => onError(error, { stage: 'middleware', peerId: session.id }))
      }
      catch (error) {
        onError(error, { stage: 'decode', peerId: session.id })
      }
    },
    ping(peer) {
      const socket = sockets.get(peer)
      if (socket)
        hub.touch(socket.session)
    },
    pong(peer) {
      const socket = sockets.get(peer)
      if (socket)
        hub.touch(socket.session)
    },
    close(peer) {
      const socket = sockets.get(peer)
      if (!socket)
        return
      socket.ticket.close()
      hub.disconnect(socket.session)
    },
    error(peer, error) {
      const socket = sockets.get(peer)
      if (socket && isFrameTooBig(error)) {
        hub.observers.emit('error', 'payload_too_large')
        logger.info(`${socket.describe()} sent a frame over the size limit: closed (1009)`)
        return
      }
      onError(error, { stage: 'hook', peerId: socket?.session.id })
    },
  }
}
