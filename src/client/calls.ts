import type { ClientError } from './errors.ts'
import type { WireEvent } from './wire.ts'

/** A call waiting for the hub's answer: a request's reply or an ack's `event:ack`. */
interface Waiting {
  resolve: (event: WireEvent) => void
  reject: (error: ClientError) => void
  timer?: ReturnType<typeof setTimeout>
}

/** Calls waiting for an answer, by the id of the event that asked. */
export interface Calls {
  /** Waits for the answer to event `id`; `timeoutMs` (when given) rejects with `onTimeout()`. */
  wait: (id: string, timeoutMs: number | undefined, onTimeout: () => ClientError) => Promise<WireEvent>
  /** Hands an event with `parentId` to its waiting call; false when nobody waits for it. */
  answer: (parentId: string, settle: (call: { resolve: (event: WireEvent) => void, reject: (error: ClientError) => void }) => void) => boolean
  /** Rejects every waiting call (the connection dropped, or the client closed). */
  rejectAll: (error: ClientError) => void
}

/** Creates the table of waiting calls. */
export function createCalls(): Calls {
  const waiting = new Map<string, Waiting>()

  function settle(id: string): Waiting | undefined {
    const call = waiting.get(id)
    if (call) {
      waiting.delete(id)
      clearTimeout(call.timer)
    }
    return call
  }

  return {
    wait(id, timeoutMs, onTimeout) {
      return new Promise<WireEvent>((resolve, reject) => {
        const call: Waiting = { resolve, reject }
        if (timeoutMs !== undefined)
          call.timer = setTimeout(() => settle(id)?.reject(onTimeout()), timeoutMs)
        waiting.set(id, call)
      })
    },
    answer(parentId, handle) {
      const call = settle(parentId)
      if (call)
        handle(call)
      return call !== undefined
    },
    rejectAll(error) {
      for (const id of [...waiting.keys()])
        settle(id)?.reject(error)
    },
  }
}
