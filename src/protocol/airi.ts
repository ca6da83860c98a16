import type { ShapeLimits } from '../core/bounds.ts'
import type { Session } from '../core/session.ts'
import type { Hub } from '../hub.ts'
import type { AnnouncedIdentity, EventEncoder, HubEvent, Identity, StampedSource, WireIdentity } from '../types.ts'
import * as v from 'valibot'
import { checkData, checkEventIds, checkRoutes } from '../core/bounds.ts'
import { ConsumerRegistration, Data, DataDestinations, Route } from '../core/event-schema.ts'
import { checkSuperjsonMeta, fromSuperjson, isPlainJson, markPlainJson, toSuperjson, toWireIdentity } from '../core/event.ts'
import { HubError } from '../errors.ts'

// --- Envelope validation ---------------------------------------------------------------

const StringRecord = v.record(v.string(), v.string())

const Envelope = v.looseObject({
  type: v.pipe(v.string(), v.minLength(1)),
  data: Data,
  metadata: v.optional(v.looseObject({
    source: v.optional(v.unknown()),
    event: v.optional(v.looseObject({ id: v.optional(v.string()), parentId: v.optional(v.string()) })),
  })),
  route: v.optional(Route),
})

/** 0.8.4 client: `{ plugin, instanceId, version?, labels? }`. */
const FlatIdentity = v.object({
  plugin: v.pipe(v.string(), v.minLength(1)),
  instanceId: v.pipe(v.string(), v.minLength(1)),
  version: v.optional(v.string()),
  labels: v.optional(StringRecord),
})

/** AIRI v0.9-0.10: `{ id, kind: "plugin", plugin: { id, version?, labels? }, labels? }`. */
const NestedIdentity = v.object({
  id: v.pipe(v.string(), v.minLength(1)),
  kind: v.literal('plugin'),
  plugin: v.object({ id: v.pipe(v.string(), v.minLength(1)), version: v.optional(v.string()), labels: v.optional(StringRecord) }),
  labels: v.optional(StringRecord),
})

/** AIRI v0.11+ extension: `{ id, version?, labels? }`. */
const Extension = v.object({ id: v.pipe(v.string(), v.minLength(1)), version: v.optional(v.string()), labels: v.optional(StringRecord) })

/** AIRI v0.11+ module: `{ id, extension: { id, labels? }, labels? }`. */
const ExtensionIdentity = v.object({
  id: v.pipe(v.string(), v.minLength(1)),
  extension: Extension,
  labels: v.optional(StringRecord),
})

const Announce = v.object({
  name: v.pipe(v.string(), v.minLength(1)),
  index: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  identity: v.optional(v.union([FlatIdentity, NestedIdentity, ExtensionIdentity])),
})

/** A target by `moduleName` (and index), or by the module identity's `id` (AIRI HEAD). */
const Configure = v.pipe(
  v.object({
    moduleName: v.optional(v.pipe(v.string(), v.minLength(1))),
    moduleIndex: v.optional(v.pipe(v.number(), v.integer())),
    identity: v.optional(v.looseObject({ id: v.pipe(v.string(), v.minLength(1)) })),
    config: v.unknown(),
  }),
  v.check(input => input.moduleName !== undefined || input.identity !== undefined),
)

/** How a peer asks to hear the registry (`RegistryRequest['mode']`), in-band or at the upgrade (`/ws?registry=`). */
export const RegistryMode = v.picklist(['delta', 'none'])

/**
 * `module:authenticate`: AIRI sends `{token}`; a peer of ours may also ask how it hears the
 * registry (`registry: {mode, since?}`, see `RegistryRequest`). Other fields are let through as today.
 */
const ModuleAuthenticate = v.looseObject({
  token: v.optional(v.unknown()),
  registry: v.optional(v.strictObject({
    mode: RegistryMode,
    since: v.optional(v.strictObject({
      epoch: v.pipe(v.string(), v.maxLength(64)),
      revision: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
    })),
  })),
})
const PeerAuthenticate = v.object({ token: v.optional(v.unknown()), peerId: v.optional(v.pipe(v.string(), v.minLength(1))) })
const ExtensionAuthenticate = v.object({ token: v.optional(v.unknown()), identity: Extension })
const ExtensionAnnounce = v.object({ identity: Extension, permissions: v.optional(v.unknown()) })

const Heartbeat = v.object({ kind: v.picklist(['ping', 'pong']) })

/** Normalises any accepted identity shape; plugin labels merge under instance labels. */
export function normalizeIdentity(identity: v.InferOutput<typeof Announce>['identity'], name: string, peerId: string): Identity {
  if (!identity)
    return { pluginId: name, instanceId: peerId, labels: {} }
  if ('instanceId' in identity)
    return { pluginId: identity.plugin, instanceId: identity.instanceId, version: identity.version, labels: { ...identity.labels } }
  const owner = 'extension' in identity ? identity.extension : identity.plugin
  return { pluginId: owner.id, instanceId: identity.id, version: owner.version, labels: { ...owner.labels, ...identity.labels }, announced: identity }
}

/**
 * An AIRI extension's own identity (`extension:authenticate`, `extension:announce`), as routing
 * knows a peer without modules: plugin = the extension, instance = the peer's alias or id.
 */
function extensionIdentity(extension: v.InferOutput<typeof Extension>, session: Session): Identity {
  const { id, version, labels } = extension
  const identity: Identity = { pluginId: id, instanceId: session.aliases?.values().next().value ?? session.id, labels: { ...labels } }
  if (version !== undefined)
    identity.version = version
  return identity
}

// --- Codec -----------------------------------------------------------------------------

/** `metadata.event.id` of a raw event, if it is a string: errors about the event answer it. */
function idOf(raw: unknown): string | undefined {
  const id = (raw as { metadata?: { event?: { id?: unknown } } } | null)?.metadata?.event?.id
  return typeof id === 'string' ? id : undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The event of a parsed frame, superjson-wrapped or not, before any validation. */
function rawEventOf(parsed: unknown): { raw: unknown, wrapper?: Record<string, unknown> } {
  const wrapper = isRecord(parsed) && 'json' in parsed && !('type' in parsed) ? parsed : undefined
  return { raw: wrapper ? wrapper.json : parsed, wrapper }
}

/** The id of a frame's event, if it has a string one; it costs a parse, so only for errors. */
export function eventIdOfFrame(text: string): string | undefined {
  try {
    return idOf(rawEventOf(JSON.parse(text)).raw)
  }
  catch {
    return undefined
  }
}

/**
 * Parses one text frame: superjson first, plain JSON accepted. Throws a HubError with the wire
 * message and, when the frame had one, the event's id as `parentId`. Bounds come first: the
 * schema, superjson and later the router all recurse, so nothing reaches them unmeasured.
 */
export function decodeAiriFrame(text: string, limits: ShapeLimits): HubEvent {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  }
  catch (error) {
    throw new HubError('invalid_json', `invalid JSON, error: ${(error as Error).message}`)
  }
  const { raw, wrapper } = rawEventOf(parsed)
  const parentId = idOf(raw)
  const invalid = (): HubError => new HubError('invalid_event', 'invalid event format', { parentId })
  // Prototype keys (refused only where superjson would choke on them) and a malformed meta are format errors.
  const refuse = (what: string): HubError => what === 'prototype key' || what === 'malformed' ? invalid() : new HubError('limit_exceeded', `limit exceeded: ${what}`, { parentId })
  // superjson copies its input by assignment: a prototype key would swap an object's prototype.
  const withMeta = wrapper?.meta !== undefined
  // Plain JSON has no cycles or shared parts, so its depth is all that can hurt.
  const exceeded = checkRoutes(raw, limits) ?? checkEventIds(raw, limits) ?? checkData(raw, limits.maxDataDepth + 1, Infinity, withMeta)
    ?? (withMeta ? checkData(wrapper.meta, 2 * limits.maxDataDepth + 2, Infinity) ?? checkSuperjsonMeta(wrapper.meta) : undefined)
  if (exceeded)
    throw refuse(exceeded)
  let event = raw
  let plain = true
  if (wrapper) {
    try {
      ({ value: event, plain } = fromSuperjson(wrapper as { json: unknown }))
    }
    catch {
      throw invalid()
    }
    // References may have shared parts of the event (routes included) or closed a cycle.
    const problem = plain ? undefined : checkData(event, limits.maxDataDepth + 1, limits.maxPayloadBytes, true) ?? checkRoutes(event, limits) ?? checkEventIds(event, limits)
    if (problem)
      throw refuse(problem)
  }
  const result = v.safeParse(Envelope, event)
  if (!result.success || !v.is(DataDestinations, result.output.data.destinations))
    throw invalid()
  return plain ? markPlainJson(result.output as HubEvent) : result.output as HubEvent
}

// --- Generations ----------------------------------------------------------------------
// The hub's events name modules as announced, and stamp senders with every generation's
// fields (`StampedSource`). A 0.8.4 peer gets what it always got instead: flat identities
// `{plugin, instanceId, version?, labels}`, where `plugin` is a string. A peer is taken for
// 0.8.4 until it speaks a later generation (an `extension:*` or `peer:*` handshake, or a
// nested or extension identity); each generation's frame is encoded once per event.

/** Registry events whose `data.identity` names a module. */
const IDENTITY_EVENTS = new Set([
  'module:announced',
  'module:de-announced',
  'extension:module:announced',
  'extension:module:de-announced',
  'registry:modules:health:healthy',
  'registry:modules:health:unhealthy',
])

// Identities and sources are shared by every event about the same module: each is flattened once.
const flatIdentities = new WeakMap<object, WireIdentity>()
const flatModules = new WeakMap<unknown[], unknown[]>()

function flatIdentity(identity: AnnouncedIdentity): WireIdentity {
  if (typeof (identity as { plugin?: unknown }).plugin === 'string')
    return identity as WireIdentity
  let flat = flatIdentities.get(identity)
  if (!flat)
    flatIdentities.set(identity, flat = toWireIdentity(normalizeIdentity(identity, '', '')))
  return flat
}

function flatSource(source: StampedSource): WireIdentity {
  let flat = flatIdentities.get(source)
  if (!flat) {
    flat = { plugin: source.plugin.id, instanceId: source.instanceId, labels: source.labels }
    if (source.plugin.version !== undefined)
      flat.version = source.plugin.version
    flatIdentities.set(source, flat)
  }
  return flat
}

/** The event as a 0.8.4 peer sees it: the same object when nothing in it is of a later generation. */
function toLegacyEvent(event: HubEvent): HubEvent {
  const { type, data, metadata } = event
  let legacyData = data
  if (IDENTITY_EVENTS.has(type) && isRecord(data.identity)) {
    const identity = flatIdentity(data.identity as unknown as AnnouncedIdentity)
    if (identity !== (data.identity as unknown))
      legacyData = { ...data, identity }
  }
  else if (type === 'registry:modules:sync' && Array.isArray(data.modules)) {
    const modules = data.modules
    let flat = flatModules.get(modules)
    if (!flat)
      flatModules.set(modules, flat = modules.map(module => ({ ...module, identity: flatIdentity(module.identity) })))
    legacyData = { ...data, modules: flat }
  }
  const source = metadata?.source
  const legacySource = source && typeof source.plugin !== 'string' ? flatSource(source as StampedSource) : source
  if (legacyData === data && legacySource === source)
    return event
  return { ...event, data: legacyData, metadata: { ...metadata, source: legacySource } }
}

/** For 0.8.4 peers (and any peer until it shows a later generation). */
export const airiEncoder: EventEncoder = {
  encode: event => toSuperjson(toLegacyEvent(event), isPlainJson(event)),
  pure: true,
}

/** For v0.9 and HEAD peers: identities as announced, sources as stamped. */
export const airiCurrentEncoder: EventEncoder = {
  encode: event => toSuperjson(event, isPlainJson(event)),
  pure: true,
}

/** The peer spoke a later generation than 0.8.4: from now on it gets that generation's frames. */
function speaksLaterGeneration(session: Session): void {
  session.connection.encoder = airiCurrentEncoder
}

/** What the hub echoes of a peer's handshake data: as sent, unless it holds what plain JSON cannot carry. */
function echoOf(data: Record<string, unknown>, fallback: Record<string, unknown>): Record<string, unknown> {
  try {
    JSON.stringify(data)
    return data
  }
  catch {
    return fallback
  }
}

// --- Frame handling --------------------------------------------------------------------

function invalidEvent(): HubError {
  return new HubError('invalid_event', 'invalid event format')
}

/** Tells the peer why the hub refused its event, if it did and the peer is still there. */
function answer(session: Session, refused: HubError | undefined, parentId: string | undefined): refused is HubError {
  if (refused && session.state !== 'closed')
    session.connection.fail(refused, parentId)
  return refused !== undefined
}

/** A built-in event's data, or undefined once the peer was told `invalid event format`. */
function dataOf<T extends v.GenericSchema>(hub: Hub, session: Session, schema: T, event: HubEvent): v.InferOutput<T> | undefined {
  const result = v.safeParse(schema, event.data)
  if (result.success)
    return result.output
  answer(session, hub.refuse(session, invalidEvent()), event.metadata?.event?.id)
}

/** Handles one text frame from an AIRI peer: the built-in events, else routing. */
export function handleAiriFrame(hub: Hub, session: Session, text: string): void | Promise<unknown> {
  // Raw `ping`/`pong` text frames are liveness only.
  if (text === 'ping' || text === 'pong')
    return
  let event: HubEvent
  try {
    event = decodeAiriFrame(text, hub.options.limits)
  }
  catch (error) {
    // Anything but a HubError is internal: reported, and the peer gets the documented text.
    if (error instanceof HubError)
      return void answer(session, hub.refuse(session, error), error.parentId)
    hub.report(error, { stage: 'decode', peerId: session.id })
    return void answer(session, hub.refuse(session, invalidEvent()), undefined)
  }
  hub.observers.emit('received', event.type, session.authenticated)
  const parentId = event.metadata?.event?.id
  const { data } = event
  switch (event.type) {
    case 'transport:connection:heartbeat':
      if (dataOf(hub, session, Heartbeat, event)?.kind === 'ping')
        hub.send(session, 'transport:connection:heartbeat', { kind: 'pong', message: hub.options.heartbeat.message, at: Date.now() }, parentId)
      return
    case 'module:authenticate': {
      const auth = dataOf(hub, session, ModuleAuthenticate, event)
      if (!auth)
        return
      const { registry } = auth
      // A peer that asks for the registry its way is of the current generation (identities as announced).
      if (registry)
        speaksLaterGeneration(session)
      answer(session, hub.authenticate(session, auth.token, parentId, { registry }), parentId)
      return
    }
    case 'peer:authenticate': {
      const auth = dataOf(hub, session, PeerAuthenticate, event)
      if (!auth)
        return
      speaksLaterGeneration(session)
      const peerId = auth.peerId ?? session.id
      answer(session, hub.authenticate(session, auth.token, parentId, { reply: 'peer:authenticated', data: { peerId }, alias: peerId === session.id ? undefined : peerId }), parentId)
      return
    }
    case 'extension:authenticate': {
      const auth = dataOf(hub, session, ExtensionAuthenticate, event)
      if (!auth)
        return
      speaksLaterGeneration(session)
      answer(session, hub.authenticate(session, auth.token, parentId, { reply: 'extension:authenticated', data: { identity: auth.identity }, identity: extensionIdentity(auth.identity, session) }), parentId)
      return
    }
    case 'extension:announce': {
      if (answer(session, hub.requireAuth(session), parentId))
        return
      const announce = dataOf(hub, session, ExtensionAnnounce, event)
      if (!announce)
        return
      speaksLaterGeneration(session)
      const { identity, permissions } = announce
      if (answer(session, hub.identify(session, extensionIdentity(identity, session)), parentId))
        return
      hub.echo(session, 'extension:announced', echoOf({ identity, permissions }, { identity }), parentId)
      return
    }
    case 'module:announce':
    case 'extension:module:announce': {
      const announce = dataOf(hub, session, Announce, event)
      if (!announce)
        return
      const { name, index, identity } = announce
      // An extension peer holds several modules on one socket, and waits for its announce echoed.
      const alongside = event.type === 'extension:module:announce'
      if (alongside || (identity && !('instanceId' in identity)))
        speaksLaterGeneration(session)
      if (!answer(session, hub.announce(session, { name, index, identity: normalizeIdentity(identity, name, session.id), alongside }), parentId) && alongside)
        hub.send(session, 'extension:module:announced', echoOf(data, { name, index, identity }), parentId)
      return
    }
    case 'module:consumer:register':
    case 'module:consumer:unregister': {
      if (answer(session, hub.requireAuth(session), parentId))
        return
      const registration = dataOf(hub, session, ConsumerRegistration, event)
      if (!registration)
        return
      const register = event.type === 'module:consumer:register' ? hub.registerConsumer : hub.unregisterConsumer
      answer(session, register(session, registration), parentId)
      return
    }
    case 'ui:configure': {
      if (answer(session, hub.requireAuth(session), parentId))
        return
      const configure = dataOf(hub, session, Configure, event)
      if (!configure)
        return
      const { moduleName, moduleIndex, identity, config } = configure
      answer(session, hub.configure(session, { moduleName, moduleIndex, instanceId: identity?.id, config }, parentId), parentId)
      return
    }
    default: {
      const routed = hub.publish(session, event)
      if (routed instanceof Promise)
        return routed
      answer(session, routed instanceof HubError ? routed : undefined, parentId)
    }
  }
}
