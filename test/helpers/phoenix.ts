import type { Push, SocketConnectOption } from 'phoenix'
import { Socket } from 'phoenix'
import WebSocket from 'ws'
import { onCleanup } from './hub.ts'
import { JsonSocket, until } from './json-socket.ts'

export type Frame = [string | null, string | null, string, string, any]

export { until }

/** A raw `ws` socket speaking Phoenix V2 frames, with every frame it received. */
export class RawPhoenix extends JsonSocket<Frame> {
  static async connect(url: string, options?: WebSocket.ClientOptions): Promise<RawPhoenix> {
    return JsonSocket.opened(new RawPhoenix(new WebSocket(url, options)))
  }

  /** Sends a frame and waits for the `phx_reply` carrying its ref. */
  async request(frame: Frame): Promise<Frame> {
    this.send(frame)
    return this.waitFor(f => f[3] === 'phx_reply' && f[1] === frame[1] && f[2] === frame[2], `reply to ${JSON.stringify(frame)}`)
  }
}

/** The real `phoenix` client over `ws` (Node 20 has no global WebSocket); disconnected after the test. */
export function phoenixSocket(url: string, options: Partial<SocketConnectOption> = {}): Socket {
  const socket = new Socket(url, { transport: WebSocket, reconnectAfterMs: () => 60_000, ...options })
  onCleanup(() => new Promise<void>(resolve => socket.disconnect(() => resolve())))
  socket.connect()
  return socket
}

/** A message the `phoenix` client received (what `socket.onMessage` hands over). */
export interface Message { topic: string, event: string, payload: any }

/** How a `phoenix` client push ended: `ok`, `error` or `timeout`, with the response. */
export function outcome(push: Push): Promise<{ status: string, response: any }> {
  return new Promise((resolve) => {
    for (const status of ['ok', 'error', 'timeout'] as const)
      push.receive(status, response => resolve({ status, response }))
  })
}

/** Refuses upgrades with a status: what the `ws` client sees when the hub says no. */
export function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0)
      ws.terminate()
    })
    ws.on('open', () => {
      reject(new Error(`${url} upgraded`))
      ws.close()
    })
    ws.on('error', () => {})
  })
}
