import WebSocket from 'ws'
import { onCleanup } from './hub.ts'

/** Polls `probe` until it returns something other than `undefined`/`false`. */
export async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const value = probe()
    if (value !== undefined && value !== false)
      return value
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** A raw `ws` socket exchanging JSON frames (Phoenix arrays, Thymian or Makaio objects), with every frame it received. */
export class JsonSocket<F> {
  readonly frames: F[] = []
  closed?: { code: number, reason: string }

  constructor(readonly ws: WebSocket) {
    ws.on('message', data => this.frames.push(JSON.parse(data.toString())))
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
    })
  }

  /** Waits until `socket` is open; it is closed after the test. */
  static async opened<S extends JsonSocket<any>>(socket: S): Promise<S> {
    onCleanup(() => socket.close())
    await new Promise<void>((resolve, reject) => {
      socket.ws.once('open', () => resolve())
      socket.ws.once('error', reject)
    })
    return socket
  }

  send(frame: F): void {
    this.ws.send(JSON.stringify(frame))
  }

  /** The first frame received that matches; fails at once if the socket closed without one. */
  waitFor(predicate: (frame: F) => boolean, what = 'a frame', timeoutMs = 5000): Promise<F> {
    return until(() => {
      const found = this.frames.find(predicate)
      if (!found && this.closed)
        throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before ${what}`)
      return found
    }, what, timeoutMs)
  }

  waitForClose(): Promise<{ code: number, reason: string }> {
    return until(() => this.closed, 'the socket to close')
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close()
      await this.waitForClose().catch(() => this.ws.terminate())
    }
  }
}
