import type { Session } from '../core/session.ts'
import type { Env } from '../env-options.ts'
import type { Hub } from '../hub.ts'
import type { Connection, EventEncoder, HubEvent } from '../types.ts'
import type { Gateway, GatewaySocket } from './gateway.ts'
import type { Layr8Inbox } from './layr8.ts'
import { Buffer } from 'node:buffer'
import process from 'node:process'
import { nanoid } from 'nanoid'
import * as v from 'valibot'
import { CLOSE } from '../core/close.ts'
import { ConsumerRegistration, Data, DataDestinations, Reply as RequestReply } from '../core/event-schema.ts'
import { isPlainJson } from '../core/event.ts'
import { envOptions, invalid, listOf, positiveInt } from '../env-options.ts'
import { HubError } from '../errors.ts'
import { defineGateway, failureEvent } from './gateway.ts'
import { keylessOf, keylessRefusal } from './keyless.ts'
import { assignDid, createLayr8Inbox, LAYR8_EVENTS, LAYR8_TOPIC, routeAck, routeMessage } from './layr8.ts'
import { isOverlong, logRefusal } from './limits.ts'

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
  pure: true,
}

// --- Options ---------------------------------------------------------------------------

export interface PhoenixGatewayOptions {
  /**
   * Endpoints of the Phoenix Channels gateway; each is also served with the `/websocket`
   * suffix the `phoenix` client appends. `[]` turns the gateway off.
   * @default ['/socket', '/debug_socket', '/release_socket', '/plugin_socket']
   */
  paths?: string[]
  /**
   * Topic prefixes a channel may join as `<prefix>:<module name>`.
   * @default ['plugin', 'plugins', 'debug_plugin', 'release_plugin']
   */
  topics?: string[]
  /**
   * Channels one socket may have joined at once; a join past this is answered
   * `{status: "error", response: {reason: "too many channels"}}`.
   * @default env `PHOENIX_MAX_CHANNELS`, else 100
   */
  maxChannels?: number
  /**
   * Request events answered in a plugin's own terms, by request type: a push of `reply` (or of
   * `error`) whose payload's `correlate` field equals the request's is its reply (or its error
   * reply). A channel pushing such a request type asks for a reply, as `payload.reply` does.
   * Any other request type `<x>` whose payload carries `request_id` is answered as Atomemo's
   * plugins answer all their requests: `<x>_response` / `<x>_error` with the same `request_id`.
   * @default { invoke_tool: { reply: 'invoke_tool_response', error: 'invoke_tool_error', correlate: 'request_id' } } (Atomemo plugins)
   */
  replies?: Record<string, PhoenixReplyRule>
  /**
   * Module names admitted without a key, by path: with auth on, an upgrade on one of these
   * paths that brings no key is let in, and its socket may join channels for the names listed
   * there only, each once across the hub, never a name the `modules` catalog gives a token of
   * its own. A listed `name` also admits Atomemo's release topic name `<name>__release__<version>`.
   * Upgrades without a key on any other path are refused (403) as before.
   * @example { '/release_socket': ['plugin-a', 'plugin-b'] }
   * @default env `PHOENIX_KEYLESS` (`/release_socket:plugin-a,plugin-b`, groups separated by `;`), else none
   */
  keyless?: Record<string, string[]>
  /** Where env-configurable options are read. @default process.env */
  env?: Env
}

/** How a Phoenix plugin answers one request type (`replies`). */
export interface PhoenixReplyRule {
  /** The event it pushes with the result. */
  reply: string
  /** The event it pushes when it failed, if any: the requester gets `error {message}`. */
  error?: string
  /** The payload field, in the request and in the answer, that names the request. */
  correlate: string
}

export interface ResolvedPhoenixOptions {
  readonly paths: string[]
  readonly topics: string[]
  readonly maxChannels: number
  readonly replies: Readonly<Record<string, PhoenixReplyRule>>
  /** Path (without the `/websocket` suffix) → the module names admitted there without a key. */
  readonly keyless: ReadonlyMap<string, ReadonlySet<string>>
}

export const DEFAULT_PHOENIX_PATHS: readonly string[] = ['/socket', '/debug_socket', '/release_socket', '/plugin_socket']
export const DEFAULT_PHOENIX_TOPICS: readonly string[] = ['plugin', 'plugins', 'debug_plugin', 'release_plugin']
export const DEFAULT_PHOENIX_MAX_CHANNELS = 100
export const DEFAULT_PHOENIX_REPLIES: Readonly<Record<string, PhoenixReplyRule>> = {
  invoke_tool: { reply: 'invoke_tool_response', error: 'invoke_tool_error', correlate: 'request_id' },
}
/** How a plugin answers request type `type`: its `replies` rule, else Atomemo's convention. */
function ruleOf(replies: Readonly<Record<string, PhoenixReplyRule>>, type: string): PhoenixReplyRule {
  return Object.hasOwn(replies, type) ? replies[type]! : { reply: `${type}_response`, error: `${type}_error`, correlate: 'request_id' }
}
/** Requests a Phoenix channel remembers to correlate its plugin's answers; the oldest is forgotten past it. */
export const MAX_CORRELATED_REQUESTS = 4096

/** The Phoenix gateway's env-configurable options. */
export const PHOENIX_ENV_OPTIONS = envOptions({
  PHOENIX_MAX_CHANNELS: { option: 'phoenix.maxChannels', flag: 'phoenix-max-channels', value: '<count>', default: String(DEFAULT_PHOENIX_MAX_CHANNELS), description: 'channels one Phoenix socket may join; further joins are refused' },
  PHOENIX_KEYLESS: { option: 'phoenix.keyless', flag: 'phoenix-keyless', value: '<path:name,…;…>', default: '', description: 'Phoenix modules admitted without a key, by path (e.g. /release_socket:plugin-a,plugin-b for Atomemo release plugins); each name once across the hub, never one with its own token' },
})

/** Resolves the gateway's options once. Throws `HubError('invalid_option')`. */
export function resolvePhoenixOptions(options: PhoenixGatewayOptions = {}): ResolvedPhoenixOptions {
  const env = options.env ?? process.env
  return {
    paths: listOf('phoenix.paths', options.paths ?? DEFAULT_PHOENIX_PATHS, p => /^\/[^?#]*[^/?#]$/.test(p), 'paths like "/socket"'),
    topics: listOf('phoenix.topics', options.topics ?? DEFAULT_PHOENIX_TOPICS, t => t !== '' && !t.includes(':'), 'non-empty prefixes without ":"'),
    maxChannels: positiveInt(PHOENIX_ENV_OPTIONS.PHOENIX_MAX_CHANNELS, options.maxChannels, env, DEFAULT_PHOENIX_MAX_CHANNELS),
    replies: repliesOf(options.replies ?? DEFAULT_PHOENIX_REPLIES),
    keyless: keylessOf(PHOENIX_ENV_OPTIONS.PHOENIX_KEYLESS, options.keyless, options.paths ?? DEFAULT_PHOENIX_PATHS, env),
  }
}

function repliesOf(replies: Record<string, PhoenixReplyRule>): Record<string, PhoenixReplyRule> {
  const named = (value: unknown): boolean => typeof value === 'string' && value !== '' && !value.startsWith('phx_')
  for (const [type, rule] of Object.entries(replies)) {
    if (!named(type) || typeof rule !== 'object' || rule === null || !named(rule.reply) || !named(rule.correlate) || (rule.error !== undefined && !named(rule.error)))
      invalid(`phoenix.replies.${type}`, rule, '{reply, error?, correlate}: event names and a payload field, none empty or phx_*')
  }
  return { ...replies }
}

// --- Channels --------------------------------------------------------------------------

const HEARTBEAT_TOPIC = 'phoenix'
/**
 * The hub's own AIRI events (authentication results, registry syncs and changes, health): a
 * Phoenix plugin did not ask for them, so a channel gets them only when its join asked, with
 * `hub_events: true` (all of them) or a list of these types. `registry:` covers every
 * `registry:*` type (syncs and health). Errors, receipts, `module:configure` and replies
 * answer the channel itself and always arrive.
 */
const HUB_EVENT_TYPES: readonly string[] = [
  'module:authenticated',
  'peer:authenticated',
  'extension:authenticated',
  'extension:announced',
  'module:announced',
  'module:de-announced',
  'extension:module:announced',
  'extension:module:de-announced',
  'registry:modules:sync',
  'registry:modules:health:unhealthy',
  'registry:modules:health:healthy',
]
const HUB_EVENT_PREFIXES = HUB_EVENT_TYPES.map(type => `${JSON.stringify(type)},`)
function isHubEventType(type: string): boolean {
  return HUB_EVENT_TYPES.includes(type)
}
const isHubEvent = (tail: string): boolean => tail.startsWith('"registry:') || HUB_EVENT_PREFIXES.some(prefix => tail.startsWith(prefix))

const PushPayload = v.pipe(Data, v.check(data => v.is(DataDestinations, data.destinations) && (data.reply === undefined || v.is(RequestReply, data.reply))))
/**
 * A join may register the channel as a consumer of events (a chat-ingestion plugin), as
 * `module:consumer:register` does, and ask for the hub's own events (`hub_events`).
 */
const JoinPayload = v.looseObject({
  consumers: v.optional(v.array(ConsumerRegistration)),
  hub_events: v.optional(v.union([v.boolean(), v.pipe(v.array(v.pipe(v.string(), v.check(isHubEventType))), v.maxLength(HUB_EVENT_TYPES.length))])),
})
const INVALID_HUB_EVENTS = 'invalid hub_events: expected true or a list of the hub\'s event types'
const INVALID_CONSUMER = 'invalid consumer: expected {event, group?, priority?, mode?}'
const CONSUMER_EVENTS = new Set(['module:consumer:register', 'module:consumer:unregister'])
const INVALID_FRAME = { ...CLOSE.invalidFrame, reason: 'invalid frame: expected [join_ref, ref, topic, event, payload]' }

interface Channel {
  joinRef: PhoenixRef
  /** The module it announced (a Layr8 agent's DID). */
  name: string
  session: Session
  requests: ChannelRequests
  /** Whether it asked for this push of the hub's own events (see `HUB_EVENT_TYPES`). */
  wants: HubEventFilter
  /** A Layr8 agent's channel (`plugins:<did>`): the messages it received, for its acks. */
  inbox?: Layr8Inbox
}

/** Whether a channel gets a push of the hub's own, by its encoded `"type",data]` tail. */
type HubEventFilter = (tail: string) => boolean

/** The requests of one channel: its own pushes waiting for their reply, and those its plugin is to answer in its own terms. */
interface ChannelRequests {
  /** Request id → the push that made it, answered by the reply's `phx_reply`. */
  awaiting: Map<string, PhoenixFrame>
  /** `<request type>\0<correlate value>` → the id of a request delivered to this channel. */
  correlated: Map<string, string>
}

/**
 * One Phoenix socket: its joined channels by topic, each a hub session of its own, in the
 * order they joined. The plumbing holds its admission, rate limit, liveness and write bound.
 */
interface PhoenixSocket {
  socket: GatewaySocket
  hub: Hub
  options: ResolvedPhoenixOptions
  channels: Map<string, Channel>
  /** Upgraded without a key on a `keyless` path: the module names it may join, and how many joins were refused so far. */
  keyless?: { names: ReadonlySet<string>, refused: number }
}

type Reply = { status: 'ok', response: Record<string, unknown> } | { status: 'error', response: { reason: string } }

function reply({ socket }: PhoenixSocket, [joinRef, ref, topic]: PhoenixFrame, payload: Reply): void {
  socket.write(encodePhoenixFrame(joinRef, ref, topic, 'phx_reply', payload))
}

const okReply = (response: Record<string, unknown> = {}): Reply => ({ status: 'ok', response })
const errorReply = (reason: string): Reply => ({ status: 'error', response: { reason } })

/** Registry changes: the same for every channel of a socket. */
const REGISTRY_EVENT_PREFIXES = ['"module:announced",', '"module:de-announced",', '"registry:']

/** The join's `hub_events`: none (the default), all, or the listed types. */
function hubEventFilter(asked: boolean | string[] | undefined): HubEventFilter {
  if (asked === true)
    return () => true
  const prefixes = (asked || []).map(type => `${JSON.stringify(type)},`)
  return tail => prefixes.some(prefix => tail.startsWith(prefix))
}

/**
 * Whether `topic` is the socket's lead channel: its oldest joined channel, or the first one
 * while it joins. The hub's pings when the socket falls silent go to the lead channel only.
 */
function isLead(phoenix: PhoenixSocket, topic: string): boolean {
  const oldest = phoenix.channels.keys().next().value
  return oldest === undefined || oldest === topic
}

/**
 * The channel that carries a registry change: the oldest joined that asked for it (a socket
 * with N channels would otherwise get each one N times); `undefined` while none has.
 */
function registryLead(phoenix: PhoenixSocket, tail: string): string | undefined {
  for (const [topic, channel] of phoenix.channels) {
    if (channel.wants(tail))
      return topic
  }
}
const SYNC_TAIL = '"registry:modules:sync",'

/** The `phx_reply` a reply event makes: its data, or an error reply's message as the reason. */
function replyOf(event: HubEvent): Reply {
  return event.type === 'error' ? errorReply(String(event.data.message ?? 'error')) : okReply(event.data)
}

/** The port one channel gives the hub; frames wait until the join reply is out. */
function channelConnection(phoenix: PhoenixSocket, joinRef: PhoenixRef, topic: string, requests: ChannelRequests, wants: HubEventFilter, inbox?: Layr8Inbox): Connection & { open: () => void } {
  const { socket, options } = phoenix
  const prefix = `[${JSON.stringify(joinRef)},null,${JSON.stringify(topic)},`
  let backlog: string[] | undefined = []
  const base = socket.connection(phoenixEncoder)
  const connection: Connection & { open: () => void } = {
    ...base,
    // A failure after a push was accepted (no consumer, undeliverable): an `error` push on this
    // channel; a request's (no responder, timed out, responder gone) is its push's error reply.
    fail(error, parentId) {
      const frame = parentId === undefined ? undefined : requests.awaiting.get(parentId)
      if (frame) {
        requests.awaiting.delete(parentId!)
        if (isHubCall(frame))
          return connection.send(phoenixEncoder.encode(hubCallError(frame, error.code, error.message)))
        return reply(phoenix, frame, errorReply(error.message))
      }
      connection.send(phoenixEncoder.encode(failureEvent(phoenix.hub, error, parentId)))
    },
    reply(event, requestId) {
      const frame = requests.awaiting.get(requestId)
      requests.awaiting.delete(requestId)
      if (frame && isHubCall(frame))
        connection.send(phoenixEncoder.encode(hubCallAnswer(frame, event)))
      else if (frame)
        reply(phoenix, frame, replyOf(event))
    },
    requested(event) {
      const { correlate } = ruleOf(options.replies, event.type)
      const value = event.data[correlate]
      if (typeof value !== 'string' && typeof value !== 'number')
        return
      // Remembered past the request's end (4096 of them): a value longer than a name is not, and
      // that request is not answered in the plugin's terms (it times out).
      if (isOverlong(phoenix.hub, socket, value, `the ${correlate} of a request to it (its answer will not be matched)`))
        return
      const { correlated } = requests
      const key = `${event.type}\0${value}`
      correlated.delete(key)
      if (correlated.size >= MAX_CORRELATED_REQUESTS)
        correlated.delete(correlated.keys().next().value!)
      correlated.set(key, event.metadata!.event!.id!)
    },
    send(tail) {
      // `phx_*` events steer the client's channel state; no peer may forge them.
      if (tail.startsWith('"phx_'))
        return 0
      if (isHubEvent(tail) && !wants(tail))
        return 0
      inbox?.delivered(tail)
      const registryChange = REGISTRY_EVENT_PREFIXES.some(p => tail.startsWith(p))
      // While it joins, a channel leads if no joined one asked for the change.
      if (registryChange && (registryLead(phoenix, tail) ?? topic) !== topic)
        return 0
      if (backlog) {
        backlog.push(prefix + tail)
        return 0
      }
      // `write` holds the slow-consumer bound for the whole socket, replies included; registry
      // changes are paced by the hub's registry feed instead, which is told what waits.
      if (registryChange)
        return socket.closed ? 0 : socket.send(prefix + tail)
      socket.write(prefix + tail)
      return 0
    },
    ping() {
      if (isLead(phoenix, topic))
        socket.ping()
    },
    open() {
      const frames = backlog ?? []
      backlog = undefined
      for (const frame of frames)
        socket.write(frame)
    },
  }
  return connection
}

function join(phoenix: PhoenixSocket, frame: PhoenixFrame): void {
  const { hub, socket, options } = phoenix
  const [joinRef, , topic, , payload] = frame
  // A channel holds its join_ref (twice: as is, and in its frames' prefix) for the socket's life:
  // bounded like a name, or `maxChannels` huge refs would hold that many frames' worth.
  if (isOverlong(hub, socket, joinRef, 'a refused join\'s join_ref'))
    return reply(phoenix, frame, errorReply('limit exceeded: join_ref'))
  const colon = topic.indexOf(':')
  const prefix = topic.slice(0, colon)
  // A Layr8 agent without a DID of its own joins `plugins:`: the hub assigns one, its module name.
  const assigned = colon !== -1 && topic.length === colon + 1 && prefix === LAYR8_TOPIC && options.topics.includes(prefix) ? assignDid(socket.host) : undefined
  const name = assigned ?? topic.slice(colon + 1)
  if (colon === -1 || name === '' || !options.topics.includes(prefix))
    return reply(phoenix, frame, errorReply('unmatched topic'))
  if (phoenix.channels.has(topic))
    return reply(phoenix, frame, errorReply('already joined'))
  const { maxChannels } = options
  if (phoenix.channels.size >= maxChannels) {
    logRefusal(hub, `${socket.describe()} refused a join: it has ${maxChannels} channels already`)
    hub.observers.emit('error', 'too_many_channels')
    return reply(phoenix, frame, errorReply('too many channels'))
  }
  if (!v.is(Data, payload))
    return reply(phoenix, frame, errorReply('invalid payload'))
  const params = v.safeParse(JoinPayload, payload)
  if (!params.success)
    return reply(phoenix, frame, errorReply(params.issues[0].path?.[0]?.key === 'hub_events' ? INVALID_HUB_EVENTS : `${INVALID_CONSUMER} in consumers`))

  const keylessRefused = phoenix.keyless && keylessRefusal(hub, socket.path, phoenix.keyless.names, name)
  if (keylessRefused)
    return refuseKeyless(phoenix, frame, keylessRefused)

  const requests: ChannelRequests = { awaiting: new Map(), correlated: new Map() }
  const wants = hubEventFilter(params.output.hub_events)
  const inbox = prefix === LAYR8_TOPIC ? createLayr8Inbox(hub.options.limits.maxNameLength) : undefined
  const connection = channelConnection(phoenix, joinRef, topic, requests, wants, inbox)
  const session = socket.connect(connection, { admittedAs: phoenix.keyless ? name : undefined })
  // Consumers first: a refused one leaves no module announced and withdrawn in the registry.
  for (const registration of session.authenticated ? params.output.consumers ?? [] : []) {
    const refused = hub.registerConsumer(session, registration)
    if (refused) {
      hub.disconnect(session)
      return reply(phoenix, frame, errorReply(refused.message))
    }
  }
  const identity = { pluginId: name, instanceId: session.id, labels: { protocol: 'phoenix', topic: prefix } }
  hub.announce(session, { name, identity })
  if (!session.module) {
    hub.disconnect(session)
    return reply(phoenix, frame, errorReply('unauthorized'))
  }
  phoenix.channels.set(topic, { joinRef, name, session, requests, wants, inbox })
  const config = hub.catalog.optionsOf(name)
  reply(phoenix, frame, okReply({ ...config && { config }, ...assigned && { did: assigned } }))
  connection.open()
}

// --- Keyless admission (Atomemo release plugins) ---------------------------------------

/** Refuses a join without a key as `unauthorized`; past `auth.maxFailures` such refusals the socket is closed (4001). */
function refuseKeyless(phoenix: PhoenixSocket, frame: PhoenixFrame, why: string): void {
  const { hub, socket } = phoenix
  const keyless = phoenix.keyless!
  keyless.refused++
  logRefusal(hub, `${socket.describe()} refused a join without a key: ${why}`)
  hub.observers.emit('error', 'keyless_refused')
  reply(phoenix, frame, errorReply('unauthorized'))
  if (keyless.refused >= hub.options.auth.maxFailures)
    socket.close(CLOSE.authFailed)
}

function leave(phoenix: PhoenixSocket, frame: PhoenixFrame, channel: Channel): void {
  const [joinRef, , topic] = frame
  const wasLead = registryLead(phoenix, SYNC_TAIL) === topic
  phoenix.channels.delete(topic)
  phoenix.hub.disconnect(channel.session)
  reply(phoenix, frame, okReply())
  phoenix.socket.write(encodePhoenixFrame(joinRef, joinRef, topic, 'phx_close', {}))
  // The channel that leads now had no registry changes before: it gets a full `registry:modules:sync` first.
  const lead = wasLead ? registryLead(phoenix, SYNC_TAIL) : undefined
  if (lead !== undefined)
    phoenix.hub.sync(phoenix.channels.get(lead)!.session)
}

/** `module:consumer:register` / `unregister`: answered ok, or with why the hub refused. */
function consumerPush(phoenix: PhoenixSocket, frame: PhoenixFrame, channel: Channel): void {
  const { hub } = phoenix
  const [, , , event, payload] = frame
  const registration = v.safeParse(ConsumerRegistration, payload)
  if (!registration.success)
    return reply(phoenix, frame, errorReply(INVALID_CONSUMER))
  if (event === 'module:consumer:unregister') {
    hub.unregisterConsumer(channel.session, registration.output)
    return reply(phoenix, frame, okReply())
  }
  const refused = hub.registerConsumer(channel.session, registration.output)
  reply(phoenix, frame, refused ? errorReply(refused.message) : okReply())
}

async function push(phoenix: PhoenixSocket, frame: PhoenixFrame, channel: Channel): Promise<void> {
  const { hub } = phoenix
  const [, , , event, payload] = frame
  if (CONSUMER_EVENTS.has(event))
    return consumerPush(phoenix, frame, channel)
  if (channel.inbox && Object.hasOwn(LAYR8_EVENTS, event))
    return layr8Push(phoenix, frame, channel, channel.inbox)
  if (isHubCall(frame))
    return hubCall(phoenix, frame, channel)
  // Bounds before the schema: it recurses into destinations.
  const refused = hub.refusal({ type: event, data: payload })
  if (refused)
    return reply(phoenix, frame, errorReply(refused.code === 'reserved_event' ? 'reserved event' : refused.message))
  if (!v.is(PushPayload, payload))
    return reply(phoenix, frame, errorReply('invalid payload'))
  const answered = answerOf(phoenix, channel, event, payload)
  const { reply: asked, ...data } = payload
  // `payload.reply`, or a request type the plugins answer in their own terms, asks for a reply.
  const request = answered ? undefined : asked as true | { timeoutMs?: number } | undefined ?? (Object.hasOwn(phoenix.options.replies, event) ? true : undefined)
  const held = request && awaitedFrame(phoenix, frame)
  if (held === null)
    return reply(phoenix, frame, errorReply('limit exceeded: ref'))
  const id = nanoid()
  if (held)
    channel.requests.awaiting.set(id, held)
  const delivered = await publishPush(phoenix, frame, channel, answered ?? { type: event, data, metadata: { event: { id } }, route: request && { reply: request } })
  // A request is answered by its reply (or by why it got none), which may have come already.
  if (delivered !== undefined && !request)
    reply(phoenix, frame, okReply({ delivered }))
}

/**
 * Publishes what a push asked for; a refusal or failure is the push's error reply (and the
 * request it may have opened is forgotten). The recipients, or undefined when it was answered.
 */
async function publishPush(phoenix: PhoenixSocket, frame: PhoenixFrame, channel: Channel, event: HubEvent): Promise<number | undefined> {
  const { hub } = phoenix
  const id = event.metadata?.event?.id
  let failure: string
  try {
    const delivered = await hub.publish(channel.session, event)
    if (!(delivered instanceof HubError))
      return delivered
    failure = delivered.message
  }
  catch (cause) {
    hub.report(cause, { stage: 'deliver', peerId: channel.session.id })
    failure = 'internal error'
  }
  if (id !== undefined)
    channel.requests.awaiting.delete(id)
  reply(phoenix, frame, errorReply(failure))
}

/** A Layr8 agent's `message` or `ack`: answered `{delivered: n}`, or an error reason (`no route`). */
async function layr8Push(phoenix: PhoenixSocket, frame: PhoenixFrame, channel: Channel, inbox: Layr8Inbox): Promise<void> {
  const { hub } = phoenix
  const [, , , event, payload] = frame
  const refused = hub.refusal({ type: event, data: payload })
  if (refused)
    return reply(phoenix, frame, errorReply(refused.message))
  const { session, name } = channel
  const outcome = event === LAYR8_EVENTS.message ? await routeMessage(hub, session, name, payload) : await routeAck(hub, session, name, inbox, payload)
  reply(phoenix, frame, 'reason' in outcome ? errorReply(outcome.reason) : okReply(outcome))
}

// --- Atomemo hub calls ------------------------------------------------------------------

const HUB_CALL_PREFIX = 'hub_call:'
const HubCallPayload = v.object({ request_id: v.union([v.pipe(v.string(), v.minLength(1)), v.number()]), data: v.optional(v.record(v.string(), v.unknown())) })

function isHubCall([, , , event]: PhoenixFrame): boolean {
  return event.startsWith(HUB_CALL_PREFIX)
}

/** The `request_id` of an accepted `hub_call:` push (checked by `HubCallPayload`). */
const callIdOf = (frame: PhoenixFrame): unknown => (frame[4] as { request_id: unknown }).request_id

/**
 * What a request's answer needs of its push, held until the reply (up to the longest request
 * timeout): its refs, topic and event, and a hub call's `request_id`, not the payload. null when
 * a ref or request_id is longer than a name: refs are the client's counters, and each held one
 * would keep a frame's worth per pending request.
 */
function awaitedFrame({ hub, socket }: PhoenixSocket, frame: PhoenixFrame): PhoenixFrame | null {
  const [joinRef, ref, topic, event] = frame
  const callId = isHubCall(frame) ? callIdOf(frame) : undefined
  if (isOverlong(hub, socket, ref, 'a refused request\'s ref') || isOverlong(hub, socket, callId, 'a refused hub call\'s request_id'))
    return null
  return [joinRef, ref, topic, event, callId === undefined ? null : { request_id: callId }]
}

/** What a hub call's requester gets for the reply `event`. */
function hubCallAnswer(frame: PhoenixFrame, event: HubEvent): HubEvent {
  if (event.type === 'error')
    return hubCallError(frame, String(event.data.code ?? 'error'), String(event.data.message ?? 'error'))
  return { type: 'hub_call_response', data: { request_id: callIdOf(frame), data: event.data } }
}

function hubCallError(frame: PhoenixFrame, code: string, message: string): HubEvent {
  return { type: 'hub_call_error', data: { request_id: callIdOf(frame), error: { code, message } } }
}

/**
 * `hub_call:<name> {request_id, data}` (Atomemo's `createHubCaller`): a request of type `<name>`
 * to the one consumer registered for it, answered on this channel by `hub_call_response
 * {request_id, data}` or `hub_call_error {request_id, error: {code, message}}`; the push's
 * `phx_reply` only says the call was accepted, since the SDK waits for those events.
 */
async function hubCall(phoenix: PhoenixSocket, frame: PhoenixFrame, channel: Channel): Promise<void> {
  const { hub } = phoenix
  const [, , , event, payload] = frame
  const type = event.slice(HUB_CALL_PREFIX.length)
  if (type === '' || !v.is(HubCallPayload, payload))
    return reply(phoenix, frame, errorReply('invalid payload'))
  const data = payload.data ?? {}
  const refused = hub.refusal({ type, data })
  if (refused)
    return reply(phoenix, frame, errorReply(refused.code === 'reserved_event' ? 'reserved event' : refused.message))
  const held = awaitedFrame(phoenix, frame)
  if (held === null)
    return reply(phoenix, frame, errorReply('limit exceeded: ref'))
  const id = nanoid()
  channel.requests.awaiting.set(id, held)
  if (await publishPush(phoenix, frame, channel, { type, data, metadata: { event: { id } }, route: { reply: true, delivery: { mode: 'consumer' } } }) !== undefined)
    reply(phoenix, frame, okReply())
}

/** A push that answers a request delivered to this channel in the plugin's own terms (`replies`, else `<x>_response` / `<x>_error`): the reply event, its parentId set. */
function answerOf(phoenix: PhoenixSocket, channel: Channel, event: string, payload: Record<string, unknown>): HubEvent | undefined {
  const { replies } = phoenix.options
  const conventional = /^(.+)_(?:response|error)$/.exec(event)?.[1]
  const types = conventional === undefined || Object.hasOwn(replies, conventional) ? Object.keys(replies) : [...Object.keys(replies), conventional]
  for (const type of types) {
    const rule = ruleOf(replies, type)
    if (event !== rule.reply && event !== rule.error)
      continue
    const key = `${type}\0${String(payload[rule.correlate])}`
    const parentId = channel.requests.correlated.get(key)
    if (parentId === undefined)
      continue
    channel.requests.correlated.delete(key)
    const metadata = { event: { parentId } }
    return event === rule.reply
      ? { type: event, data: payload, metadata }
      : { type: 'error', data: { ...payload, message: String(payload.message ?? (payload.error as { message?: unknown } | undefined)?.message ?? 'error') }, metadata }
  }
}

/** Handles one text frame: heartbeat, join, leave, else a push into the hub. */
function handleFrame(phoenix: PhoenixSocket, text: string): void | Promise<void> {
  const frame = decodePhoenixFrame(text)
  if (!frame)
    return phoenix.socket.close(INVALID_FRAME)
  const [joinRef, , topic, event] = frame
  phoenix.hub.observers.emit('received', event)
  if (topic === HEARTBEAT_TOPIC && event === 'heartbeat')
    return reply(phoenix, frame, okReply())
  if (event === 'phx_join')
    return join(phoenix, frame)
  const channel = phoenix.channels.get(topic)
  // A join_ref of an earlier join of this topic is stale.
  if (!channel || (joinRef !== null && joinRef !== channel.joinRef))
    return reply(phoenix, frame, errorReply('unmatched topic'))
  if (event === 'phx_leave')
    return leave(phoenix, frame, channel)
  return push(phoenix, frame, channel)
}

// --- Gateway ---------------------------------------------------------------------------

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

// The `phoenix` client appends `/websocket` to the URL it is given.
const WEBSOCKET_SUFFIX = '/websocket'

/** The names admitted without a key on `path` (with or without the `/websocket` suffix), if any. */
function keylessNamesOf({ keyless }: ResolvedPhoenixOptions, path: string): ReadonlySet<string> | undefined {
  return keyless.get(path) ?? (path.endsWith(WEBSOCKET_SUFFIX) ? keyless.get(path.slice(0, -WEBSOCKET_SUFFIX.length)) : undefined)
}

/** The Phoenix Channels V2 endpoints (`/socket`, `/debug_socket`, …): each joined channel is a hub session. */
export function phoenixGateway(input: PhoenixGatewayOptions = {}): Gateway {
  const options = resolvePhoenixOptions(input)
  return defineGateway({
    name: 'phoenix',
    paths: options.paths.flatMap(path => [path, `${path}${WEBSOCKET_SUFFIX}`]),
    events: ['phx_join', 'phx_leave', 'heartbeat'],
    // Phoenix clients have no in-band auth: a bad or missing key is refused before the upgrade.
    auth: { params: ['api_key', 'token'], status: 403 },
    upgrade(request) {
      const url = new URL(request.url)
      const vsn = url.searchParams.get('vsn')
      if (vsn !== null && !vsn.startsWith('2.'))
        return new Response('Unsupported vsn (only 2.x)', { status: 400 })
      return { ...subprotocolAuth(request), keyless: keylessNamesOf(options, url.pathname) !== undefined }
    },
    open(socket) {
      const { hub } = socket
      const names = hub.authRequired && socket.token === undefined ? keylessNamesOf(options, socket.path) : undefined
      const phoenix: PhoenixSocket = { socket, hub, options, channels: new Map(), keyless: names && { names, refused: 0 } }
      return {
        message: text => handleFrame(phoenix, text),
        rateLimited(text) {
          const frame = decodePhoenixFrame(text)
          if (frame)
            reply(phoenix, frame, errorReply('rate limited'))
        },
        closed: () => phoenix.channels.clear(),
      }
    },
  })
}
