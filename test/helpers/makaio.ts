import { createHmac } from 'node:crypto'
import WebSocket from 'ws'
import { JsonSocket } from './json-socket.ts'

export type MakaioFrame = Record<string, any> & { type: string }

/** The signature Makaio's `HmacAuth` answers a challenge with: hex HMAC-SHA256 of the nonce, keyed by the secret. */
export const hmac = (secret: string, nonce: string): string => createHmac('sha256', secret).update(nonce).digest('hex')

/** A raw `ws` socket speaking Makaio bus frames (JSON objects `{type, …}`), as `@makaio/transport-ws` sends them. */
export class RawMakaio extends JsonSocket<MakaioFrame> {
  static async connect(url: string): Promise<RawMakaio> {
    return JsonSocket.opened(new RawMakaio(new WebSocket(url)))
  }

  /** Connects and waits for the hub's `subscribe-sync-complete` (the client's `ready`). */
  static async ready(url: string): Promise<RawMakaio> {
    const socket = await RawMakaio.connect(url)
    await socket.waitFor(f => f.type === 'subscribe-sync-complete')
    return socket
  }

  ofType(type: string): MakaioFrame[] {
    return this.frames.filter(f => f.type === type)
  }
}
