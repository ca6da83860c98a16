import WebSocket from 'ws'

/** A module as registry events carry it, keyed the way a client tells modules apart. */
interface ModuleData { name: string, index?: number, identity: { plugin: string, instanceId: string } }

export function moduleKey(module: { name: string, index?: number, identity: { plugin?: string, pluginId?: string, instanceId: string } }): string {
  return `${module.name}#${module.index ?? ''}#${module.identity.plugin ?? module.identity.pluginId}#${module.identity.instanceId}`
}

/**
 * A light AIRI peer for storms (thousands in one process): it announces one module and keeps
 * the registry view a client builds — a sync replaces it, deltas edit it — reading only
 * plain-JSON frames (the hub sends registry traffic as such).
 */
export class ViewPeer {
  readonly view = new Map<string, ModuleData>()
  readonly ws: WebSocket
  closed?: number
  syncs = 0
  deltas = 0
  readonly opened: Promise<void>

  constructor(url: string, readonly name: string, { token }: { token?: string } = {}) {
    this.ws = new WebSocket(url, { perMessageDeflate: false })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
    })
    this.ws.on('open', () => {
      if (token !== undefined)
        this.send({ type: 'module:authenticate', data: { token } })
      this.send({ type: 'module:announce', data: { name, identity: { plugin: name, instanceId: name } } })
    })
    this.ws.on('message', data => this.receive(JSON.parse(data.toString()).json))
    this.ws.on('close', (code) => {
      this.closed = code
    })
    this.ws.on('error', () => {})
  }

  send(event: Record<string, unknown>): void {
    this.ws.send(JSON.stringify({ json: event }))
  }

  private receive(event: { type: string, data: any }): void {
    switch (event.type) {
      case 'registry:modules:sync':
        this.syncs++
        this.view.clear()
        for (const module of event.data.modules as ModuleData[])
          this.view.set(moduleKey(module), module)
        return
      case 'module:announced':
        this.deltas++
        this.view.set(moduleKey(event.data), event.data)
        return
      case 'module:de-announced':
        this.deltas++
        this.view.delete(moduleKey(event.data))
        return
      case 'transport:connection:heartbeat':
        if (event.data.kind === 'ping')
          this.send({ type: 'transport:connection:heartbeat', data: { kind: 'pong', message: 'pong' } })
    }
  }

  /** Whether the view holds exactly these module keys. */
  sees(keys: ReadonlySet<string>): boolean {
    if (this.view.size !== keys.size)
      return false
    for (const key of keys) {
      if (!this.view.has(key))
        return false
    }
    return true
  }

  /** Stops reading: the hub's frames pile up in the kernel, then in the hub's buffer. */
  pause(): void {
    (this.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  }

  resume(): void {
    (this.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
  }

  /** Cuts the TCP connection without a close frame, like a network drop. */
  destroy(): void {
    (this.ws as unknown as { _socket: { destroy: () => void } })._socket.destroy()
  }
}

/** Runs `task` over `items` with at most `limit` at a time. */
export async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length)
      await task(items[next++]!)
  }))
}
