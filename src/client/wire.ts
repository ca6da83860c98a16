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

/** A module's key: its owning peer (the delta capability names it; two peers may hold modules of one name), name and index. */
const Key = { peer: v.optional(v.string()), name: v.pipe(v.string(), v.minLength(1)), index: v.optional(v.number()) }

/** A module as the hub's registry traffic carries it. */
export const WireModule = v.object({
  ...Key,
  identity: v.optional(AnObject),
  healthy: v.optional(v.boolean()),
})

/** `registry:modules:sync`: AIRI's (modules only) or the delta capability's (with epoch and revision). */
export const Sync = v.object({
  modules: v.array(WireModule),
  epoch: v.optional(v.string()),
  revision: v.optional(v.number()),
})

/** `registry:modules:delta`, applied on top of revision `from`: removed, then added, then health. */
export const Delta = v.object({
  epoch: v.string(),
  revision: v.number(),
  from: v.number(),
  added: v.array(WireModule),
  removed: v.array(v.object(Key)),
  health: v.array(v.object({ ...Key, healthy: v.boolean() })),
})

/** The data of a `module:announced`, `module:de-announced` or `registry:modules:health:*` event. */
export const ModuleChange = WireModule
