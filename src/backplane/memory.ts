import type { Backplane } from './types.ts'

/** Channels shared by the backplanes of one process: pass one bus to several hubs to cluster them. */
export interface MemoryBus {
  readonly channels: Map<string, Set<(message: string) => void>>
}

export function createMemoryBus(): MemoryBus {
  return { channels: new Map() }
}

/**
 * The backplane of hubs in one process. Messages are delivered asynchronously (as over a
 * network), in publish order.
 */
export function createMemoryBackplane(bus: MemoryBus = createMemoryBus()): Backplane {
  const own: Array<[channel: string, handler: (message: string) => void]> = []
  let ready = true

  return {
    get ready() { return ready },
    async publish(channel, message) {
      if (!ready)
        throw new Error('memory backplane closed')
      const handlers = [...bus.channels.get(channel) ?? []]
      queueMicrotask(() => {
        for (const handler of handlers)
          handler(message)
      })
      return handlers.length
    },
    async subscribe(channel, handler) {
      if (!ready)
        throw new Error('memory backplane closed')
      let handlers = bus.channels.get(channel)
      if (!handlers)
        bus.channels.set(channel, handlers = new Set())
      handlers.add(handler)
      own.push([channel, handler])
    },
    onReadyChange() {},
    onError() {},
    async close() {
      ready = false
      for (const [channel, handler] of own) {
        const handlers = bus.channels.get(channel)
        if (handlers?.delete(handler) && handlers.size === 0)
          bus.channels.delete(channel)
      }
      own.length = 0
    },
  }
}
