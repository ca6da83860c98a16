import type { ListenOptions } from './options.ts'
import type { HubServer } from './server.ts'
import nodeAdapter from 'crossws/adapters/node'
import { toNodeHandler } from 'h3'
import { listen } from 'listhen'
import { resolveListenOptions } from './options.ts'

export interface HubListener {
  url: string
  port: number
  /** Closes every peer with 1001, then the HTTP server. */
  close: () => Promise<void>
}

/** Serves a hub server over Node's HTTP server (listhen), WebSockets upgraded by crossws. */
export async function listenHub(server: HubServer, options: ListenOptions = {}): Promise<HubListener> {
  const { port, host } = resolveListenOptions(options)
  const ws = nodeAdapter(server.websocket)
  const listener = await listen(toNodeHandler(server.app), {
    port,
    hostname: host,
    // listhen's types predate crossws' (req, socket, head) upgrade handler; it passes all three.
    ws: ws.handleUpgrade as never,
    showURL: false,
    isProd: true,
    public: host !== '127.0.0.1' && host !== 'localhost' && host !== '::1',
  })
  const address = listener.address as { port: number }
  return {
    url: listener.url,
    port: address.port,
    async close() {
      await server.closeAllPeers()
      await listener.close()
    },
  }
}
