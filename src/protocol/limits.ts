import type { Peer } from 'crossws'
import type { RateLimit } from '../core/rate-limit.ts'
import type { Hub } from '../hub.ts'
import { createRateLimit } from '../core/rate-limit.ts'

// The limits every gateway applies at its edge, written once: admission at the upgrade, the
// frame size a socket may send, and its rate limit. The counting itself is the core's.

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

// A flood of refused requests must not become a flood of log lines: one a second per hub,
// counting the others (the metrics count them all).
const refusalLogs = new WeakMap<Hub, { at: number, unlogged: number }>()

/** Logs a refused request or upgrade, at most once a second per hub (the request guard's too). */
export function logRefusal(hub: Hub, line: string): void {
  const log = refusalLogs.get(hub) ?? { at: 0, unlogged: 0 }
  refusalLogs.set(hub, log)
  const now = Date.now()
  if (now - log.at < 1000) {
    log.unlogged++
    return
  }
  hub.options.logger.warn(`${line}${log.unlogged ? ` (and ${log.unlogged} more refusals since the last line)` : ''}`)
  log.at = now
  log.unlogged = 0
}

/**
 * Whether `value`, which a gateway would hold past the frame that brought it (a ref, an id), is
 * longer than a name may be (`limits.maxNameLength`): then it is counted (`limit_exceeded`) and
 * logged, naming the peer and `what` it was.
 */
export function isOverlong(hub: Hub, socket: { describe: () => string }, value: unknown, what: string): boolean {
  const { maxNameLength } = hub.options.limits
  if (typeof value !== 'string' || value.length <= maxNameLength)
    return false
  hub.observers.emit('error', 'limit_exceeded')
  logRefusal(hub, `${socket.describe()}: ${what} is over ${maxNameLength} characters`)
  return true
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
  const why = refusal === 'max_peers' ? `${hub.admission.sockets} sockets open (MAX_PEERS)` : 'too many unauthenticated sockets from it (MAX_PENDING_PER_ADDRESS)'
  logRefusal(hub, `refused a connection from ${address}: ${why}`)
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
