import type { Close } from '../types.ts'

export type { Close } from '../types.ts'

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
