import type { Hooks, Peer } from 'crossws'
import type { Session } from '../core/session.ts'
import type { Hub } from '../hub.ts'
import type { Connection } from '../types.ts'
import type { Corkable } from './cork.ts'
import { Buffer } from 'node:buffer'
import { airiEncoder, handleAiriFrame } from './airi.ts'
import { createTickCorker } from './cork.ts'

export type GatewayHooks = Partial<Hooks>

/** A token presented at the upgrade: `?token=` or `Authorization: Bearer`. */
export function upgradeToken(request: Request, params: readonly string[] = ['token']): string | undefined {
  const query = new URL(request.url).searchParams
  for (const param of params) {
    const value = query.get(param)
    if (value !== null)
      return value
  }
  const authorization = request.headers.get('authorization')
  return authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined
}

/** Whether a text frame is over `max` bytes, without encoding it when its length already tells. */
export function isOversized(text: string, max: number): boolean {
  if (text.length > max)
    return true
  return text.length * 3 > max && Buffer.byteLength(text) > max
}

/**
 * The TCP socket under a crossws peer, where the runtime has one: crossws exposes no cork, but
 * its Node adapter's `peer.websocket` is a `ws` WebSocket that keeps its socket in `_socket`.
 */
function socketOf(peer: Peer): Corkable | undefined {
  const socket = (peer.websocket as { _socket?: Partial<Corkable> })._socket
  return typeof socket?.cork === 'function' && typeof socket.uncork === 'function' ? socket as Corkable : undefined
}

// crossws sends a Buffer as a binary frame unless told otherwise; its Node adapter passes the
// options through to `ws`.
const AS_TEXT = { binary: false } as { compress?: boolean }

/**
 * The UTF-8 bytes of the frame last sent. The router hands every recipient of an event the
 * same string, so it is encoded once and all their queued writes share one Buffer, where
 * `ws` would otherwise copy the text into each socket's write queue.
 */
function createFrameBytes(): (frame: string) => Buffer {
  let text: string | undefined
  let bytes = Buffer.alloc(0)
  return (frame) => {
    if (frame !== text) {
      text = frame
      bytes = Buffer.from(frame)
    }
    return bytes
  }
}

interface SendQueue {
  cork: (socket: Corkable) => boolean
  bytesOf: (frame: string) => Buffer
}

function connectionOf(peer: Peer, { cork, bytesOf }: SendQueue): Connection {
  const socket = socketOf(peer)
  // Corked frames count in bufferedAmount before they were even tried: a peer is judged by
  // what earlier turns left unsent, taken when its socket is corked for this turn.
  let backlog = 0
  return {
    encoder: airiEncoder,
    send: (frame) => {
      if (!socket) {
        peer.send(frame)
        return peer.bufferedAmount
      }
      if (cork(socket))
        backlog = peer.bufferedAmount
      peer.send(bytesOf(frame), AS_TEXT)
      return backlog
    },
    buffered: () => peer.bufferedAmount,
    close: (code, reason) => peer.close(code, reason),
    ping: () => peer.ping('hub'),
  }
}

/** crossws hooks of the native AIRI endpoint (`/ws`). */
export function createAiriHooks(hub: Hub): GatewayHooks {
  const sessions = new WeakMap<Peer, Session>()
  const { maxPayloadBytes } = hub.options.limits
  const { onError } = hub.options
  const queue: SendQueue = { cork: createTickCorker(), bytesOf: createFrameBytes() }

  return {
    upgrade(request) {
      const token = upgradeToken(request)
      if (token !== undefined && hub.authRequired && !hub.verifyToken(token))
        return new Response('Unauthorized', { status: 401, headers: { 'www-authenticate': 'Bearer' } })
      return { context: { token } }
    },
    open(peer) {
      const token = peer.context.token as string | undefined
      sessions.set(peer, hub.connect(connectionOf(peer, queue), { token }))
    },
    message(peer, message) {
      const session = sessions.get(peer)
      if (!session || session.state === 'closed')
        return
      try {
        const text = message.text()
        if (isOversized(text, maxPayloadBytes)) {
          hub.observers.emit('error', 'payload_too_large')
          hub.disconnect(session)
          peer.close(4009, 'message too big')
          return
        }
        const pending = handleAiriFrame(hub, session, text)
        if (pending)
          pending.catch(error => onError(error, { stage: 'middleware', peerId: session.id }))
      }
      catch (error) {
        onError(error, { stage: 'decode', peerId: session.id })
      }
    },
    ping(peer) {
      const session = sessions.get(peer)
      if (session)
        hub.touch(session)
    },
    pong(peer) {
      const session = sessions.get(peer)
      if (session)
        hub.touch(session)
    },
    close(peer) {
      const session = sessions.get(peer)
      if (session)
        hub.disconnect(session)
    },
    error(peer, error) {
      onError(error, { stage: 'hook', peerId: sessions.get(peer)?.id })
    },
  }
}
