import { setImmediate } from 'node:timers'

export interface TurnQueue<T> {
  push: (item: T) => void
  /** Hands over what is queued now, without waiting for the turn's end (e.g. before closing). */
  flush: () => void
}

/**
 * Collects what one event-loop turn produces and hands it to `flush` in one go at the turn's
 * end (after the turn's I/O callbacks, before any timer): work a burst needs once, such as one
 * encoded frame or one publish, is then not done once per item.
 */
export function createTurnQueue<T>(flush: (items: T[]) => void): TurnQueue<T> {
  let items: T[] = []

  function run(): void {
    if (items.length === 0)
      return
    const batch = items
    items = []
    flush(batch)
  }

  return {
    push(item) {
      if (items.length === 0)
        setImmediate(run)
      items.push(item)
    },
    flush: run,
  }
}
