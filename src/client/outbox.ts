import { ClientError } from './errors.ts'

/** How calls made while disconnected wait for the connection. */
export interface QueueOptions {
  /**
   * Calls that may wait at once; past it a call fails at once (`not_connected`). 0: never wait.
   * @default 100
   */
  maxSize?: number
  /**
   * A waiting call not sent within this fails (`not_connected`).
   * @default 30000
   */
  maxWaitMs?: number
}

/** `queue.maxSize` unless told otherwise. */
export const DEFAULT_QUEUE_MAX_SIZE = 100
/** `queue.maxWaitMs` unless told otherwise. */
export const DEFAULT_QUEUE_MAX_WAIT_MS = 30_000

interface Queued {
  send: () => void
  fail: (error: ClientError) => void
  timer: ReturnType<typeof setTimeout>
}

/** Calls waiting for the connection, in call order, bounded in number and time. */
export interface Outbox {
  /** Queues a call, or fails it at once when the queue is full. */
  push: (send: () => void, fail: (error: ClientError) => void) => void
  /** Sends every waiting call, in order. */
  flush: () => void
  /** Fails every waiting call (the client closed). */
  failAll: (error: ClientError) => void
}

/** Creates an empty outbox. */
export function createOutbox(options: Required<QueueOptions>): Outbox {
  const queued = new Set<Queued>()
  return {
    push(send, fail) {
      if (queued.size >= options.maxSize) {
        fail(new ClientError('not_connected', options.maxSize === 0 ? 'not connected' : `not connected, and ${options.maxSize} calls already wait`))
        return
      }
      const item: Queued = {
        send,
        fail,
        timer: setTimeout(() => {
          queued.delete(item)
          fail(new ClientError('not_connected', `not connected within ${options.maxWaitMs} ms`))
        }, options.maxWaitMs),
      }
      queued.add(item)
    },
    flush() {
      for (const item of [...queued]) {
        queued.delete(item)
        clearTimeout(item.timer)
        item.send()
      }
    },
    failAll(error) {
      for (const item of [...queued]) {
        queued.delete(item)
        clearTimeout(item.timer)
        item.fail(error)
      }
    },
  }
}
