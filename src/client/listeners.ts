/** The listeners of one hook (`onOpen`, `onModules`, …). */
export interface Listeners<T> {
  add: (listener: (value: T) => void) => () => void
  emit: (value: T) => void
}

/**
 * Runs a user's handler or listener: what it throws, or the promise it returns rejects with (an
 * async handler), goes to `report`; neither reaches the socket nor is an unhandled rejection.
 */
export function guarded(run: () => unknown, report: (error: unknown) => void): void {
  try {
    const result = run()
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function')
      (result as PromiseLike<unknown>).then(undefined, report)
  }
  catch (error) {
    report(error)
  }
}

/** Listeners of one hook; one that throws is reported to `report` and the others still run. */
export function listeners<T>(report: (error: unknown) => void): Listeners<T> {
  const set = new Set<(value: T) => void>()
  return {
    add(listener: (value: T) => void): () => void {
      set.add(listener)
      return () => set.delete(listener)
    },
    emit(value: T): void {
      for (const listener of [...set])
        guarded(() => listener(value), report)
    },
  }
}
