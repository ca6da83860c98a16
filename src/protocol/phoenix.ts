import type { Peer } from 'crossws'
import type { Ticket } from '../core/admission.ts'
import type { Session } from '../core/session.ts'
import type { Hub } from '../hub.ts'
import type { Connection, DeannounceReason, EventEncoder } from '../types.ts'
import type { RateLimitedSocket } from './limits.ts'
import type { GatewayHooks } from './ws.ts'
import { Buffer } from 'node:buffer'
import * as v from 'valibot'
import { isPlainJson } from '../core/event.ts'
import { ConsumerRegistration, Data, DataDestinations } from './airi.ts'
import { clientAddress, isFrameTooBig, logRefusal, refuseUpgrade, socketRateLimit, withinRate } from './limits.ts'
import { isOversized, upgradeToken } from './ws.ts'

// --- Codec -----------------------------------------------------------------------------

/** Refs are opaque: echoed back exactly as the client sent them. */
const Ref = v.nullable(v.union([v.string(), v.number()]))
const Name = v.pipe(v.string(), v.minLength(1))

/**
 * A Phoenix Channels V2 frame: `[join_ref, ref, topic, event, payload]`. Length first: a
 * tuple alone would take a missing payload for `undefined`.
 */
const Frame = v.pipe(v.array(v.unknown()), v.length(5), v.strictTuple([Ref, Ref, Name, Name, v.unknown()]))

export type PhoenixRef = v.InferOutput<typeof Ref>
export type PhoenixFrame = v.InferOutput<typeof Frame>

/** Parses one text frame; `undefined` when it is not a V2 frame at all. */
export function decodePhoenixFrame(text: string): PhoenixFrame | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  }
  catch {
    return undefined
  }
  const result = v.safeParse(Frame, parsed)
  return result.success ? result.output : undefined
}

export function encodePhoenixFrame(joinRef: PhoenixRef, ref: PhoenixRef, topic: string, event: string, payload: unknown): string {
  return JSON.stringify([joinRef, ref, topic, event, payload])
}

// superjson-only values from native peers: a BigInt would make JSON.stringify throw.
const jsonSafe = (_key: string, value: unknown): unknown => typeof value === 'bigint' ? value.toString() : value

/**
 * One encoder for every channel: it encodes the `"type",data]` tail of a push once per
 * event, and each channel puts its own `[join_ref,null,topic,` in front.
 */
export const phoenixEncoder: EventEncoder = {
  encode: event => `${JSON.stringify(event.type)},${JSON.stringify(event.data, isPlainJson(event) ? undefined : jsonSafe)}]`,
}

// --- Channels --------------------------------------------------------------------------

const HEARTBEAT_TOPIC = 'phoenix'
const PushPayload = v.pipe(Data, v.check(data => v.is(DataDestinations, data.destinations)))
/** A join may register the channel as a consumer of events (a chat-ingestion plugin), as `module:consumer:register` does. */
const JoinPayload = v.looseObject({ consumers: v.optional(v.array(ConsumerRegistration)) })
const INVALID_CONSUMER = 'invalid consumer: expected {event, group?, priority?, mode?}'
const CONSUMER_EVENTS = new Set(['module:consumer:register', 'module:consumer:unregister'])

interface Channel {
  joinRef: PhoenixRef
  session: Session
}

/**
 * One Phoenix socket: its joined channels by topic, each a hub session of its own, in the
 * order they joined. Admission and the rate limit are the socket's, whatever its channels.
 */
interface PhoenixSocket extends RateLimitedSocket {
  peer: Peer
  /** The hub it belongs to: its limits, logger and observers. */
  hub: Hub
  token?: string
  /** The client's address (behind a trusted proxy, the one it forwarded). */
  address: string
  ticket: Ticket
  channels: Map<string, Channel>
  /** Closes the socket after silence while it has no channel: no hub session watches it then. */
  idle?: ReturnType<typeof setTimeout>
  /** Set once it is being closed: nothing more is written to it or taken from it. */
  closed?: boolean
}

/** The socket in log lines: its id and client address. */
function describeSocket({ peer, address }: PhoenixSocket): string {
  return `phoenix socket ${peer.id} (${address})`
}

/**
 * Every frame to a socket leaves through here (replies, `phx_close`, channel pushes, join
 * backlogs), so none escapes the slow-consumer bound: a socket that leaves more than
 * `maxBufferedBytes` unsent is closed with 1013 and all its channels de-announced, as a /ws
 * peer is. Replies count too: a client that keeps sending heartbeats but never reads would
 * otherwise grow the hub without end.
 */
function write(socket: PhoenixSocket, frame: string): void {
  if (socket.closed)
    return
  socket.peer.send(frame)
  const { hub } = socket
  const { maxBufferedBytes } = hub.options.limits
  if (socket.peer.bufferedAmount <= maxBufferedBytes)
    return
  hub.options.logger.warn(`${describeSocket(socket)} is not reading (over ${maxBufferedBytes} bytes unsent): closing it`)
  hub.observers.emit('error', 'slow_consumer')
  closeSocket(hub, socket, 1013, 'slow consumer')
}

type Reply = { status: 'ok', response: Record<string, unknown> } | { status: 'error', response: { reason: string } }

function reply(socket: PhoenixSocket, [joinRef, ref, topic]: PhoenixFrame, payload: Reply): void {
  write(socket, encodePhoenixFrame(joinRef, ref, topic, 'phx_reply', payload))
}

const okReply = (response: Record<string, unknown> = {}): Reply => ({ status: 'ok', response })
const errorReply = (reason: string): Reply => ({ status: 'error', response: { reason } })

// The hub closes a channel's session for reasons that concern the whole socket (heartbeat,
// shutdown); its other channels are de-announced for the same reason.
function deannounceReasonOf(reason: string): DeannounceReason {
  return reason === 'heartbeat expired' || reason === 'server shutdown' ? reason : 'connection closed'
}

function closeSocket(hub: Hub, socket: PhoenixSocket, code: number, reason: string): void {
  if (socket.closed)
    return
  socket.closed = true
  const channels = [...socket.channels.values()]
  socket.channels.clear()
  for (const { session } of channels)
    hub.disconnect(session, deannounceReasonOf(reason))
  socket.peer.close(code, reason)
}

/** Registry changes: the same for every channel of a socket. */
const REGISTRY_EVENT_PREFIXES = ['"module:announced",', '"module:de-announced",', '"registry:']

/**
 * Whether `topic` is the socket's lead channel: its oldest joined channel, or the first one
 * while it joins. What concerns the whole socket rather than one module goes to the lead
 * channel only: registry changes (a socket with N channels would otherwise get each one N
 * times) and the hub's pings when the socket falls silent.
 */
function isLead(socket: PhoenixSocket, topic: string): boolean {
  const oldest = socket.channels.keys().next().value
  return oldest === undefined || oldest === topic
}

/** The port one channel gives the hub; frames wait until the join reply is out. */
function channelConnection(hub: Hub, socket: PhoenixSocket, joinRef: PhoenixRef, topic: string): Connection & { open: () => void } {
  const prefix = `[${JSON.stringify(joinRef)},null,${JSON.stringify(topic)},`
  let backlog: string[] | undefined = []
  return {
    encoder: phoenixEncoder,
    send(tail) {
      // `phx_*` events steer the client's channel state; no peer may forge them.
      if (tail.startsWith('"phx_'))
        return 0
      const registryChange = REGISTRY_EVENT_PREFIXES.some(p => tail.startsWith(p))
      if (registryChange && !isLead(socket, topic))
        return 0
      if (backlog)
        backlog.push(prefix + tail)
      else if (!registryChange)
        write(socket, prefix + tail)
      else if (!socket.closed)
        socket.peer.send(prefix + tail)
      // `write` holds the slow-consumer bound for the whole socket, replies included; registry
      // changes are paced by the hub's registry feed instead, which is told what waits.
      return registryChange ? socket.peer.bufferedAmount : 0
    },
    buffered: () => socket.peer.bufferedAmount,
    close: (code, reason) => closeSocket(hub, socket, code, reason),
    ping() {
      if (isLead(socket, topic))
        socket.peer.ping('hub')
    },
    open() {
      const frames = backlog ?? []
      backlog = undefined
      for (const frame of frames)
        write(socket, frame)
    },
  }
}

function join(hub: Hub, socket: PhoenixSocket, frame: PhoenixFrame): void {
  const [joinRef, , topic, , payload] = frame
  const colon = topic.indexOf(':')
  const prefix = topic.slice(0, colon)
  const name = topic.slice(colon + 1)
  if (colon === -1 || name === '' || !hub.options.phoenix.topics.includes(prefix))
    return reply(socket, frame, errorReply('unmatched topic'))
  if (socket.channels.has(topic))
    return reply(socket, frame, errorReply('already joined'))
  const { maxChannels } = hub.options.phoenix
  if (socket.channels.size >= maxChannels) {
    logRefusal(hub, `${describeSocket(socket)} refused a join: it has ${maxChannels} channels already`)
    hub.observers.emit('error', 'too_many_channels')
    return reply(socket, frame, errorReply('too many channels'))
  }
  if (!v.is(Data, payload))
    return reply(socket, frame, errorReply('invalid payload'))
  const params = v.safeParse(JoinPayload, payload)
  if (!params.success)
    return reply(socket, frame, errorReply(`${INVALID_CONSUMER} in consumers`))

  const connection = channelConnection(hub, socket, joinRef, topic)
  const session = hub.connect(connection, { token: socket.token })
  // Consumers first: a refused one leaves no module announced and withdrawn in the registry.
  for (const registration of session.authenticated ? params.output.consumers ?? [] : []) {
    const refused = hub.registerConsumer(session, registration)
    if (refused) {
      hub.disconnect(session)
      return reply(socket, frame, errorReply(refused.message))
    }
  }
  const identity = { pluginId: name, instanceId: session.id, labels: { protocol: 'phoenix', topic: prefix } }
  hub.announce(session, { name, identity })
  if (!session.module) {
    hub.disconnect(session)
    return reply(socket, frame, errorReply('unauthorized'))
  }
  socket.channels.set(topic, { joinRef, session })
  const config = hub.catalog.optionsOf(name)
  reply(socket, frame, okReply(config && { config }))
  connection.open()
}

function leave(hub: Hub, socket: PhoenixSocket, frame: PhoenixFrame, channel: Channel): void {
  const [joinRef, , topic] = frame
  const wasLead = isLead(socket, topic)
  socket.channels.delete(topic)
  hub.disconnect(channel.session)
  reply(socket, frame, okReply())
  write(socket, encodePhoenixFrame(joinRef, joinRef, topic, 'phx_close', {}))
  if (wasLead)
    syncNewLead(hub, socket)
}

/** The channel that leads now had no registry changes before: it gets a full `registry:modules:sync` first. */
function syncNewLead(hub: Hub, socket: PhoenixSocket): void {
  const lead = socket.channels.values().next().value
  if (lead)
    hub.sync(lead.session)
}

/** `module:consumer:register` / `unregister`: answered ok, or with why the hub refused. */
function consumerPush(hub: Hub, socket: PhoenixSocket, frame: PhoenixFrame, channel: Channel): void {
  const [, , , event, payload] = frame
  const registration = v.safeParse(ConsumerRegistration, payload)
  if (!registration.success)
    return reply(socket, frame, errorReply(INVALID_CONSUMER))
  if (event === 'module:consumer:unregister') {
    hub.unregisterConsumer(channel.session, registration.output)
    return reply(socket, frame, okReply())
  }
  const refused = hub.registerConsumer(channel.session, registration.output)
  reply(socket, frame, refused ? errorReply(refused.message) : okReply())
}

async function push(hub: Hub, socket: PhoenixSocket, frame: PhoenixFrame, channel: Channel): Promise<void> {
  const [, , , event, payload] = frame
  if (CONSUMER_EVENTS.has(event))
    return consumerPush(hub, socket, frame, channel)
  // Bounds before the schema: it recurses into destinations.
  const refused = hub.refusal({ type: event, data: payload })
  if (refused)
    return reply(socket, frame, errorReply(refused.code === 'reserved_event' ? 'reserved event' : refused.message))
  if (!v.is(PushPayload, payload))
    return reply(socket, frame, errorReply('invalid payload'))
  let delivered: number
  try {
    delivered = await hub.publish(channel.session, { type: event, data: payload })
  }
  catch (cause) {
    hub.options.onError(cause, { stage: 'deliver', peerId: channel.session.id })
    return reply(socket, frame, errorReply('internal error'))
  }
  reply(socket, frame, okReply({ delivered }))
}

/** Handles one decoded frame: heartbeat, join, leave, else a push into the hub. */
function handleFrame(hub: Hub, socket: PhoenixSocket, frame: PhoenixFrame): void | Promise<void> {
  const [joinRef, , topic, event] = frame
  hub.observers.emit('received', event)
  if (topic === HEARTBEAT_TOPIC && event === 'heartbeat')
    return reply(socket, frame, okReply())
  if (event === 'phx_join')
    return join(hub, socket, frame)
  const channel = socket.channels.get(topic)
  // A join_ref of an earlier join of this topic is stale.
  if (!channel || (joinRef !== null && joinRef !== channel.joinRef))
    return reply(socket, frame, errorReply('unmatched topic'))
  if (event === 'phx_leave')
    return leave(hub, socket, frame, channel)
  return push(hub, socket, frame, channel)
}

// --- crossws hooks ---------------------------------------------------------------------

const AUTH_PROTOCOL_PREFIX = 'base64url.bearer.phx.'

/**
 * The `phoenix` client's `authToken` option offers the subprotocols `phoenix` and
 * `base64url.bearer.phx.<token in base64>`; the token, and whether to answer `phoenix`.
 */
function subprotocolAuth(request: Request): { token?: string, protocol?: string } {
  const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map(p => p.trim())
  const encoded = offered.find(p => p.startsWith(AUTH_PROTOCOL_PREFIX))?.slice(AUTH_PROTOCOL_PREFIX.length)
  return {
    token: encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString(),
    protocol: offered.includes('phoenix') ? 'phoenix' : undefined,
  }
}

/** crossws hooks of the Phoenix Channels V2 endpoints (`/socket`, `/debug_socket`, …). */
export function createPhoenixHooks(hub: Hub): GatewayHooks {
  const sockets = new WeakMap<Peer, PhoenixSocket>()
  const { maxPayloadBytes } = hub.options.limits
  const { onError } = hub.options
  const idleMs = 2 * hub.options.heartbeat.readTimeout

  // Liveness is the socket's: any frame or native ping/pong keeps all its channels alive.
  function touch(peer: Peer): void {
    const socket = sockets.get(peer)
    if (!socket || socket.closed)
      return
    for (const { session } of socket.channels.values())
      hub.touch(session)
    clearTimeout(socket.idle)
    if (socket.channels.size === 0) {
      socket.idle = setTimeout(() => closeSocket(hub, socket, 4000, 'heartbeat expired'), idleMs)
      socket.idle.unref?.()
    }
  }

  return {
    upgrade(request) {
      const vsn = new URL(request.url).searchParams.get('vsn')
      if (vsn !== null && !vsn.startsWith('2.'))
        return new Response('Unsupported vsn (only 2.x)', { status: 400 })
      // Phoenix clients have no in-band auth: a bad key is refused before the upgrade.
      const subprotocol = subprotocolAuth(request)
      const token = upgradeToken(request, ['api_key', 'token']) ?? subprotocol.token
      if (hub.authRequired && !hub.verifyToken(token))
        return new Response('Forbidden', { status: 403 })
      // Never pending: a Phoenix socket is authenticated at its upgrade, or auth is off.
      const address = clientAddress(request, hub.options.trustProxy)
      return refuseUpgrade(hub, address, false) ?? { context: { token, address }, protocol: subprotocol.protocol }
    },
    open(peer) {
      const { token, address } = peer.context as { token?: string, address: string }
      const socket: PhoenixSocket = {
        peer,
        hub,
        token,
        address,
        channels: new Map(),
        ticket: hub.admission.open(address, false),
        rate: socketRateLimit(hub),
        describe: () => describeSocket(socket),
        tell(text) {
          const frame = decodePhoenixFrame(text)
          if (frame)
            reply(socket, frame, errorReply('rate limited'))
        },
        close: () => closeSocket(hub, socket, 4029, 'rate limited'),
      }
      sockets.set(peer, socket)
      touch(peer)
    },
    message(peer, message) {
      const socket = sockets.get(peer)
      if (!socket || socket.closed)
        return
      try {
        const text = message.text()
        if (isOversized(text, maxPayloadBytes)) {
          hub.observers.emit('error', 'payload_too_large')
          return closeSocket(hub, socket, 4009, 'message too big')
        }
        if (!withinRate(hub, socket, text))
          return
        const frame = decodePhoenixFrame(text)
        if (!frame)
          return closeSocket(hub, socket, 1007, 'invalid frame: expected [join_ref, ref, topic, event, payload]')
        const pending = handleFrame(hub, socket, frame)
        // After the frame: a join or leave changes whether the socket needs its idle timer.
        touch(peer)
        if (pending)
          pending.catch(error => onError(error, { stage: 'hook', peerId: peer.id }))
      }
      catch (error) {
        onError(error, { stage: 'decode', peerId: peer.id })
      }
    },
    ping: touch,
    pong: touch,
    close(peer) {
      const socket = sockets.get(peer)
      if (!socket)
        return
      socket.ticket.close()
      clearTimeout(socket.idle)
      for (const { session } of socket.channels.values())
        hub.disconnect(session)
      socket.channels.clear()
    },
    error(peer, error) {
      const socket = sockets.get(peer)
      if (socket && isFrameTooBig(error)) {
        hub.observers.emit('error', 'payload_too_large')
        hub.options.logger.info(`${socket.describe()} sent a frame over the size limit: closed (1009)`)
        return
      }
      onError(error, { stage: 'hook', peerId: peer.id })
    },
  }
}
