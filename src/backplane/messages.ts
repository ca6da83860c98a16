import type { DeannounceReason, HubEvent } from '../types.ts'
import type { ClusterMessage } from './types.ts'
import * as v from 'valibot'
import { fromSuperjson, isPlainJson, isReservedEventType, markPlainJson, toSuperjson } from '../core/event.ts'
import { HUB_PLUGIN } from '../core/refusals.ts'

// Anything on the backplane's channels may have been published by anyone who can reach the
// Redis: every message is checked before the cluster uses any of it, whole, so a bad one is
// dropped without a trace instead of half-applied. The caps sit above any value a gateway
// accepts from a peer, so only a forged message ever meets them.

/** Longest node id or peer id. */
export const MAX_ID_CHARS = 256
/** Longest module name, identity field, label key or label value. */
export const MAX_TEXT_CHARS = 4096
/** Most labels of one identity. */
export const MAX_LABELS = 256
/** Most modules of one peer, and most aliases. */
export const MAX_PEER_MODULES = 1024
/** Most consumer registrations of one peer (above any `limits.maxConsumersPerPeer` a node should run with). */
export const MAX_PEER_CONSUMERS = 1024
/** Most peers in one node's state, and most recipients of one routed event. */
export const MAX_PEERS = 100_000
/** Longest message (a batch) read at all: a node's full state stays well below it. */
export const MAX_MESSAGE_CHARS = 64 * 1024 * 1024
/**
 * Most messages in one batch: a node cuts its batches after 1 MiB (`cluster.ts`) and no message
 * is under 32 characters. Checking a forged batch of a million tiny messages, then handling
 * each, would hold this node's event loop for seconds.
 */
export const MAX_BATCH_MESSAGES = 32_768

const DEANNOUNCE_REASONS = ['connection closed', 'heartbeat expired', 'server shutdown', 're-announcing'] as const satisfies readonly DeannounceReason[]
const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype']

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null)
    return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

// Ids reach channel names and log lines: no control characters.
const Id = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_ID_CHARS), v.regex(/^\P{Cc}+$/u))
const Text = v.pipe(v.string(), v.maxLength(MAX_TEXT_CHARS))
const Name = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_TEXT_CHARS))
const Seq = v.pipe(v.number(), v.safeInteger(), v.minValue(0))

/** An array of at most `max` items, its length checked before any item is. */
function bounded<T extends v.GenericSchema>(item: T, max: number): v.GenericSchema<unknown, v.InferOutput<T>[]> {
  return v.pipe(v.custom<unknown[]>(value => Array.isArray(value) && value.length <= max, `an array of at most ${max} items`), v.array(item))
}

// No node sends prototype keys (a gateway's own checks drop them): one here is forged.
const Labels = v.pipe(
  v.custom<Record<string, unknown>>(
    value => isPlainObject(value) && Object.keys(value).length <= MAX_LABELS && !PROTOTYPE_KEYS.some(key => Object.hasOwn(value, key)),
    `an object of at most ${MAX_LABELS} labels`,
  ),
  v.record(Text, Text),
)

// The identity as the module announced it, in a later AIRI generation's shape.
const Owner = v.object({ id: Name, version: v.optional(Text), labels: v.optional(Labels) })
const Announced = v.union([
  v.object({ id: Name, kind: v.literal('plugin'), plugin: Owner, labels: v.optional(Labels) }),
  v.object({ id: Name, extension: Owner, labels: v.optional(Labels) }),
])
const Identity = v.object({ pluginId: Name, instanceId: Name, version: v.optional(Text), labels: Labels, announced: v.optional(Announced) })
const Module = v.object({ name: Name, index: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0))), identity: Identity })
const Consumer = v.object({ event: Name, group: v.optional(Name), priority: v.optional(v.pipe(v.number(), v.finite())), at: Seq })
const Peer = v.object({
  id: Id,
  modules: v.optional(bounded(Module, MAX_PEER_MODULES)),
  aliases: v.optional(bounded(Id, MAX_PEER_MODULES)),
  identity: v.optional(Identity),
  protocol: v.optional(Name),
  consumers: v.optional(bounded(Consumer, MAX_PEER_CONSUMERS)),
  unhealthy: v.optional(v.literal(true)),
})

const PlainObject = v.custom<Record<string, unknown>>(isPlainObject, 'a plain object')

// Only the envelope: the event is delivered as the sending node accepted it from its peer.
const Event = v.looseObject({
  type: Name,
  data: PlainObject,
  metadata: v.optional(v.looseObject({
    source: v.optional(PlainObject),
    event: v.optional(v.looseObject({ id: v.optional(Text), parentId: v.optional(Text) })),
  })),
}) as unknown as v.GenericSchema<HubEvent, HubEvent>

const Message: v.GenericSchema<unknown, ClusterMessage> = v.variant('type', [
  v.object({ type: v.literal('state'), node: Id, seq: Seq, peers: bounded(Peer, MAX_PEERS), hello: v.boolean() }),
  v.object({ type: v.literal('peer'), node: Id, seq: Seq, peer: Peer, reason: v.optional(v.picklist(DEANNOUNCE_REASONS)) }),
  v.object({ type: v.literal('left'), node: Id, seq: Seq, id: Id }),
  v.object({ type: v.literal('heartbeat'), node: Id, seq: Seq }),
  v.object({ type: v.literal('health'), node: Id, id: Id, healthy: v.boolean() }),
  v.object({ type: v.literal('sync'), node: Id }),
  v.object({ type: v.literal('bye'), node: Id }),
  v.object({ type: v.literal('route'), node: Id, to: bounded(Id, MAX_PEERS), event: Event, ack: v.optional(Id) }),
  v.object({ type: v.literal('reply'), node: Id, responder: Id, event: Event }),
  v.object({ type: v.literal('ack'), node: Id, token: Id, delivered: v.pipe(v.number(), v.safeInteger(), v.minValue(0), v.maxValue(MAX_PEERS)) }),
])

/** The one event a node sends in its hub's name: a peer there configured a module here (`publish.ts`). */
const HUB_ROUTED_TYPE = 'module:configure'

/**
 * Why an event a node forwards cannot be one: it forwards what its peers may publish (no
 * reserved type; a reply may be an `error`) with the source it stamped from a module's identity,
 * and in its hub's own name only `module:configure`. Anything else speaks for the hub: forged.
 */
function forgedEvent(message: ClusterMessage): string | undefined {
  if (message.type !== 'route' && message.type !== 'reply')
    return undefined
  const { type, metadata } = message.event
  const hubRouted = message.type === 'route' && type === HUB_ROUTED_TYPE
  if (isReservedEventType(type) && !hubRouted && !(message.type === 'reply' && type === 'error'))
    return `a ${message.type} message with an event of the reserved type ${JSON.stringify(type.slice(0, 40))}`
  const plugin = (metadata?.source as { plugin?: unknown } | undefined)?.plugin
  if (!hubRouted && (plugin === HUB_PLUGIN || (plugin as { id?: unknown } | undefined)?.id === HUB_PLUGIN))
    return `a ${message.type} message with an event in the hub's name`
}

/** The messages that carry a peer's event: only they may hold values that need superjson. */
const carriesEvent = (type: unknown): boolean => type === 'route' || type === 'reply'

/** One message as it travels: superjson text (only a peer's event may hold values that need superjson, a Date, a Map). */
export function encodeClusterMessage(message: ClusterMessage): string {
  return toSuperjson(message, !(message.type === 'route' || message.type === 'reply') || isPlainJson(message.event))
}

/** What one received batch holds: its valid messages, in order, and what was wrong with the rest. */
export interface DecodedBatch {
  messages: ClusterMessage[]
  /** How many entries (or whole batches) were dropped. */
  invalid: number
  /** Why the first dropped one was, for the log. */
  reason?: string
}

/** Decodes and checks one received batch (`[payload, …]`); never throws. */
export function decodeClusterBatch(text: string): DecodedBatch {
  if (text.length > MAX_MESSAGE_CHARS)
    return { messages: [], invalid: 1, reason: `a message of ${text.length} characters` }
  let batch: unknown
  try {
    batch = JSON.parse(text)
  }
  catch {
    return { messages: [], invalid: 1, reason: 'a message that is not JSON' }
  }
  if (!Array.isArray(batch))
    return { messages: [], invalid: 1, reason: 'a message that is not a batch' }
  if (batch.length > MAX_BATCH_MESSAGES)
    return { messages: [], invalid: 1, reason: `a batch of ${batch.length} messages` }
  const decoded: DecodedBatch = { messages: [], invalid: 0 }
  for (const payload of batch) {
    const result = decodeClusterMessage(payload)
    if (typeof result === 'string') {
      decoded.invalid++
      decoded.reason ??= result
    }
    else {
      decoded.messages.push(result)
    }
  }
  return decoded
}

/** One payload of a batch, checked; a string says why it is not a message. */
function decodeClusterMessage(payload: unknown): ClusterMessage | string {
  if (!isPlainObject(payload))
    return 'an entry that is not a superjson payload'
  const { json, meta } = payload
  // Nothing but a peer's event needs superjson's meta: elsewhere it can only be a trick.
  if (meta !== undefined && !(isPlainObject(json) && carriesEvent(json.type)))
    return 'superjson meta outside a routed event'
  let value: unknown
  let plain: boolean
  try {
    ({ value, plain } = fromSuperjson({ json, meta }))
  }
  catch {
    return 'a routed event whose superjson meta does not apply'
  }
  const result = v.safeParse(Message, value)
  if (!result.success) {
    const issue = result.issues[0]
    const path = issue.path?.map(item => String(item.key)).join('.')
    const type = isPlainObject(value) && typeof value.type === 'string' ? JSON.stringify(value.type.slice(0, 40)) : typeof value
    // Forged text goes to the log: cut short, one printable line.
    return `a ${type} message with ${path ? `${path.slice(0, 100)}: ` : ''}${issue.message.slice(0, 200)}`.replace(/[^\x20-\x7E]/g, '?')
  }
  const message = result.output
  const forged = forgedEvent(message)
  if (forged)
    return forged.replace(/[^\x20-\x7E]/g, '?')
  // Keeps the fast path on this node too: its peers' frames are encoded without a walk.
  if (plain && (message.type === 'route' || message.type === 'reply'))
    markPlainJson(message.event)
  return message
}
