import WebSocket from 'ws'
import { JsonSocket } from './json-socket.ts'

export interface ThymianMessage { type: string, [key: string]: any }

/**
 * A raw `ws` socket speaking Thymian's remote-plugin frames as its reference client
 * (`@thymian/plugin-websocket-proxy` test/reference-client.ts) sends them: `register` on open,
 * `ready` once the ack is ok, `actionReply` with the action's id as `correlationId`.
 */
export class ThymianPlugin extends JsonSocket<ThymianMessage> {
  static async connect(url: string): Promise<ThymianPlugin> {
    return JsonSocket.opened(new ThymianPlugin(new WebSocket(url)))
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
    return this.frames.filter(m => m.type === type)
  }
}
