import type { ResolvedReconnectOptions } from './backoff.ts'
import type { WebSocketConstructor, WebSocketLike } from './socket.ts'
import { backoffDelay } from './backoff.ts'
import { toError } from './errors.ts'
import { OPEN } from './socket.ts'

/** How the client tells a live connection from a dead one. */
export interface HeartbeatOptions {
  /**
   * A `transport:connection:heartbeat` ping goes out this often (the hub answers with a pong).
   * @default 20000
   */
  intervalMs?: number
  /**
   * A ping unanswered (nothing received since it went out) for this long, or a socket still not
   * open after it: the connection is taken for dead and dropped (then reconnected).
   * @default 45000
   */
  timeoutMs?: number
}

/** `heartbeat.intervalMs` unless told otherwise. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 20_000
/** `heartbeat.timeoutMs` unless told otherwise. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 45_000
/** How long a dropped socket may take to close cleanly before it is cut (where it can be: `ws`). */
const CLOSE_GRACE_MS = 1000
/** The close reason of `close()`, as `onClose` reports it. */
export const CLIENT_CLOSED = 'client closed'

/** Why a socket ended, as `onClose` reports it. */
export interface CloseInfo {
  /** The close code: the hub's, or the client's own (4000 for a heartbeat or connect timeout, 4001 for a refused handshake, 1000 for `close()`). */
  code: number
  /** The close reason, as given with the code. */
  reason: string
  /** True when the client will try again. */
  willReconnect: boolean
}

/** When the next attempt will be, as `onReconnect` reports it. */
export interface ReconnectInfo {
  /** 1 for the first attempt after a drop. */
  attempt: number
  /** How long until it (backoff with jitter). */
  delayMs: number
}

/** What createConnection needs: where to connect, how, and whom to tell. */
export interface ConnectionOptions {
  /** Tried in turn: each new socket after a drop takes the next. */
  urls: readonly string[]
  WebSocket: WebSocketConstructor
  reconnect: ResolvedReconnectOptions | false
  heartbeat: Required<HeartbeatOptions>
  /** A heartbeat ping frame. */
  ping: () => string
  /** The socket is open: time for the handshake. */
  opened: () => void
  frame: (text: string) => void
  dropped: (info: CloseInfo) => void
  error: (error: Error) => void
  reconnecting: (info: ReconnectInfo) => void
}

/** One logical connection over successive sockets: it reconnects with backoff and watches liveness. */
export interface Connection {
  /** Sends on the open socket; false when there is none. */
  send: (text: string) => boolean
  /** Drops the current socket as if it had closed (a fatal answer, or a dead peer); it reconnects unless `final`. */
  drop: (code: number, reason: string, final?: boolean) => void
  /** Closes for good. */
  close: () => void
}

function ignoreError(): void {}

/** Opens the first socket at once. */
export function createConnection(options: ConnectionOptions): Connection {
  let socket: WebSocketLike | undefined
  let attempt = 0
  let sockets = 0
  let openedAt = 0
  let lastHeard = 0
  /** When the oldest ping still unanswered went out. */
  let pingedAt: number | undefined
  let closed = false
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let heartbeatTimer: ReturnType<typeof setInterval> | undefined

  function open(): void {
    retryTimer = undefined
    let current: WebSocketLike
    try {
      current = new options.WebSocket(options.urls[sockets++ % options.urls.length]!)
    }
    catch (error) {
      // The first attempt throws out of createClient. A later one (a page that may not open a
      // `ws:` URL of the list, say) is a failed attempt: reported, and the next one scheduled.
      if (sockets === 1)
        throw error
      options.error(toError(error))
      retry()
      return
    }
    socket = current
    // Liveness from the start: a socket whose upgrade is never answered is dropped and retried too.
    lastHeard = Date.now()
    heartbeatTimer = setInterval(beat, options.heartbeat.intervalMs)
    current.onopen = () => {
      openedAt = lastHeard = Date.now()
      pingedAt = undefined
      options.opened()
    }
    current.onmessage = (event: { data: unknown }) => {
      lastHeard = Date.now()
      // The hub sends text frames only (`ws` hands them over as strings too).
      if (typeof event.data !== 'string')
        return
      // Whatever a frame sets off must not throw into the socket: in Node that is an uncaught exception.
      try {
        options.frame(event.data)
      }
      catch (error) {
        options.error(toError(error))
      }
    }
    current.onerror = () => {
      // The close that follows says what happened; browsers give no detail here anyway.
    }
    current.onclose = (event: { code: number, reason: string }) => ended(current, event.code, event.reason)
  }

  function beat(): void {
    const now = Date.now()
    if (!openedAt) {
      if (now - lastHeard > options.heartbeat.timeoutMs)
        drop(4000, 'connect timeout')
      return
    }
    // Timed from the oldest ping not answered (nothing heard since), not from the last frame: a
    // background tab runs this timer once a minute, and a live hub's answer is that old by then.
    if (pingedAt === undefined || lastHeard >= pingedAt)
      pingedAt = now
    else if (now - pingedAt > options.heartbeat.timeoutMs)
      return drop(4000, 'heartbeat timeout')
    send(options.ping())
  }

  /** Forgets a socket (detached, so a late close of it changes nothing) and decides what comes next. */
  function ended(which: WebSocketLike, code: number, reason: string, final = false): void {
    if (which !== socket)
      return
    socket = undefined
    which.onopen = which.onmessage = which.onclose = null
    // Still listened to: `ws` reports a socket closed while connecting as an error on the next
    // tick, which would be an uncaught exception in the user's process without a listener.
    which.onerror = ignoreError
    clearInterval(heartbeatTimer)
    if (final)
      closed = true
    if (openedAt && Date.now() - openedAt >= (options.reconnect ? options.reconnect.stableAfterMs : 0))
      attempt = 0
    openedAt = 0
    options.dropped({ code, reason, willReconnect: !closed && options.reconnect !== false })
    // A listener told of the drop may have closed the client: then nothing is scheduled.
    retry()
  }

  function retry(): void {
    if (closed || !options.reconnect)
      return
    const delayMs = backoffDelay(options.reconnect, attempt++)
    // Scheduled before the listeners hear of it, so that a close() from one of them cancels it.
    retryTimer = setTimeout(open, delayMs)
    options.reconnecting({ attempt, delayMs })
  }

  function send(text: string): boolean {
    if (socket?.readyState !== OPEN)
      return false
    socket.send(text)
    return true
  }

  function drop(code: number, reason: string, final?: boolean): void {
    const current = socket
    if (!current)
      return
    try {
      current.close(code, reason)
    }
    catch {}
    // `ws` waits 30 s for a frozen hub to answer the close, holding the Node process that long: give
    // it a moment, then cut the socket (a no-op once closed; the timer holds nothing alive).
    const terminate = current.terminate?.bind(current)
    if (terminate)
      (setTimeout(terminate, CLOSE_GRACE_MS) as { unref?: () => void }).unref?.()
    ended(current, code, reason, final)
  }

  function close(): void {
    if (closed)
      return
    closed = true
    clearTimeout(retryTimer)
    drop(1000, CLIENT_CLOSED, true)
  }

  open()
  return { send, drop, close }
}
