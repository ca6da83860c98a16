/** How the client waits between reconnect attempts. */
export interface ReconnectOptions {
  /**
   * Delay before the first attempt after a drop.
   * @default 1000
   */
  initialDelayMs?: number
  /**
   * Longest delay between attempts.
   * @default 30000
   */
  maxDelayMs?: number
  /**
   * Each failed attempt multiplies the delay by this.
   * @default 2
   */
  factor?: number
  /**
   * Fraction of each delay drawn at random (0 = none, 1 = anywhere between 0 and the delay), so
   * that clients dropped together do not come back together.
   * @default 0.5
   */
  jitter?: number
  /**
   * A connection open at least this long counts as stable: the next drop starts again at `initialDelayMs`.
   * @default 10000
   */
  stableAfterMs?: number
}

/** `reconnect.initialDelayMs` unless told otherwise. */
export const DEFAULT_RECONNECT_INITIAL_DELAY_MS = 1000
/** `reconnect.maxDelayMs` unless told otherwise. */
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 30_000
/** `reconnect.factor` unless told otherwise. */
export const DEFAULT_RECONNECT_FACTOR = 2
/** `reconnect.jitter` unless told otherwise. */
export const DEFAULT_RECONNECT_JITTER = 0.5
/** `reconnect.stableAfterMs` unless told otherwise. */
export const DEFAULT_RECONNECT_STABLE_AFTER_MS = 10_000

/** Reconnect options with every default filled in. */
export type ResolvedReconnectOptions = Required<ReconnectOptions>

/** Fills in the defaults and checks the values. */
export function resolveReconnectOptions(options: ReconnectOptions = {}): ResolvedReconnectOptions {
  const resolved = {
    initialDelayMs: options.initialDelayMs ?? DEFAULT_RECONNECT_INITIAL_DELAY_MS,
    maxDelayMs: options.maxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS,
    factor: options.factor ?? DEFAULT_RECONNECT_FACTOR,
    jitter: options.jitter ?? DEFAULT_RECONNECT_JITTER,
    stableAfterMs: options.stableAfterMs ?? DEFAULT_RECONNECT_STABLE_AFTER_MS,
  }
  if (!(resolved.initialDelayMs >= 0 && resolved.maxDelayMs >= resolved.initialDelayMs && resolved.factor >= 1 && resolved.jitter >= 0 && resolved.jitter <= 1 && resolved.stableAfterMs >= 0))
    throw new TypeError(`invalid reconnect options: ${JSON.stringify(options)}`)
  return resolved
}

/** The exponential backoff: `delay(attempt)` for attempt 0, 1, 2, …, capped, with jitter. */
export function backoffDelay(options: ResolvedReconnectOptions, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(options.maxDelayMs, options.initialDelayMs * options.factor ** attempt)
  return Math.round(base * (1 - options.jitter * random()))
}
