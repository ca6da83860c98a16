import type { Close } from '../types.ts'

/** Every close the hub and its gateways make: one table, so no code is a literal elsewhere. */
export const CLOSE = {
  /** Silent for two read timeouts. */
  heartbeatExpired: { code: 4000, reason: 'heartbeat expired', deannounce: 'heartbeat expired' },
  /** Still pending at the authentication deadline, or `auth.maxFailures` bad tokens. */
  authFailed: { code: 4001, reason: 'authentication failed' },
  /** A frame over the size limit (`ws` itself closes with 1009 for frames past its receiver's limit). */
  tooBig: { code: 4009, reason: 'message too big' },
  /** Stayed over its rate limit. */
  rateLimited: { code: 4029, reason: 'rate limited' },
  /** The hub is shutting down. */
  shutdown: { code: 1001, reason: 'server shutdown', deannounce: 'server shutdown' },
  /** Left more than `maxBufferedBytes` unsent. */
  slowConsumer: { code: 1013, reason: 'slow consumer' },
  /** A Phoenix frame that is not `[join_ref, ref, topic, event, payload]`. */
  invalidPhoenixFrame: { code: 1007, reason: 'invalid frame: expected [join_ref, ref, topic, event, payload]' },
} as const satisfies Record<string, Close>
