import type { Session } from '../core/session.ts'
import type { Env } from '../env-options.ts'
import type { Hub } from '../hub.ts'
import type { Connection, EventEncoder, HubEvent } from '../types.ts'
import type { Gateway, GatewaySocket } from './gateway.ts'
import { Buffer } from 'node:buffer'
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import process from 'node:process'
import { nanoid } from 'nanoid'
import * as v from 'valibot'
import { isPlainJson } from '../core/event.ts'
import { HUB_PLUGIN } from '../core/refusals.ts'
import { requestTimeout } from '../core/requests.ts'
import { envOptions, invalid, positiveInt } from '../env-options.ts'
import { HubError } from '../errors.ts'
import { defineGateway } from './gateway.ts'
import { logRefusal } from './limits.ts'
import { MAX_CORRELATED_REQUESTS } from './phoenix.ts'

// Makaio bus clients (`@makaio/transport-ws`): a socket is one module whose bus subjects are
// hub event types `<namespace>.<subject>`; its subscriptions are its routing filter, its
// request handlers are the hub's consumers of those types.

// --- Options ---------------------------------------------------------------------------

export interface MakaioGatewayOptions {
  /**
   * Endpoint of the Makaio gateway; `''` turns it off.
   * @default '/makaio'
   */
  path?: string
  /**
   * Subject patterns one socket may subscribe to at once; a `subscribe` past it closes the socket (1008).
   * @default env `MAKAIO_MAX_SUBSCRIPTIONS`, else 256
   */
  maxSubscriptions?: number
  /**
   * How long a `broadcast` without its own `timeout` collects replies.
   * @default 5000
   */
  broadcastTimeoutMs?: number
  /** Where env-configurable options are read. @default process.env */
  env?: Env
}

export interface ResolvedMakaioOptions {
  readonly path: string
  readonly maxSubscriptions: number
  readonly broadcastTimeoutMs: number
}

export const DEFAULT_MAKAIO_PATH = '/makaio'
export const DEFAULT_MAKAIO_MAX_SUBSCRIPTIONS = 256
export const DEFAULT_MAKAIO_BROADCAST_TIMEOUT_MS = 5000
/** The longest a broadcast collects replies, whatever it asked. */
export const MAX_MAKAIO_BROADCAST_TIMEOUT_MS = 60_000
/** Fields one payload filter may test: each event checks them per matching subscription. */
export const MAX_MAKAIO_FILTER_FIELDS = 16

/** The Makaio gateway's env-configurable options. */
export const MAKAIO_ENV_OPTIONS = envOptions({
  MAKAIO_MAX_SUBSCRIPTIONS: { option: 'makaio.maxSubscriptions', flag: 'makaio-max-subscriptions', value: '<count>', default: String(DEFAULT_MAKAIO_MAX_SUBSCRIPTIONS), description: 'subject patterns one Makaio socket may subscribe to; past it the socket is closed (1008)' },
})

/** Resolves the gateway's options once. Throws `HubError('invalid_option')`. */
export function resolveMakaioOptions(options: MakaioGatewayOptions = {}): ResolvedMakaioOptions {
  const env = options.env ?? process.env
  const path = options.path ?? DEFAULT_MAKAIO_PATH
  if (path !== '' && !/^\/[^?#]*[^/?#]$/.test(path))
    invalid('makaio.path', path, 'a path like "/makaio", or "" (off)')
  const broadcastTimeoutMs = options.broadcastTimeoutMs ?? DEFAULT_MAKAIO_BROADCAST_TIMEOUT_MS
  if (!Number.isInteger(broadcastTimeoutMs) || broadcastTimeoutMs < 1 || broadcastTimeoutMs > MAX_MAKAIO_BROADCAST_TIMEOUT_MS)
    invalid('makaio.broadcastTimeoutMs', broadcastTimeoutMs, `an integer from 1 to ${MAX_MAKAIO_BROADCAST_TIMEOUT_MS}`)
  return {
    path,
    maxSubscriptions: positiveInt(MAKAIO_ENV_OPTIONS.MAKAIO_MAX_SUBSCRIPTIONS, options.maxSubscriptions, env, DEFAULT_MAKAIO_MAX_SUBSCRIPTIONS),
    broadcastTimeoutMs,
  }
}

// --- Codec -----------------------------------------------------------------------------

const Name = v.pipe(v.string(), v.minLength(1), v.maxLength(256))
const Id = v.pipe(v.string(), v.minLength(1), v.maxLength(256))
const Subjects = v.record(Name, v.array(v.number()))
const FilterValue = v.union([v.string(), v.number(), v.boolean(), v.null()])
const Filter = v.pipe(v.record(v.string(), FilterValue), v.check(filter => Object.keys(filter).length <= MAX_MAKAIO_FILTER_FIELDS))
const Timeout = v.optional(v.pipe(v.number(), v.minValue(0)))
const Bus = { subject: Name, namespace: v.string(), payload: v.unknown() }

const Frame = v.variant('type', [
  v.looseObject({ type: v.literal('auth-response'), signature: v.string() }),
  v.looseObject({ type: v.literal('heartbeat') }),
  v.looseObject({ type: v.literal('subscribe-sync-complete') }),
  v.looseObject({ type: v.literal('subscribe'), subjects: Subjects, filters: v.optional(v.record(v.string(), Filter)) }),
  v.looseObject({ type: v.literal('unsubscribe'), subjects: Subjects }),
  v.looseObject({ type: v.literal('event'), ...Bus }),
  v.looseObject({ type: v.literal('request'), ...Bus, correlationId: Id, timeout: Timeout, deadline: v.optional(v.number()) }),
  v.looseObject({ type: v.literal('broadcast'), ...Bus, correlationId: Id, timeout: Timeout }),
  v.looseObject({ type: v.literal('response'), correlationId: Id, result: v.optional(v.unknown()), error: v.optional(v.looseObject({ message: v.optional(v.string()), code: v.optional(v.string()) })) }),
])
type MakaioFrame = v.InferOutput<typeof Frame>
type PayloadFilter = v.InferOutput<typeof Filter>

const AckId = v.union([v.string(), v.number()])

/** The hub event type of a bus subject. */
export const eventTypeOf = (namespace: string, subject: string): string => namespace === '' ? subject : `${namespace}.${subject}`

/** The bus namespace and subject of a hub event type: split at its first `.`, else its first `:`. */
export function subjectOf(type: string): { namespace: string, subject: string } {
  const dot = type.indexOf('.')
  const at = dot >= 0 ? dot : type.indexOf(':')
  return at < 0 ? { namespace: '', subject: type } : { namespace: type.slice(0, at), subject: type.slice(at + 1) }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
/** Hub event data is an object: any other payload travels as `{value}`. */
const dataOf = (payload: unknown): Record<string, unknown> => isRecord(payload) ? payload : { value: payload }
// superjson-only values from native peers: a BigInt would make JSON.stringify throw.
const jsonSafe = (_key: string, value: unknown): unknown => typeof value === 'bigint' ? value.toString() : value
const encode = (event: HubEvent, frame: object): string => JSON.stringify(frame, isPlainJson(event) ? undefined : jsonSafe)

/** The hub's error codes as Makaio's `BusTransportError.code`. */
function errorOf(error: HubError): { code: string, message: string } {
  const code = error.code === 'no_responder' ? 'NO_HANDLER' : error.code === 'request_timeout' ? 'TIMEOUT' : error.code.toUpperCase()
  return { code, message: error.message }
}

// --- Subscriptions ---------------------------------------------------------------------

/**
 * A socket's routing filter: subject patterns (exact, `*`, or a prefix ending in `*` such as
 * `ns.*` and `ns:*`), each with an optional payload filter. Exact subjects are one lookup;
 * patterns and filter fields are bounded by `maxSubscriptions` and `MAX_MAKAIO_FILTER_FIELDS`.
 */
interface Subscriptions {
  exact: Map<string, PayloadFilter | undefined>
  patterns: Map<string, PayloadFilter | undefined>
}

const isPattern = (subject: string): boolean => subject.endsWith('*')

function passes(filter: PayloadFilter | undefined, data: Record<string, unknown>): boolean {
  if (!filter)
    return true
  for (const [path, expected] of Object.entries(filter)) {
    let value: unknown = data
    for (const key of path.split('.'))
      value = isRecord(value) ? value[key] : undefined
    if (value !== expected)
      return false
  }
  return true
}

/**
 * Whether the socket wants the event: with no subscriptions, every peer's event; else one that
 * a subscription matches, payload filter included. The hub's own events (registry changes)
 * only when a subscription other than `*` names them.
 */
function wants({ exact, patterns }: Subscriptions, event: HubEvent): boolean {
  const fromHub = (event.metadata?.source as { plugin?: unknown } | undefined)?.plugin === HUB_PLUGIN
  if (exact.size === 0 && patterns.size === 0)
    return !fromHub
  if (exact.has(event.type) && passes(exact.get(event.type), event.data))
    return true
  for (const [pattern, filter] of patterns) {
    if (pattern === '*' ? !fromHub : event.type.startsWith(pattern.slice(0, -1))) {
      if (passes(filter, event.data))
        return true
    }
  }
  return false
}

// --- Sockets ---------------------------------------------------------------------------

/** A broadcast collecting replies: request id → the responding module, until all answered or the timer. */
interface Broadcast {
  correlationId: string
  waiting: Map<string, string>
  results: Array<{ nodeId: string, payload: unknown }>
  timer?: ReturnType<typeof setTimeout>
}

interface MakaioSocket {
  socket: GatewaySocket
  hub: Hub
  options: ResolvedMakaioOptions
  name: string
  session: Session
  /** The nonce of the challenge it must answer (in-band auth). */
  nonce?: string
  /** Open once authenticated and announced: bus frames are taken. */
  open: boolean
  subscriptions: Subscriptions
  /** Subjects registered as the hub's consumers (request handlers). */
  handling: Set<string>
  /** Event type → priorities of other modules' handlers, as advertised to the client. */
  advertised: Map<string, string>
  /** Its requests: hub request id → its correlationId and subject. */
  asked: Map<string, { correlationId: string, subject: string }>
  /** Its broadcasts' requests: hub request id → the broadcast. */
  collecting: Map<string, Broadcast>
  /** Requests delivered to it: hub request id → request type (the type of its reply). */
  served: Map<string, string>
  stopWatching?: () => void
}

const POLICY_VIOLATION = 1008
const UNSUPPORTED_DATA = 1003

function write(makaio: MakaioSocket, frame: object): void {
  makaio.socket.write(JSON.stringify(frame))
}

function closeWith(makaio: MakaioSocket, code: number, reason: string): void {
  makaio.hub.options.logger.info(`${makaio.socket.describe()}: ${reason}: closing it (${code})`)
  makaio.socket.close({ code, reason })
}

function remember(map: Map<string, string>, key: string, value: string): void {
  if (map.size >= MAX_CORRELATED_REQUESTS)
    map.delete(map.keys().next().value!)
  map.set(key, value)
}

/** The port the socket gives the hub: its own encoder (the routing filter), replies as `response` frames. */
function makaioConnection(makaio: MakaioSocket): Connection {
  const { socket, hub } = makaio
  const encoder: EventEncoder = {
    encode(event) {
      const id = event.metadata?.event?.id ?? nanoid()
      const { namespace, subject } = subjectOf(event.type)
      // A request chose this module as its responder: no filter applies.
      if (event.route?.reply !== undefined)
        return encode(event, { type: 'request', subject, namespace, payload: event.data, correlationId: id, messageId: id, timeout: requestTimeout(event, hub.options.limits.maxRequestTimeoutMs) })
      return wants(makaio.subscriptions, event) ? encode(event, { type: 'event', subject, namespace, payload: event.data, messageId: id }) : ''
    },
  }
  const base = socket.connection(encoder)
  return {
    ...base,
    // An event the filter refused is encoded as nothing.
    send: frame => frame === '' ? 0 : socket.send(frame),
    fail(error, parentId) {
      if (parentId === undefined)
        return
      const asked = makaio.asked.get(parentId)
      if (asked) {
        makaio.asked.delete(parentId)
        return write(makaio, { type: 'response', correlationId: asked.correlationId, error: { ...errorOf(error), subject: asked.subject } })
      }
      const broadcast = makaio.collecting.get(parentId)
      if (broadcast)
        return answered(makaio, broadcast, parentId)
      hub.options.logger.debug(`${socket.describe()}: ${error.message} (event ${parentId})`)
    },
    reply(event, requestId) {
      const correlationId = makaio.asked.get(requestId)?.correlationId
      if (correlationId !== undefined) {
        makaio.asked.delete(requestId)
        return write(makaio, event.type === 'error'
          ? { type: 'response', correlationId, error: { code: String(event.data.code ?? 'HANDLER_ERROR'), message: String(event.data.message ?? 'error') } }
          : { type: 'response', correlationId, result: event.data })
      }
      const broadcast = makaio.collecting.get(requestId)
      if (broadcast)
        answered(makaio, broadcast, requestId, event)
    },
    requested: event => remember(makaio.served, event.metadata!.event!.id!, event.type),
  }
}

/** One module of a broadcast answered (`reply`) or failed; the response goes out once none waits. */
function answered(makaio: MakaioSocket, broadcast: Broadcast, requestId: string, reply?: HubEvent): void {
  const nodeId = broadcast.waiting.get(requestId)
  makaio.collecting.delete(requestId)
  broadcast.waiting.delete(requestId)
  if (reply && reply.type !== 'error' && nodeId !== undefined)
    broadcast.results.push({ nodeId, payload: reply.data })
  if (broadcast.waiting.size === 0)
    finish(makaio, broadcast)
}

function finish(makaio: MakaioSocket, broadcast: Broadcast): void {
  clearTimeout(broadcast.timer)
  for (const id of broadcast.waiting.keys())
    makaio.collecting.delete(id)
  broadcast.waiting.clear()
  write(makaio, { type: 'broadcast-response', correlationId: broadcast.correlationId, results: broadcast.results })
}

// --- Handlers advertised ---------------------------------------------------------------

/** The priorities of other modules' handlers of an event type, as a key to tell changes; undefined when none. */
function handlersOf(makaio: MakaioSocket, type: string): number[] | undefined {
  const priorities = makaio.hub.consumers.handlers(type).filter(({ peer }) => peer.id !== makaio.session.id).map(({ priority }) => priority)
  return priorities.length > 0 ? priorities : undefined
}

/** On open: every subject other modules handle, then `subscribe-sync-complete` (the client's `ready`). */
function advertise(makaio: MakaioSocket): void {
  const subjects: Record<string, number[]> = {}
  for (const type of makaio.hub.consumers.events()) {
    const priorities = handlersOf(makaio, type)
    if (priorities) {
      subjects[type] = priorities
      makaio.advertised.set(type, priorities.join())
    }
  }
  write(makaio, { type: 'subscribe', subjects })
  write(makaio, { type: 'subscribe-sync-complete' })
  makaio.stopWatching = makaio.hub.observers.on('consumers', type => readvertise(makaio, type))
}

/** A handler of `type` came or went: the client hears `subscribe` or `unsubscribe` when its view changed. */
function readvertise(makaio: MakaioSocket, type: string): void {
  if (makaio.socket.closed)
    return
  const priorities = handlersOf(makaio, type)
  const key = priorities?.join()
  if (key === makaio.advertised.get(type))
    return
  if (priorities) {
    makaio.advertised.set(type, key!)
    return write(makaio, { type: 'subscribe', subjects: { [type]: priorities } })
  }
  makaio.advertised.delete(type)
  write(makaio, { type: 'unsubscribe', subjects: { [type]: [] } })
}

// --- Frames ----------------------------------------------------------------------------

/** Authenticated: the module is announced under its name and hears what others handle. */
function admit(makaio: MakaioSocket): void {
  const { hub, session, name } = makaio
  const holder = hub.registry.find(name)
  if (holder && holder.peerId !== session.id)
    return closeWith(makaio, POLICY_VIOLATION, 'name already in use')
  const refused = hub.announce(session, { name, identity: { pluginId: name, instanceId: session.id, labels: { protocol: 'makaio' } } })
  if (refused || !session.module)
    return closeWith(makaio, POLICY_VIOLATION, refused?.message ?? 'unauthorized')
  makaio.open = true
  advertise(makaio)
}

/** `auth-response`: a hex HMAC-SHA256 of the nonce, keyed by the hub's token or a module's. */
function authResponse(makaio: MakaioSocket, signature: string): void {
  const { hub, session, nonce } = makaio
  if (nonce === undefined)
    return
  makaio.nonce = undefined
  const given = Buffer.from(signature, 'utf8')
  const token = [...hub.options.auth.tokens, ...hub.catalog.tokens].find((secret) => {
    const expected = Buffer.from(createHmac('sha256', secret).update(nonce).digest('hex'), 'utf8')
    return expected.length === given.length && timingSafeEqual(expected, given)
  })
  if (token === undefined || hub.authenticate(session, token)) {
    hub.refuse(session, new HubError('invalid_token', 'invalid signature'))
    write(makaio, { type: 'auth-result', success: false, error: 'Invalid signature' })
    return closeWith(makaio, POLICY_VIOLATION, 'authentication failed')
  }
  write(makaio, { type: 'auth-result', success: true })
  admit(makaio)
}

function subscribe(makaio: MakaioSocket, subjects: Record<string, number[]>, filters: Record<string, PayloadFilter> = {}): void {
  const { hub, session, subscriptions, handling, options } = makaio
  for (const [subject, priorities] of Object.entries(subjects)) {
    const table = isPattern(subject) ? subscriptions.patterns : subscriptions.exact
    if (!table.has(subject) && subscriptions.exact.size + subscriptions.patterns.size >= options.maxSubscriptions) {
      logRefusal(hub, `${makaio.socket.describe()} subscribed past ${options.maxSubscriptions} subjects`)
      hub.observers.emit('error', 'too_many_subscriptions')
      return closeWith(makaio, POLICY_VIOLATION, 'too many subscriptions')
    }
    table.set(subject, filters[subject])
    // Exact subjects with priorities are request handlers: the hub's consumers of that type.
    if (priorities.length > 0 && !isPattern(subject)) {
      const refused = hub.registerConsumer(session, { event: subject, priority: Math.max(...priorities) })
      if (refused)
        return closeWith(makaio, POLICY_VIOLATION, refused.message)
      handling.add(subject)
    }
    else if (handling.delete(subject)) {
      hub.unregisterConsumer(session, { event: subject })
    }
  }
}

function unsubscribe(makaio: MakaioSocket, subjects: Record<string, number[]>): void {
  for (const subject of Object.keys(subjects)) {
    makaio.subscriptions.exact.delete(subject)
    makaio.subscriptions.patterns.delete(subject)
    if (makaio.handling.delete(subject))
      makaio.hub.unregisterConsumer(makaio.session, { event: subject })
  }
}

/**
 * Publishes an event of the socket; the refusal when the hub would not take it. A reply is
 * checked as its request's type: its own may be `error`, reserved to the hub otherwise.
 */
async function publish(makaio: MakaioSocket, event: HubEvent, checkedAs = event.type): Promise<HubError | undefined> {
  const refused = makaio.hub.refusal({ ...event, type: checkedAs })
  if (refused)
    return refused
  const delivered = await makaio.hub.publish(makaio.session, event)
  return delivered instanceof HubError ? delivered : undefined
}

type Of<T extends MakaioFrame['type']> = Extract<MakaioFrame, { type: T }>

/** `request` → one handler (the hub's consumer of the type) → `response`. */
async function request(makaio: MakaioSocket, frame: Of<'request'>): Promise<void> {
  const id = nanoid()
  const max = makaio.hub.options.limits.maxRequestTimeoutMs
  // 0 is no timeout of its own: the hub's longest; a deadline is what is left of it.
  const asked = frame.timeout ?? (frame.deadline === undefined ? undefined : Math.max(1, frame.deadline - Date.now()))
  makaio.asked.set(id, { correlationId: frame.correlationId, subject: frame.subject })
  const refused = await publish(makaio, {
    type: eventTypeOf(frame.namespace, frame.subject),
    data: dataOf(frame.payload),
    metadata: { event: { id } },
    route: { reply: asked === undefined ? true : { timeoutMs: asked === 0 ? max : asked }, delivery: { mode: 'consumer' } },
  })
  if (refused && makaio.asked.delete(id))
    write(makaio, { type: 'response', correlationId: frame.correlationId, error: { ...errorOf(refused), subject: frame.subject } })
}

/** `broadcast` → a request to every other handler of the type → their replies in one `broadcast-response`. */
async function broadcast(makaio: MakaioSocket, frame: Of<'broadcast'>): Promise<void> {
  const { hub, session, options } = makaio
  const type = eventTypeOf(frame.namespace, frame.subject)
  const timeoutMs = Math.min(frame.timeout || options.broadcastTimeoutMs, MAX_MAKAIO_BROADCAST_TIMEOUT_MS)
  const state: Broadcast = { correlationId: frame.correlationId, waiting: new Map(), results: [] }
  const peers = new Map(hub.consumers.handlers(type).filter(({ peer }) => peer.id !== session.id).map(({ peer }) => [peer.id, peer]))
  const asks = [...peers.values()].map(peer => ({ id: nanoid(), peer }))
  for (const { id, peer } of asks) {
    state.waiting.set(id, peer.module?.name ?? peer.id)
    makaio.collecting.set(id, state)
  }
  if (asks.length === 0)
    return finish(makaio, state)
  state.timer = setTimeout(() => finish(makaio, state), timeoutMs)
  state.timer.unref?.()
  const data = dataOf(frame.payload)
  for (const { id, peer } of asks) {
    const refused = await publish(makaio, { type, data, metadata: { event: { id } }, route: { reply: { timeoutMs }, destinations: [{ type: 'ids', ids: [peer.id] }] } })
    if (refused && makaio.collecting.has(id))
      answered(makaio, state, id)
  }
}

/** The module's `response` to a request delivered to it: the reply, or an error reply. */
async function response(makaio: MakaioSocket, frame: Of<'response'>): Promise<void> {
  const type = makaio.served.get(frame.correlationId)
  if (type === undefined) {
    makaio.hub.options.logger.debug(`${makaio.socket.describe()}: response to no request it serves (${frame.correlationId})`)
    return
  }
  makaio.served.delete(frame.correlationId)
  const metadata = { event: { parentId: frame.correlationId } }
  const reply = frame.error
    ? { type: 'error', data: { message: frame.error.message ?? 'error', ...(frame.error.code === undefined ? {} : { code: frame.error.code }) }, metadata }
    : { type, data: dataOf(frame.result), metadata }
  const refused = await publish(makaio, reply, type)
  if (refused)
    makaio.hub.options.logger.debug(`${makaio.socket.describe()}: response ${frame.correlationId} refused: ${refused.message}`)
}

async function handleFrame(makaio: MakaioSocket, text: string): Promise<void> {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  }
  catch {
    return closeWith(makaio, UNSUPPORTED_DATA, 'not JSON')
  }
  const result = v.safeParse(Frame, parsed)
  if (!result.success)
    return closeWith(makaio, POLICY_VIOLATION, `invalid frame: ${result.issues[0].message}`)
  const frame = result.output
  makaio.hub.observers.emit('received', frame.type, makaio.session.authenticated)
  if (frame.type === 'auth-response')
    return authResponse(makaio, frame.signature)
  if (frame.type === 'heartbeat' || frame.type === 'subscribe-sync-complete')
    return
  if (!makaio.open)
    return closeWith(makaio, POLICY_VIOLATION, 'authenticate first')
  switch (frame.type) {
    case 'subscribe':
      subscribe(makaio, frame.subjects, frame.filters)
      break
    case 'unsubscribe':
      unsubscribe(makaio, frame.subjects)
      break
    case 'event': {
      const refused = await publish(makaio, { type: eventTypeOf(frame.namespace, frame.subject), data: dataOf(frame.payload) })
      if (refused)
        makaio.hub.options.logger.debug(`${makaio.socket.describe()}: event ${frame.subject} refused: ${refused.message}`)
      break
    }
    case 'request':
      return request(makaio, frame)
    case 'broadcast':
      return broadcast(makaio, frame)
    case 'response':
      return response(makaio, frame)
  }
  const ackId = (parsed as { ackId?: unknown }).ackId
  if (v.is(AckId, ackId) && !makaio.socket.closed)
    write(makaio, { type: 'subscription-ack', ackId })
}

// --- Gateway ---------------------------------------------------------------------------

/** Makaio bus clients on `/makaio`: `?token=` or the HMAC challenge, `?name=` names the module. */
export function makaioGateway(input: MakaioGatewayOptions = {}): Gateway {
  const options = resolveMakaioOptions(input)
  return defineGateway({
    name: 'makaio',
    paths: options.path === '' ? [] : [options.path],
    events: ['auth-response', 'heartbeat', 'subscribe', 'unsubscribe', 'subscribe-sync-complete', 'event', 'request', 'broadcast', 'response'],
    // The client passes its URL through unchanged: `?token=`, or no token and the HMAC challenge.
    auth: { status: 401, inBand: true },
    open(socket) {
      const { hub } = socket
      const name = socket.query.get('name') || `makaio-${nanoid(8)}`
      const makaio = {
        socket,
        hub,
        options,
        name,
        open: false,
        subscriptions: { exact: new Map(), patterns: new Map() },
        handling: new Set(),
        advertised: new Map(),
        asked: new Map(),
        collecting: new Map(),
        served: new Map(),
      } as Omit<MakaioSocket, 'session'> as MakaioSocket
      makaio.session = socket.connect(makaioConnection(makaio))
      if (makaio.session.authenticated) {
        admit(makaio)
      }
      else {
        makaio.nonce = randomBytes(32).toString('hex')
        write(makaio, { type: 'auth-challenge', nonce: makaio.nonce })
      }
      return {
        message: text => handleFrame(makaio, text),
        // A dropped request still gets its response; the frame is only scanned, not parsed (the client writes `type` first).
        rateLimited(text) {
          const correlationId = /^\{"type":"request".*"correlationId":("[^"]+")/.exec(text)?.[1]
          if (correlationId)
            write(makaio, { type: 'response', correlationId: JSON.parse(correlationId), error: { code: 'RATE_LIMITED', message: 'rate limited' } })
        },
        closed() {
          makaio.stopWatching?.()
          for (const broadcast of new Set(makaio.collecting.values()))
            clearTimeout(broadcast.timer)
        },
      }
    },
  })
}
