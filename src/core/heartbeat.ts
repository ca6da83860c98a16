import type { Session } from './session.ts'

export interface HeartbeatOptions {
  /** Silence after which a peer is unhealthy; twice this and it is closed. */
  readTimeout: number
  now: () => number
  sessions: () => Iterable<Session>
  onUnhealthy: (session: Session) => void
  onHealthy: (session: Session) => void
  onExpired: (session: Session) => void
  /** Peers still pending after this long are timed out (0 = never). */
  authTimeout: number
  onAuthTimeout: (session: Session) => void
}

export interface Heartbeat {
  /** Records liveness for a peer; a peer that was unhealthy becomes healthy again. */
  touch: (session: Session) => void
  sweep: () => void
  /** Starts the sweep timer (idempotent). */
  start: () => void
  stop: () => void
}

/**
 * Liveness sweep. Runs four times per read timeout: a peer silent for half the timeout is
 * probed (native ping), so half-open sockets are found even when clients never ping.
 */
export function createHeartbeat(options: HeartbeatOptions): Heartbeat {
  const { readTimeout, authTimeout, now } = options

  function sweep(): void {
    const at = now()
    for (const session of options.sessions()) {
      if (session.state === 'closed')
        continue
      if (authTimeout > 0 && session.state === 'pending' && at - session.connectedAt >= authTimeout) {
        options.onAuthTimeout(session)
        continue
      }
      const silence = at - session.lastSeen
      if (silence >= 2 * readTimeout) {
        options.onExpired(session)
      }
      else if (silence >= readTimeout && !session.unhealthy) {
        session.unhealthy = true
        options.onUnhealthy(session)
      }
      else if (silence >= readTimeout / 2) {
        session.connection.ping?.()
      }
    }
  }

  const period = Math.min(readTimeout / 4, authTimeout > 0 ? authTimeout / 2 : Infinity)
  let timer: ReturnType<typeof setInterval> | undefined

  return {
    touch(session) {
      session.lastSeen = now()
      if (session.unhealthy) {
        session.unhealthy = false
        options.onHealthy(session)
      }
    },
    sweep,
    start() {
      timer ??= setInterval(sweep, Math.max(10, Math.floor(period))).unref()
    },
    stop() {
      clearInterval(timer)
      timer = undefined
    },
  }
}
