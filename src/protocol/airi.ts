import type { ShapeLimits } from '../core/bounds.ts'
import type { Session } from '../core/session.ts'
import type { Hub } from '../hub.ts'
import type { EventEncoder, HubEvent, Identity, RouteExpression } from '../types.ts'
import * as v from 'valibot'
import { checkData, checkRoutes } from '../core/bounds.ts'
import { checkSuperjsonMeta, fromSuperjson, isPlainJson, markPlainJson, toSuperjson } from '../core/event.ts'
import { HubError } from '../errors.ts'

// --- Envelope validation ---------------------------------------------------------------

const StringRecord = v.record(v.string(), v.string())
const Strings = v.array(v.string())
const inverted = { inverted: v.optional(v.boolean()) }

const Expression: v.GenericSchema<RouteExpression> = v.variant('type', [
  v.object({ type: v.literal('and'), all: v.array(v.lazy(() => Expression)) }),
  v.object({ type: v.literal('or'), any: v.array(v.lazy(() => Expression)) }),
  v.object({ type: v.literal('glob'), glob: v.string(), ...inverted }),
  v.object({ type: v.literal('ids'), ids: Strings, ...inverted }),
  v.object({ type: v.literal('plugin'), plugins: Strings, ...inverted }),
  v.object({ type: v.literal('instance'), instances: Strings, ...inverted }),
  v.object({ type: v.literal('label'), selectors: Strings, ...inverted }),
  v.object({ type: v.literal('module'), modules: Strings, ...inverted }),
  v.object({ type: v.literal('source'), sources: Strings, ...inverted }),
]) as v.GenericSchema<RouteExpression>

export const Data = v.custom<Record<string, unknown>>(
  value => typeof value === 'object' && value !== null && !Array.isArray(value),
)

const Envelope = v.looseObject({
  type: v.pipe(v.string(), v.minLength(1)),
  data: Data,
  metadata: v.optional(v.looseObject({
    source: v.optional(v.unknown()),
    event: v.optional(v.looseObject({ id: v.optional(v.string()), parentId: v.optional(v.string()) })),
  })),
  route: v.optional(v.looseObject({
    destinations: v.optional(v.array(v.union([v.string(), Expression]))),
    bypass: v.optional(v.boolean()),
  })),
})

// Destinations may also ride in `data.destinations`; they must be valid there too.
export const DataDestinations = v.optional(v.array(v.union([v.string(), Expression])))

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

/** AIRI v0.11+: `{ id, extension: { id, labels? }, labels? }`. */
const ExtensionIdentity = v.object({
  id: v.pipe(v.string(), v.minLength(1)),
  extension: v.object({ id: v.pipe(v.string(), v.minLength(1)), version: v.optional(v.string()), labels: v.optional(StringRecord) }),
  labels: v.optional(StringRecord),
})

const Announce = v.object({
  name: v.pipe(v.string(), v.minLength(1)),
  index: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  identity: v.optional(v.union([FlatIdentity, NestedIdentity, ExtensionIdentity])),
})

const Configure = v.object({
  moduleName: v.pipe(v.string(), v.minLength(1)),
  moduleIndex: v.optional(v.pipe(v.number(), v.integer())),
  config: v.unknown(),
})

const Heartbeat = v.object({ kind: v.picklist(['ping', 'pong']) })

/** Normalises any accepted identity shape; plugin labels merge under instance labels. */
export function normalizeIdentity(identity: v.InferOutput<typeof Announce>['identity'], name: string, peerId: string): Identity {
  if (!identity)
    return { pluginId: name, instanceId: peerId, labels: {} }
  if ('instanceId' in identity)
    return { pluginId: identity.plugin, instanceId: identity.instanceId, version: identity.version, labels: { ...identity.labels } }
  const owner = 'extension' in identity ? identity.extension : identity.plugin
  return { pluginId: owner.id, instanceId: identity.id, version: owner.version, labels: { ...owner.labels, ...identity.labels } }
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
  const exceeded = checkRoutes(raw, limits) ?? checkData(raw, limits.maxDataDepth + 1, Infinity, withMeta)
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
    const problem = plain ? undefined : checkData(event, limits.maxDataDepth + 1, limits.maxPayloadBytes, true) ?? checkRoutes(event, limits)
    if (problem)
      throw refuse(problem)
  }
  const result = v.safeParse(Envelope, event)
  if (!result.success || !v.is(DataDestinations, result.output.data.destinations))
    throw invalid()
  return plain ? markPlainJson(result.output as HubEvent) : result.output as HubEvent
}

export const airiEncoder: EventEncoder = {
  encode: event => toSuperjson(event, isPlainJson(event)),
}

// --- Frame handling --------------------------------------------------------------------

function invalidEvent(): HubError {
  return new HubError('invalid_event', 'invalid event format')
}

/** Handles one text frame from an AIRI peer: the built-in events, else routing. */
export function handleAiriFrame(hub: Hub, session: Session, text: string): void | Promise<unknown> {
  hub.touch(session)
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
      return hub.reject(session, error, error.parentId)
    hub.options.onError(error, { stage: 'decode', peerId: session.id })
    return hub.reject(session, invalidEvent())
  }
  hub.observers.emit('received', event.type, session.authenticated)
  const parentId = event.metadata?.event?.id
  const { data } = event
  switch (event.type) {
    case 'transport:connection:heartbeat':
      if (!v.is(Heartbeat, data))
        return hub.reject(session, invalidEvent(), parentId)
      if (data.kind === 'ping')
        hub.pong(session, parentId)
      return
    case 'module:authenticate':
      hub.authenticate(session, data.token, parentId)
      return
    case 'module:announce':
    case 'extension:module:announce': {
      const announce = v.safeParse(Announce, data)
      if (!announce.success)
        return hub.reject(session, invalidEvent(), parentId)
      const { name, index, identity } = announce.output
      hub.announce(session, { name, index, identity: normalizeIdentity(identity, name, session.id) }, parentId)
      return
    }
    case 'ui:configure': {
      if (!hub.requireAuth(session, parentId))
        return
      const configure = v.safeParse(Configure, data)
      if (!configure.success)
        return hub.reject(session, invalidEvent(), parentId)
      hub.configure(session, configure.output, parentId)
      return
    }
    default: {
      const routed = hub.publish(session, event)
      if (routed instanceof Promise)
        return routed
    }
  }
}
