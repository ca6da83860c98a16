import type { Session } from '../core/session.ts'
import type { Env } from '../env-options.ts'
import type { Hub } from '../hub.ts'
import type { Close, Connection, EventEncoder, HubEvent } from '../types.ts'
import type { Gateway, GatewaySocket } from './gateway.ts'
import process from 'node:process'
import { nanoid } from 'nanoid'
import * as v from 'valibot'
import { envOptions, listOf, positiveInt } from '../env-options.ts'
import { HubError } from '../errors.ts'
import { defineGateway } from './gateway.ts'
import { isOverlong, logRefusal } from './limits.ts'
import { MAX_CORRELATED_REQUESTS } from './phoenix.ts'

// Thymian remote plugins (`@thymian/plugin-websocket-proxy`): JSON text frames `{type, …}`.
// A plugin registers (name, token, the actions it handles, the events it wants), says ready,
// then emits events, answers actions and emits actions of its own to every module that handles them.

// --- Codec -----------------------------------------------------------------------------

/** Thymian's own close reasons; 1001 (shutdown) comes from the hub's table. */
const NOT_JSON: Close = { code: 1003, reason: 'frames must be JSON text' }
/** A frame that fails the schema or comes out of order; the reason says which (a close reason holds 123 bytes). */
const violation = (reason: string): Close => ({ code: 1008, reason: reason.slice(0, 120) })

const Name = v.pipe(v.string(), v.minLength(1))
const Names = v.array(Name)
const STRATEGIES = ['first', 'collect', 'deep-merge'] as const

const Frame = v.variant('type', [
  v.looseObject({ type: v.literal('register'), name: Name, token: v.optional(v.string()), onActions: v.optional(Names), onEvents: v.optional(Names) }),
  v.looseObject({ type: v.literal('ready') }),
  v.looseObject({ type: v.literal('emit'), name: Name, payload: v.optional(v.unknown()) }),
  v.looseObject({
    type: v.literal('emitAction'),
    id: v.string(),
    name: Name,
    payload: v.optional(v.unknown()),
    options: v.optional(v.looseObject({
      strategy: v.optional(v.picklist(STRATEGIES)),
      timeout: v.optional(v.pipe(v.number(), v.finite(), v.minValue(1))),
    })),
  }),
  v.looseObject({ type: v.literal('actionReply'), correlationId: v.string(), name: Name, payload: v.optional(v.unknown()) }),
  v.looseObject({ type: v.literal('actionError'), correlationId: v.string(), name: Name, error: v.looseObject({ name: v.optional(v.string()), message: v.string() }) }),
])

export type ThymianFrame = v.InferOutput<typeof Frame>
type FrameOf<T extends ThymianFrame['type']> = Extract<ThymianFrame, { type: T }>
export type ThymianStrategy = typeof STRATEGIES[number]

/** Parses one text frame, or says why the socket is closed: not JSON (1003), or the schema's complaint (1008). */
export function decodeThymianFrame(text: string): { frame: ThymianFrame } | { close: Close } {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  }
  catch {
    return { close: NOT_JSON }
  }
  const result = v.safeParse(Frame, parsed)
  if (result.success)
    return { frame: result.output }
  const type = (parsed as { type?: unknown } | null)?.type
  return { close: violation(typeof type === 'string' ? `invalid ${type.slice(0, 40)} frame` : 'invalid frame: expected {type, …}') }
}

/** A Thymian payload as hub event data: an object as it is, anything else wrapped as `{payload}`. */
export function dataOf(payload: unknown): Record<string, unknown> {
  if (payload === undefined)
    return {}
  return typeof payload === 'object' && payload !== null && !Array.isArray(payload) ? payload as Record<string, unknown> : { payload }
}

/** Hub event data as a Thymian payload: `{payload}` alone is unwrapped, so that values make the round trip. */
export function payloadOf(data: Record<string, unknown>): unknown {
  const keys = Object.keys(data)
  return keys.length === 1 && keys[0] === 'payload' ? data.payload ?? null : data
}

const EVENT = 'e'
const ACTION = 'a'

/**
 * One encoder for every plugin: an event is encoded once as `<kind><JSON name>\n<rest>` (JSON
 * never holds a raw newline), and each plugin's connection keeps it or not by the name (its
 * `onEvents` / `onActions`) and puts the frame's head in front.
 */
export const thymianEncoder: EventEncoder = {
  encode(event) {
    const name = JSON.stringify(event.type)
    const payload = JSON.stringify(payloadOf(event.data))
    const id = event.route?.reply === undefined ? undefined : event.metadata?.event?.id
    return id === undefined ? `${EVENT}${name}\n${payload}` : `${ACTION}${name}\n"id":${JSON.stringify(id)},"payload":${payload}}`
  },
  pure: true,
}

/** `deep-merge`: objects merged key by key, arrays concatenated, anything else replaced (Thymian's `deepmerge`). */
export function deepMerge(values: readonly unknown[]): unknown {
  const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
  return values.reduce((merged, value) => {
    if (Array.isArray(merged) && Array.isArray(value))
      return [...merged, ...value]
    if (!isObject(merged) || !isObject(value))
      return value
    const out: Record<string, unknown> = { ...merged }
    for (const [key, inner] of Object.entries(value))
      out[key] = Object.hasOwn(out, key) ? deepMerge([out[key], inner]) : inner
    return out
  }, undefined)
}

// --- Options ---------------------------------------------------------------------------

export interface ThymianGatewayOptions {
  /**
   * Endpoint of the Thymian gateway on the hub's port.
   * @default '/thymian'
   */
  path?: string
  /**
   * A port of its own where the gateway serves `/`: Thymian's reference client dials
   * `ws://host:port` (its default port is 51234). 0 = none.
   * @default env `THYMIAN_PORT`, else 0 (none)
   */
  port?: number
  /**
   * Events one plugin may name in its `register` (`onEvents`); a register naming more is refused.
   * @default env `THYMIAN_MAX_EVENTS`, else 256
   */
  maxEvents?: number
  /** Where env-configurable options are read. @default process.env */
  env?: Env
}

export interface ResolvedThymianOptions {
  readonly path: string
  readonly port?: number
  readonly maxEvents: number
}

export const DEFAULT_THYMIAN_PATH = '/thymian'
/** How long an `emitAction` waits for its handlers when it names no `options.timeout` (Thymian's default). */
export const DEFAULT_THYMIAN_ACTION_TIMEOUT_MS = 1000
export const DEFAULT_THYMIAN_MAX_EVENTS = 256

/** The Thymian gateway's env-configurable options. */
export const THYMIAN_ENV_OPTIONS = envOptions({
  THYMIAN_PORT: { option: 'thymian.port', flag: 'thymian-port', value: '<port>', default: '', description: 'a port where Thymian plugins dial ws://host:<port> (Thymian\'s default 51234; empty = none, /thymian on the hub\'s port only)' },
  THYMIAN_MAX_EVENTS: { option: 'thymian.maxEvents', flag: 'thymian-max-events', value: '<count>', default: String(DEFAULT_THYMIAN_MAX_EVENTS), description: 'events one Thymian plugin may name in its register (onEvents); a register naming more is refused' },
})

/** Resolves the gateway's options once. Throws `HubError('invalid_option')`. */
export function resolveThymianOptions(options: ThymianGatewayOptions = {}): ResolvedThymianOptions {
  const env = options.env ?? process.env
  const [path] = listOf('thymian.path', [options.path ?? DEFAULT_THYMIAN_PATH], p => /^\/[^?#]*[^/?#]$/.test(p), 'a path like "/thymian"')
  const port = positiveInt(THYMIAN_ENV_OPTIONS.THYMIAN_PORT, options.port, env, 0, 0)
  const maxEvents = positiveInt(THYMIAN_ENV_OPTIONS.THYMIAN_MAX_EVENTS, options.maxEvents, env, DEFAULT_THYMIAN_MAX_EVENTS)
  return { path: path!, port: port === 0 ? undefined : port, maxEvents }
}

// --- Plugins ---------------------------------------------------------------------------

/** An `emitAction` in progress: its requests, one per handler, and what came back so far. */
interface Gathering {
  id: string
  name: string
  strategy: ThymianStrategy
  waiting: Set<string>
  payloads: unknown[]
  errors: Array<{ name?: string, message: string }>
  failures: HubError[]
}

/** One plugin socket: one hub session, opened with the socket. */
interface Plugin {
  socket: GatewaySocket
  hub: Hub
  session: Session
  state: 'new' | 'registered' | 'refused' | 'ready'
  name?: string
  onActions: Set<string>
  /** JSON-encoded names, as the encoder's output carries them. */
  onActionsJson: Set<string>
  onEventsJson: Set<string>
  /** Requests delivered to the plugin as `action`, not answered yet: id → action name. */
  actions: Map<string, string>
  /** Its `emitAction` requests: request id → the gathering it belongs to. */
  asked: Map<string, Gathering>
}

/** Closes the plugin for a frame it should not have sent, saying so in the log. */
function closeFor(plugin: Plugin, close: Close): void {
  plugin.hub.options.logger.info(`${plugin.socket.describe()}: ${close.reason}: closing it (${close.code})`)
  plugin.socket.close(close)
}

function write(plugin: Plugin, frame: Record<string, unknown>): void {
  plugin.socket.write(JSON.stringify(frame))
}

/** Publishes for the plugin; a refusal or a failure of it goes to `failed`. */
function publish(plugin: Plugin, event: HubEvent, failed: (error: HubError) => void): void {
  const { hub, session } = plugin
  const report = (error: unknown): void => hub.report(error, { stage: 'deliver', peerId: session.id })
  try {
    const delivered = hub.publish(session, event)
    if (delivered instanceof HubError)
      failed(delivered)
    else if (delivered instanceof Promise)
      delivered.catch(report)
  }
  catch (error) {
    report(error)
    failed(new HubError('undeliverable', 'event could not be delivered'))
  }
}

/** The port the plugin's session gives the hub: events and actions filtered by name, replies to its own `emitAction`s. */
function connectionOf(plugin: Plugin): Connection {
  const { socket } = plugin
  const base = socket.connection(thymianEncoder)
  return {
    ...base,
    send(tail) {
      if (plugin.state !== 'ready')
        return 0
      const end = tail.indexOf('\n')
      const name = tail.slice(1, end)
      if (tail[0] === EVENT)
        return plugin.onEventsJson.has(name) ? socket.send(`{"type":"event","name":${name},"payload":${tail.slice(end + 1)}}`) : 0
      // An action it does not handle was answered `no handler` when it was requested.
      return plugin.onActionsJson.has(name) ? socket.send(`{"type":"action","name":${name},${tail.slice(end + 1)}`) : 0
    },
    fail(error, parentId) {
      if (parentId !== undefined && plugin.asked.has(parentId))
        return answered(plugin, parentId, { failure: error })
      plugin.hub.options.logger.debug(`${socket.describe()}: ${error.message}`)
    },
    reply(event, requestId) {
      if (event.type !== 'error')
        return answered(plugin, requestId, { payload: payloadOf(event.data) })
      const { name, message } = event.data
      answered(plugin, requestId, { error: { name: typeof name === 'string' ? name : undefined, message: String(message ?? 'error') } })
    },
    requested(event) {
      const id = event.metadata!.event!.id!
      if (plugin.state === 'ready' && plugin.onActions.has(event.type)) {
        if (plugin.actions.size >= MAX_CORRELATED_REQUESTS)
          plugin.actions.delete(plugin.actions.keys().next().value!)
        plugin.actions.set(id, event.type)
        return
      }
      // Chosen for a request it does not handle: the requester hears so at once, not at its timeout.
      publish(plugin, { type: 'error', data: { message: `no handler for ${event.type}` }, metadata: { event: { parentId: id } } }, () => {})
    },
  }
}

/** A reply (or why there is none) to one request of an `emitAction`; the result goes out once the strategy has what it needs. */
function answered(plugin: Plugin, requestId: string, outcome: { payload: unknown } | { error: { name?: string, message: string } } | { failure: HubError }): void {
  const gathering = plugin.asked.get(requestId)
  if (!gathering)
    return
  plugin.asked.delete(requestId)
  gathering.waiting.delete(requestId)
  if ('payload' in outcome)
    gathering.payloads.push(outcome.payload)
  else if ('error' in outcome)
    gathering.errors.push(outcome.error)
  else
    gathering.failures.push(outcome.failure)
  const first = gathering.strategy === 'first' && gathering.payloads.length + gathering.errors.length > 0
  if (first || gathering.waiting.size === 0)
    finish(plugin, gathering)
}

/** Thymian's rules: any handler error fails the action; no reply at all is an error; else the strategy combines the replies. */
function finish(plugin: Plugin, gathering: Gathering): void {
  for (const id of gathering.waiting)
    plugin.asked.delete(id)
  gathering.waiting.clear()
  const { id: correlationId, name, strategy, payloads, errors, failures } = gathering
  const error = errors[0] ?? (payloads.length > 0
    ? undefined
    : failures.some(failure => failure.code === 'request_timeout')
      ? { name: 'ActionTimeoutError', message: `no reply to action "${name}" within the timeout` }
      : { name: 'Error', message: failures[0]?.message ?? 'no reply' })
  if (error)
    return write(plugin, { type: 'emitActionError', correlationId, name, error: { name: error.name ?? 'Error', message: error.message } })
  const payload = strategy === 'first' ? payloads[0] : strategy === 'collect' ? payloads : deepMerge(payloads)
  write(plugin, { type: 'emitActionResult', correlationId, name, payload })
}

/** `register`: admission by the hub's rules, then `register-ack`; a refused plugin may not say ready. */
function register(plugin: Plugin, frame: FrameOf<'register'>, reserved: Set<string>, maxEvents: number): void {
  const { hub, session } = plugin
  const refuse = (reason: string): void => {
    plugin.state = 'refused'
    write(plugin, { type: 'register-ack', ok: false, reason })
  }
  // Each named event is held for the socket's life: a bound, not the frame size, limits them.
  if ((frame.onEvents?.length ?? 0) > maxEvents) {
    logRefusal(hub, `${plugin.socket.describe()} registered past ${maxEvents} events (thymian.maxEvents)`)
    hub.observers.emit('error', 'too_many_subscriptions')
    return refuse(`Too many events (at most ${maxEvents}).`)
  }
  const { name } = frame
  // A configured module without a token is admitted by name (the operator chose that): it is
  // let in as a peer of the shared token would be, bound to no module.
  const known = hub.options.modules.find(module => module.name === name)
  const credential = known && known.token === undefined ? hub.options.auth.tokens[0] : frame.token
  if (!session.authenticated || credential !== undefined) {
    const refused = hub.authenticate(session, credential)
    if (refused?.code === 'invalid_token')
      return plugin.socket.closed ? undefined : refuse('Invalid token.')
    if (refused)
      return refuse(refused.message)
  }
  if (hub.catalog.refusal(session, name))
    return refuse('Invalid token.')
  if (reserved.has(name) || hub.registry.find(name))
    return refuse('Name already in use.')
  reserved.add(name)
  plugin.name = name
  plugin.state = 'registered'
  plugin.onActions = new Set(frame.onActions)
  plugin.onActionsJson = new Set(frame.onActions?.map(action => JSON.stringify(action)))
  plugin.onEventsJson = new Set(frame.onEvents?.map(event => JSON.stringify(event)))
  write(plugin, { type: 'register-ack', ok: true, config: hub.catalog.optionsOf(name) ?? {} })
}

/** `ready`: its actions become consumers (how `emitAction` finds handlers, on any node), then the module is announced. */
function ready(plugin: Plugin, reserved: Set<string>): void {
  const { hub, session } = plugin
  const name = plugin.name!
  for (const action of plugin.onActions) {
    const refused = hub.registerConsumer(session, { event: action })
    if (refused)
      return closeFor(plugin, violation(`action ${action}: ${refused.message}`))
  }
  const refused = hub.announce(session, { name, identity: { pluginId: name, instanceId: session.id, labels: { protocol: 'thymian' } } })
  if (refused)
    return closeFor(plugin, violation(refused.message))
  plugin.state = 'ready'
  reserved.delete(name)
}

function emit(plugin: Plugin, frame: FrameOf<'emit'>): void {
  const event = { type: frame.name, data: dataOf(frame.payload) }
  // Thymian has no error frame: a refused event closes the plugin, saying why.
  const refused = plugin.hub.refusal(event)
  if (refused)
    return closeFor(plugin, violation(`${frame.name}: ${refused.message}`))
  publish(plugin, event, error => closeFor(plugin, violation(`${frame.name}: ${error.message}`)))
}

/** `emitAction`: one request to each module that handles the action (a consumer of it, on any node), combined by the strategy. */
function emitAction(plugin: Plugin, frame: FrameOf<'emitAction'>): void {
  const { hub, session } = plugin
  const { id, name } = frame
  const fail = (error: { name: string, message: string }): void => write(plugin, { type: 'emitActionError', correlationId: id, name, error })
  // The id is held until every handler answered (up to the longest request timeout): bounded like a name.
  if (isOverlong(hub, plugin.socket, id, 'a refused emitAction\'s id'))
    return fail({ name: 'Error', message: 'limit exceeded: id' })
  const data = dataOf(frame.payload)
  const refused = hub.refusal({ type: name, data })
  if (refused)
    return fail({ name: 'Error', message: refused.message })
  // A peer registered in several groups is asked once.
  const handlers = [...new Set(hub.consumers.handlers(name).map(({ peer }) => peer))].filter(peer => peer.id !== session.id)
  if (handlers.length === 0)
    return fail({ name: 'NoHandlerRegisteredError', message: `no handler for action "${name}"` })
  const timeoutMs = Math.min(Math.ceil(frame.options?.timeout ?? DEFAULT_THYMIAN_ACTION_TIMEOUT_MS), hub.options.limits.maxRequestTimeoutMs)
  const gathering: Gathering = { id, name, strategy: frame.options?.strategy ?? 'collect', waiting: new Set(), payloads: [], errors: [], failures: [] }
  const requests = handlers.map(handler => ({ handler, requestId: nanoid() }))
  for (const { requestId } of requests) {
    gathering.waiting.add(requestId)
    plugin.asked.set(requestId, gathering)
  }
  for (const { handler, requestId } of requests) {
    const event: HubEvent = { type: name, data, metadata: { event: { id: requestId } }, route: { destinations: [`peer:${handler.id}`], reply: { timeoutMs } } }
    publish(plugin, event, failure => answered(plugin, requestId, { failure }))
  }
}

/** `actionReply` / `actionError`: the reply to an action delivered to this plugin. */
function answer(plugin: Plugin, frame: FrameOf<'actionReply'> | FrameOf<'actionError'>): void {
  const { hub, socket } = plugin
  const parentId = frame.correlationId
  const type = plugin.actions.get(parentId)
  if (type === undefined) {
    hub.options.logger.debug(`${socket.describe()} answered ${parentId}, which it was not asked or answered already: dropped`)
    return
  }
  plugin.actions.delete(parentId)
  const metadata = { event: { parentId } }
  const reply: HubEvent = frame.type === 'actionReply'
    ? { type, data: dataOf(frame.payload), metadata }
    : { type: 'error', data: { name: frame.error.name, message: frame.error.message }, metadata }
  // Bounds of the data, under the action's type: `error` itself is reserved to replies.
  const refused = hub.refusal({ type, data: reply.data })
  const sent = refused ? { type: 'error', data: { message: `reply refused: ${refused.message}` }, metadata } : reply
  publish(plugin, sent, error => hub.options.logger.info(`${socket.describe()}: reply to ${parentId} refused: ${error.message}`))
}

/** The frames each state takes: register first and once, ready after a good register, the rest once ready. */
const ALLOWED: Record<Plugin['state'], ReadonlySet<ThymianFrame['type']>> = {
  new: new Set(['register']),
  registered: new Set(['ready']),
  refused: new Set(),
  ready: new Set(['emit', 'emitAction', 'actionReply', 'actionError']),
}

function handleFrame(plugin: Plugin, text: string, reserved: Set<string>, options: ResolvedThymianOptions): void {
  const decoded = decodeThymianFrame(text)
  if ('close' in decoded)
    return closeFor(plugin, decoded.close)
  const { frame } = decoded
  plugin.hub.observers.emit('received', frame.type)
  if (!ALLOWED[plugin.state].has(frame.type))
    return closeFor(plugin, violation(`${frame.type} not allowed ${plugin.state === 'new' ? 'before register' : `after ${plugin.state === 'refused' ? 'a refused register' : plugin.state}`}`))
  switch (frame.type) {
    case 'register': return register(plugin, frame, reserved, options.maxEvents)
    case 'ready': return ready(plugin, reserved)
    case 'emit': return emit(plugin, frame)
    case 'emitAction': return emitAction(plugin, frame)
    default: return answer(plugin, frame)
  }
}

// --- Gateway ---------------------------------------------------------------------------

/** Thymian remote plugins: `/thymian` on the hub's port, and `/` of a port of its own when `port` is set. */
export function thymianGateway(input: ThymianGatewayOptions = {}): Gateway {
  const options = resolveThymianOptions(input)
  // Names registered and not yet announced: a second plugin may not take one in between.
  const reserved = new Set<string>()
  return defineGateway({
    name: 'thymian',
    paths: [options.path],
    port: options.port,
    events: ['register', 'ready', 'emit', 'emitAction', 'actionReply', 'actionError'],
    // The token comes in `register`, never in the URL.
    auth: { inBand: true },
    open(socket) {
      const plugin = { socket, hub: socket.hub, state: 'new', onActions: new Set(), onActionsJson: new Set(), onEventsJson: new Set(), actions: new Map(), asked: new Map() } as Omit<Plugin, 'session'> as Plugin
      plugin.session = socket.connect(connectionOf(plugin))
      return {
        message: text => handleFrame(plugin, text, reserved, options),
        closed() {
          if (plugin.state === 'registered')
            reserved.delete(plugin.name!)
          plugin.actions.clear()
          plugin.asked.clear()
        },
      }
    },
  })
}
