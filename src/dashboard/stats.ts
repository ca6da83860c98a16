import type { Observers } from '../core/observers.ts'

/** Event types counted by name per page session; later ones count as `other` (a sample stays small). */
export const MAX_RATE_TYPES = 24
/** One sample per second, kept for the charts' last minutes. */
export const RATE_HISTORY_SECONDS = 300
/** Recent errors and closes kept for the tables. */
export const RECENT_ENTRIES = 100

/** One second of traffic: events received by type, errors by reason. */
export interface RateSample {
  /** The second it ends (ms since the epoch). */
  t: number
  types: Record<string, number>
  errors: Record<string, number>
}

/** `n` numbers errors and closes together, so a batch carries those after the last one sent. */
export interface ErrorRecord { n: number, t: number, reason: string }
export interface CloseRecord { n: number, t: number, peer: string, code: number, reason: string, protocol: string }

export interface DashboardStats {
  /** Starts counting rates (the first page opened); idempotent. */
  start: () => void
  /** Stops counting rates (the last page closed) and forgets their history. */
  stop: () => void
  /** Ends the current second: its sample joins the history and is returned. */
  sample: () => RateSample
  history: () => readonly RateSample[]
  recentErrors: () => readonly ErrorRecord[]
  recentCloses: () => readonly CloseRecord[]
  /** The number of the last error or close recorded. */
  readonly last: number
  /** Records of either kind after number `n` (for a batch). */
  since: (n: number) => { errors: ErrorRecord[], closes: CloseRecord[] }
}

/** A fixed-size ring: pushes past `size` drop the oldest. */
function ring<T>(size: number): { push: (item: T) => void, items: () => T[], clear: () => void } {
  const buffer: T[] = []
  let next = 0
  return {
    push(item) {
      if (buffer.length < size)
        buffer.push(item)
      else
        buffer[next] = item
      next = (next + 1) % size
    },
    items: () => buffer.length < size ? [...buffer] : [...buffer.slice(next), ...buffer.slice(0, next)],
    clear() {
      buffer.length = 0
      next = 0
    },
  }
}

/**
 * What the dashboard counts, in bounded rings fed by the hub's observers. Errors and closes
 * are rare and always recorded (a page opened after an incident shows it); the per-type rate
 * of received events is on the hot path, so it is counted only while a page is open.
 */
export function createDashboardStats(observers: Observers): DashboardStats {
  const samples = ring<RateSample>(RATE_HISTORY_SECONDS)
  const errors = ring<ErrorRecord>(RECENT_ENTRIES)
  const closes = ring<CloseRecord>(RECENT_ENTRIES)
  let types = new Map<string, number>()
  let errorCounts = new Map<string, number>()
  const named = new Set<string>()
  let stopReceived: (() => void) | undefined
  let last = 0

  const count = (map: Map<string, number>, key: string): void => {
    map.set(key, (map.get(key) ?? 0) + 1)
  }

  observers.on('error', (reason) => {
    errors.push({ n: ++last, t: Date.now(), reason })
    if (stopReceived)
      count(errorCounts, reason)
  })
  observers.on('closed', (peer, code, reason, protocol) => closes.push({ n: ++last, t: Date.now(), peer, code, reason, protocol }))

  return {
    start() {
      stopReceived ??= observers.on('received', (type) => {
        if (!named.has(type) && named.size < MAX_RATE_TYPES)
          named.add(type)
        count(types, named.has(type) ? type : 'other')
      })
    },
    stop() {
      stopReceived?.()
      stopReceived = undefined
      samples.clear()
      types = new Map()
      errorCounts = new Map()
      named.clear()
    },
    sample() {
      const sample: RateSample = { t: Date.now(), types: Object.fromEntries(types), errors: Object.fromEntries(errorCounts) }
      types = new Map()
      errorCounts = new Map()
      samples.push(sample)
      return sample
    },
    history: samples.items,
    recentErrors: errors.items,
    recentCloses: closes.items,
    get last() {
      return last
    },
    since: n => ({ errors: errors.items().filter(record => record.n > n), closes: closes.items().filter(record => record.n > n) }),
  }
}
