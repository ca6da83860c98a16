import type { DeannounceReason } from '../types.ts'

/** Why a socket is closed: its WebSocket close code and reason, and what its modules' de-announce says. */
export interface Close {
  readonly code: number
  readonly reason: string
  /** @default 'connection closed' */
  readonly deannounce?: DeannounceReason
}

/** Every close the hub and its gateways make, in one table. */
export const CLOSE = {
  shutdown: { code: 1001, reason: 'server shutdown', deannounce: 'server shutdown' },
  invalidFrame: { code: 1007, reason: 'invalid frame' },
  slowConsumer: { code: 1013, reason: 'slow consumer' },
  heartbeatExpired: { code: 4000, reason: 'heartbeat expired', deannounce: 'heartbeat expired' },
  authFailed: { code: 4001, reason: 'authentication failed' },
  tooBig: { code: 4009, reason: 'message too big' },
  rateLimited: { code: 4029, reason: 'rate limited' },
} as const satisfies Record<string, Close>

const byCode = new Map<number, Close>(Object.values(CLOSE).map(close => [close.code, close]))

/**
 * The table entry of a close the core asks for as `(code, reason)`, until `Connection.close`
 * takes a `Close` itself.
 */
export function closeOf(code: number, reason: string): Close {
  return byCode.get(code) ?? { code, reason }
}
