/**
 * A token bucket: `rate` tokens a second accrue up to `burst`; taking `cost` tokens succeeds
 * only when the bucket holds them all.
 */
export interface TokenBucket {
  /** Whether `cost` is available at `now` (ms), without taking it. */
  has: (cost: number, now: number) => boolean
  take: (cost: number) => void
}

export function createTokenBucket(rate: number, burst: number, now: number): TokenBucket {
  let tokens = burst
  let last = now
  return {
    has(cost, at) {
      if (at > last) {
        tokens = Math.min(burst, tokens + (at - last) * rate / 1000)
        last = at
      }
      return tokens >= cost
    },
    take(cost) {
      tokens -= cost
    },
  }
}

export interface RateLimitOptions {
  /** Frames per second (0 = unlimited) and how many may come at once. */
  eventsPerSec: number
  eventsBurst: number
  /** Bytes per second (0 = unlimited) and how many may come at once. */
  bytesPerSec: number
  bytesBurst: number
  /** How long a sender may stay over the limit before it is closed. */
  graceMs: number
}

/**
 * What to do with one frame: `pass` it; `limited`: drop it and tell the sender (the first
 * refusal of an episode); `dropped`: drop it silently (the sender was told); `close`: the
 * sender has stayed over the limit for longer than the grace.
 */
export type RateVerdict = 'pass' | 'limited' | 'dropped' | 'close'

export interface RateLimit {
  take: (bytes: number) => RateVerdict
}

/**
 * One socket's rate limit: a frame bucket and a byte bucket, both of which must hold the
 * frame. An episode of refusals ends once none has happened for `graceMs`; one that lasts
 * longer than `graceMs` closes the sender: one error per episode, never one per dropped frame.
 */
export function createRateLimit(options: RateLimitOptions, clock: () => number = Date.now): RateLimit {
  const { eventsPerSec, bytesPerSec, graceMs } = options
  if (eventsPerSec === 0 && bytesPerSec === 0)
    return { take: () => 'pass' }
  const start = clock()
  const events = eventsPerSec > 0 ? createTokenBucket(eventsPerSec, options.eventsBurst, start) : undefined
  const bytes = bytesPerSec > 0 ? createTokenBucket(bytesPerSec, options.bytesBurst, start) : undefined
  let since: number | undefined
  let last = 0
  return {
    take(size) {
      const now = clock()
      const hasEvent = events?.has(1, now) ?? true
      if (hasEvent && (bytes?.has(size, now) ?? true)) {
        events?.take(1)
        bytes?.take(size)
        return 'pass'
      }
      if (since === undefined || now - last >= graceMs) {
        since = last = now
        return 'limited'
      }
      last = now
      return now - since >= graceMs ? 'close' : 'dropped'
    },
  }
}
