import type { Backplane } from './types.ts'
import { createRequire } from 'node:module'

export interface RedisBackplaneOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://`). */
  url: string
}

/**
 * Redis pub/sub over ioredis: one connection publishes, one subscribes (a subscribed Redis
 * connection can do nothing else). Both reconnect by themselves; while either is down the
 * backplane is not ready and publishes fail at once instead of queueing stale messages.
 */
export function createRedisBackplane({ url }: RedisBackplaneOptions): Backplane {
  // Loaded here, not imported: ioredis costs a process ~20 MiB, and a single-node hub never needs it.
  const { Redis } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis')
  const handlers = new Map<string, Set<(message: string) => void>>()
  const readyListeners: Array<(ready: boolean) => void> = []
  const errorListeners: Array<(error: unknown) => void> = []
  const pub = new Redis(url, { enableOfflineQueue: false, lazyConnect: true })
  // We resubscribe ourselves, so that `ready` only turns true once the subscriptions are back.
  const sub = new Redis(url, { autoResubscribe: false, lazyConnect: true })
  let subscribed = false
  let ready = false
  let closing = false
  let closed: Promise<void> | undefined

  function update(): void {
    const now = !closing && pub.status === 'ready' && sub.status === 'ready' && subscribed
    if (now === ready)
      return
    ready = now
    for (const listener of readyListeners)
      listener(ready)
  }

  // One report per outage: ioredis repeats the same connection error on every retry.
  let reported = false
  const report = (error: unknown): void => {
    if (reported || closing)
      return
    reported = true
    for (const listener of errorListeners)
      listener(error)
  }

  async function resubscribe(): Promise<void> {
    if (handlers.size > 0)
      await sub.subscribe(...handlers.keys())
    subscribed = true
    reported = false
    update()
  }

  sub.on('message', (channel: string, message: string) => {
    for (const handler of handlers.get(channel) ?? [])
      handler(message)
  })
  sub.on('ready', () => {
    resubscribe().catch(report)
  })
  for (const client of [pub, sub]) {
    client.on('ready', update)
    client.on('close', () => {
      if (client === sub)
        subscribed = false
      update()
    })
    client.on('error', report)
  }
  let connecting = false
  function connect(): void {
    if (connecting)
      return
    connecting = true
    for (const client of [pub, sub])
      client.connect().catch(report)
  }

  return {
    get ready() { return ready },
    publish: (channel, message) => pub.publish(channel, message),
    async subscribe(channel, handler) {
      let set = handlers.get(channel)
      if (!set)
        handlers.set(channel, set = new Set())
      set.add(handler)
      if (sub.status === 'ready')
        await sub.subscribe(channel)
      connect()
    },
    onReadyChange(listener) {
      readyListeners.push(listener)
    },
    onError(listener) {
      errorListeners.push(listener)
    },
    close() {
      if (!closed) {
        closing = true
        update()
        // QUIT lets queued publishes (a goodbye) out first; a client that is not connected just stops.
        closed = Promise.all([pub, sub].map(async (client) => {
          if (client.status === 'ready')
            await client.quit().catch(() => client.disconnect())
          else
            client.disconnect()
        })).then(() => {})
      }
      return closed
    },
  }
}
