import WebSocket from 'ws'
import { onCleanup } from './hub.ts'
import { until } from './phoenix.ts'

export interface ThymianMessage { type: string, [key: string]: any }

/**
 * A raw `ws` socket speaking Thymian's remote-plugin frames as its reference client
 * (`@thymian/plugin-websocket-proxy` test/reference-client.ts) sends them: `register` on open,
 * `ready` once the ack is ok, `actionReply` with the action's id as `correlationId`.
 */
export class ThymianPlugin {
  readonly received: ThymianMessage[] = []
  closed?: { code: number, reason: string }

  constructor(readonly ws: WebSocket) {
    ws.on('message', data => this.received.push(JSON.parse(data.toString())))
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
    })
  }

  static async connect(url: string): Promise<ThymianPlugin> {
    const ws = new WebSocket(url)
    const plugin = new ThymianPlugin(ws)
    onCleanup(() => plugin.close())
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return plugin
  }

  /** Connects, registers, and says ready when the ack is ok; resolves with the ack. */
  static async start(url: string, name: string, options: { token?: string, onActions?: string[], onEvents?: string[] } = {}): Promise<ThymianPlugin> {
    const plugin = await ThymianPlugin.connect(url)
    const ack = await plugin.register(name, options)
    if (!ack.ok)
      throw new Error(`register refused: ${ack.reason}`)
    plugin.send({ type: 'ready' })
    return plugin
  }

  send(message: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(message))
  }

  async register(name: string, options: { token?: string, onActions?: string[], onEvents?: string[] } = {}): Promise<ThymianMessage> {
    this.send({ type: 'register', name, token: options.token, onActions: options.onActions ?? [], onEvents: options.onEvents ?? [] })
    return this.waitFor(m => m.type === 'register-ack')
  }

  /** Answers every `action` of `name` with what `handle` returns (an `actionError` when it throws). */
  handle(name: string, handle: (payload: any) => unknown): void {
    this.ws.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ThymianMessage
      if (message.type !== 'action' || message.name !== name)
        return
      try {
        this.send({ type: 'actionReply', correlationId: message.id, name, payload: handle(message.payload) })
      }
      catch (error) {
        this.send({ type: 'actionError', correlationId: message.id, name, error: { name: 'HandlerError', message: (error as Error).message } })
      }
    })
  }

  /** Sends `emitAction` and waits for its result or error. */
  async emitAction(id: string, name: string, payload: unknown, options?: Record<string, unknown>): Promise<ThymianMessage> {
    this.send({ type: 'emitAction', id, name, payload, options })
    return this.waitFor(m => (m.type === 'emitActionResult' || m.type === 'emitActionError') && m.correlationId === id)
  }

  ofType(type: string): ThymianMessage[] {
    return this.received.filter(m => m.type === type)
  }

  waitFor(predicate: (message: ThymianMessage) => boolean, what = 'a frame'): Promise<ThymianMessage> {
    return until(() => {
      const found = this.received.find(predicate)
      if (found)
        return found
      if (this.closed)
        throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before ${what}`)
      return undefined
    }, what)
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
