import type { Push, SocketConnectOption } from 'phoenix'
import { Socket } from 'phoenix'
import WebSocket from 'ws'
import { onCleanup } from './hub.ts'

export type Frame = [string | null, string | null, string, string, any]

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

/** A raw `ws` socket speaking Phoenix V2 frames, with every frame it received. */
export class RawPhoenix {
  readonly frames: Frame[] = []
  closed?: { code: number, reason: string }

  constructor(readonly ws: WebSocket) {
    ws.on('message', data => this.frames.push(JSON.parse(data.toString())))
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
    })
  }

  static async connect(url: string, options?: WebSocket.ClientOptions): Promise<RawPhoenix> {
    const ws = new WebSocket(url, options)
    const socket = new RawPhoenix(ws)
    onCleanup(() => socket.close())
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return socket
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame))
  }

  /** Sends a frame and waits for the `phx_reply` carrying its ref. */
  async request(frame: Frame): Promise<Frame> {
    this.send(frame)
    return this.waitFor(f => f[3] === 'phx_reply' && f[1] === frame[1] && f[2] === frame[2], `reply to ${JSON.stringify(frame)}`)
  }

  waitFor(predicate: (frame: Frame) => boolean, what = 'a frame'): Promise<Frame> {
    return until(() => this.frames.find(predicate) ?? (this.closed ? closedError(this.closed) : undefined), what)
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

function closedError(closed: { code: number, reason: string }): never {
  throw new Error(`socket closed (${closed.code} ${closed.reason})`)
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
