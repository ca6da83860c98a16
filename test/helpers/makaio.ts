import { createHmac } from 'node:crypto'
import WebSocket from 'ws'
import { onCleanup } from './hub.ts'
import { until } from './phoenix.ts'

export type MakaioFrame = Record<string, any> & { type: string }

/** The signature Makaio's `HmacAuth` answers a challenge with: hex HMAC-SHA256 of the nonce, keyed by the secret. */
export const hmac = (secret: string, nonce: string): string => createHmac('sha256', secret).update(nonce).digest('hex')

/** A raw `ws` socket speaking Makaio bus frames (JSON objects `{type, …}`), as `@makaio/transport-ws` sends them. */
export class RawMakaio {
  readonly frames: MakaioFrame[] = []
  closed?: { code: number, reason: string }

  constructor(readonly ws: WebSocket) {
    ws.on('message', data => this.frames.push(JSON.parse(data.toString())))
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
    })
  }

  static async connect(url: string): Promise<RawMakaio> {
    const ws = new WebSocket(url)
    const socket = new RawMakaio(ws)
    onCleanup(() => socket.close())
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return socket
  }

  /** Connects and waits for the hub's `subscribe-sync-complete` (the client's `ready`). */
  static async ready(url: string): Promise<RawMakaio> {
    const socket = await RawMakaio.connect(url)
    await socket.waitFor(f => f.type === 'subscribe-sync-complete')
    return socket
  }

  send(frame: MakaioFrame): void {
    this.ws.send(JSON.stringify(frame))
  }

  waitFor(predicate: (frame: MakaioFrame) => boolean, what = 'a frame', timeoutMs = 5000): Promise<MakaioFrame> {
    return until(() => {
      const found = this.frames.find(predicate)
      if (!found && this.closed)
        throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) waiting for ${what}`)
      return found
    }, what, timeoutMs)
  }

  ofType(type: string): MakaioFrame[] {
    return this.frames.filter(f => f.type === type)
  }

  waitForClose(): Promise<{ code: number, reason: string }> {
    return until(() => this.closed, 'close')
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close()
      await this.waitForClose().catch(() => this.ws.terminate())
    }
  }
}
