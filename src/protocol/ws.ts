import type { Hooks, Peer } from 'crossws'
import type { Ticket } from '../core/admission.ts'
import type { Session } from '../core/session.ts'
import type { Hub } from '../hub.ts'
import type { Connection } from '../types.ts'
import type { Corkable } from './cork.ts'
import type { RateLimitedSocket } from './limits.ts'
import { Buffer } from 'node:buffer'
import { CLOSE } from '../core/close.ts'
import { HubError } from '../errors.ts'
import { airiEncoder, errorEvent, eventIdOfFrame, handleAiriFrame } from './airi.ts'
import { createTickCorker } from './cork.ts'
import { clientAddress, isFrameTooBig, limitFrameSize, refuseUpgrade, socketRateLimit, withinRate } from './limits.ts'

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

function connectionOf(hub: Hub, peer: Peer, { cork, bytesOf }: SendQueue): Connection {
  const socket = socketOf(peer)
  // Corked frames count in bufferedAmount before they were even tried: a peer is judged by
  // what earlier turns left unsent, taken when its socket is corked for this turn.
  let backlog = 0
  const connection: Connection = {
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
    close: ({ code, reason }) => peer.close(code, reason),
    ping: () => peer.ping('hub'),
    fail: (error, parentId) => connection.send(connection.encoder.encode(errorEvent(hub, error, parentId))),
  }
  return connection
}

/** One `/ws` socket: its hub session, its admission ticket and its rate limit. */
interface AiriSocket extends RateLimitedSocket {
  session: Session
  ticket: Ticket
  /** Until it authenticates: its frames are held to `maxPendingPayloadBytes`. */
  pending: boolean
}

/** crossws hooks of the native AIRI endpoint (`/ws`). */
export function createAiriHooks(hub: Hub): GatewayHooks {
  const sockets = new WeakMap<Peer, AiriSocket>()
  const { maxPayloadBytes, maxPendingPayloadBytes } = hub.options.limits
  const { onError, logger } = hub.options
  const queue: SendQueue = { cork: createTickCorker(), bytesOf: createFrameBytes() }

  return {
    upgrade(request) {
      const token = upgradeToken(request)
      if (token !== undefined && hub.authRequired && !hub.verifyToken(token))
        return new Response('Unauthorized', { status: 401, headers: { 'www-authenticate': 'Bearer' } })
      const address = clientAddress(request, hub.options.trustProxy)
      return refuseUpgrade(hub, address, hub.authRequired && token === undefined) ?? { context: { token, address } }
    },
    open(peer) {
      const { token, address } = peer.context as { token?: string, address: string }
      const session = hub.connect(connectionOf(hub, peer, queue), { token })
      const pending = !session.authenticated
      if (pending)
        limitFrameSize(peer, maxPendingPayloadBytes)
      const describe = (): string => `peer ${session.id} (${address})`
      sockets.set(peer, {
        session,
        ticket: hub.admission.open(address, pending),
        pending,
        rate: socketRateLimit(hub),
        describe,
        tell: text => session.connection.fail(hub.refuse(session, new HubError('rate_limited', 'rate limited')), eventIdOfFrame(text)),
        close() {
          hub.disconnect(session)
          peer.close(CLOSE.rateLimited.code, CLOSE.rateLimited.reason)
        },
      })
    },
    message(peer, message) {
      const socket = sockets.get(peer)
      if (!socket || socket.session.state === 'closed')
        return
      const { session } = socket
      try {
        const text = message.text()
        if (isOversized(text, socket.pending ? maxPendingPayloadBytes : maxPayloadBytes)) {
          hub.observers.emit('error', 'payload_too_large')
          logger.info(`${socket.describe()} sent a frame over the size limit: closing it (${CLOSE.tooBig.code})`)
          hub.disconnect(session)
          peer.close(CLOSE.tooBig.code, CLOSE.tooBig.reason)
          return
        }
        if (!withinRate(hub, socket, text))
          return
        const pending = handleAiriFrame(hub, session, text)
        if (socket.pending && session.authenticated) {
          socket.pending = false
          socket.ticket.authenticated()
          limitFrameSize(peer, maxPayloadBytes)
        }
        if (pending)
          pending.catch(error => onError(error, { stage: 'middleware', peerId: session.id }))
      }
      catch (error) {
        onError(error, { stage: 'decode', peerId: session.id })
      }
    },
    ping(peer) {
      const socket = sockets.get(peer)
      if (socket)
        hub.touch(socket.session)
    },
    pong(peer) {
      const socket = sockets.get(peer)
      if (socket)
        hub.touch(socket.session)
    },
    close(peer) {
      const socket = sockets.get(peer)
      if (!socket)
        return
      socket.ticket.close()
      hub.disconnect(socket.session)
    },
    error(peer, error) {
      const socket = sockets.get(peer)
      if (socket && isFrameTooBig(error)) {
        hub.observers.emit('error', 'payload_too_large')
        logger.info(`${socket.describe()} sent a frame over the size limit: closed (1009)`)
        return
      }
      onError(error, { stage: 'hook', peerId: socket?.session.id })
    },
  }
}
