import * as v from 'valibot'

/** An event as it travels: the hub's native (AIRI) envelope. */
export interface WireEvent {
  type: string
  data: Record<string, unknown>
  metadata?: { source?: Record<string, unknown>, event?: { id?: string, parentId?: string } }
  route?: Record<string, unknown>
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * An object, checked without walking (or copying) its keys: every client validates every
 * registry entry it receives, and `v.record` would walk each identity again.
 */
const AnObject = v.custom<Record<string, unknown>>(isObject)

const Envelope = v.object({
  type: v.pipe(v.string(), v.minLength(1)),
  data: AnObject,
  metadata: v.optional(v.object({
    source: v.optional(AnObject),
    event: v.optional(v.object({ id: v.optional(v.string()), parentId: v.optional(v.string()) })),
  })),
  route: v.optional(AnObject),
})

/** Reads one text frame: the hub sends superjson (`{json: event}`), which plain JSON reads as its `json`; anything else is dropped. */
export function decodeFrame(text: string): WireEvent | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  }
  catch {
    return undefined
  }
  const event = isObject(parsed) && 'json' in parsed && !('type' in parsed) ? parsed.json : parsed
  const result = v.safeParse(Envelope, event)
  return result.success ? result.output as WireEvent : undefined
}

/** One frame of plain JSON (the hub reads plain JSON as well as superjson). */
export function encodeFrame(event: WireEvent): string {
  return JSON.stringify(event)
}

/** The text of an `error {message}` event; a message that is no string (a hostile hub) is not read. */
export function errorMessage(event: WireEvent): string {
  return typeof event.data.message === 'string' ? event.data.message : 'error without a message'
}

/** The hub's own events name it as their source plugin. */
export const HUB_PLUGIN = 'hub-server'

/** True when the event comes from the hub itself, not from a peer. */
export function fromHub(event: WireEvent): boolean {
  return event.metadata?.source?.plugin === HUB_PLUGIN
}

/** Event ids unique per client: a random prefix and a counter (no `crypto`, which pages outside secure contexts lack). */
export function createIds(): () => string {
  const prefix = Math.random().toString(36).slice(2, 10)
  let next = 0
  return () => `${prefix}-${(next++).toString(36)}`
}

/** A module as the hub's registry traffic carries it. */
export interface WireModuleEntry {
  /** Its owning peer: the delta capability names it (two peers may hold modules of one name). */
  peer?: string
  name: string
  index?: number
  identity?: Record<string, unknown>
  healthy?: boolean
}
type WireKey = Pick<WireModuleEntry, 'peer' | 'name' | 'index'>

// Checked in place, not by `v.object`: a storm hands every client every entry of the registry,
// and `v.object` would copy each one (half the garbage a client makes in a storm).
function isKey(value: unknown): value is WireKey {
  return isObject(value)
    && (value.peer === undefined || typeof value.peer === 'string')
    && typeof value.name === 'string' && value.name.length > 0
    && (value.index === undefined || typeof value.index === 'number')
}
function isWireModule(value: unknown): value is WireModuleEntry {
  if (!isKey(value))
    return false
  const { identity, healthy } = value as Record<string, unknown>
  return (identity === undefined || isObject(identity)) && (healthy === undefined || typeof healthy === 'boolean')
}
function isHealth(value: unknown): value is WireKey & { healthy: boolean } {
  return isKey(value) && typeof (value as { healthy?: unknown }).healthy === 'boolean'
}
/** An array whose every item passes `check`, validated without copying it. */
function arrayOf<T>(check: (value: unknown) => value is T): v.CustomSchema<T[], undefined> {
  return v.custom<T[]>(value => Array.isArray(value) && value.every(check))
}

/** `registry:modules:sync`: AIRI's (modules only) or the delta capability's (with epoch and revision). */
export const Sync = v.object({
  modules: arrayOf(isWireModule),
  epoch: v.optional(v.string()),
  revision: v.optional(v.number()),
})

/** `registry:modules:delta`, applied on top of revision `from`: removed, then added, then health. */
export const Delta = v.object({
  epoch: v.string(),
  revision: v.number(),
  from: v.number(),
  added: arrayOf(isWireModule),
  removed: arrayOf(isKey),
  health: arrayOf(isHealth),
})

/** The data of a `module:announced`, `module:de-announced` or `registry:modules:health:*` event. */
export const ModuleChange = v.custom<WireModuleEntry>(isWireModule)
