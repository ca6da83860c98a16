import type { HubEvent, Identity, WireIdentity } from '../types.ts'
import superjson from 'superjson'

// Events known to hold only plain JSON values, so codecs may skip superjson's walk.
const plainEvents = new WeakSet<HubEvent>()

export function markPlainJson<T extends HubEvent>(event: T): T {
  plainEvents.add(event)
  return event
}

export function isPlainJson(event: HubEvent): boolean {
  return plainEvents.has(event)
}

/** superjson text of `value`; a `plain` one skips superjson's walk: `{"json": …}` is exactly what it would produce. */
export function toSuperjson(value: unknown, plain: boolean): string {
  return plain ? `{"json":${JSON.stringify(value)}}` : superjson.stringify(value)
}

/** The value of a parsed superjson payload; without `meta` it is plain JSON, taken as is (no walk, no copy). */
export function fromSuperjson(payload: { json: unknown, meta?: unknown }): { value: unknown, plain: boolean } {
  return payload.meta === undefined ? { value: payload.json, plain: true } : { value: superjson.deserialize(payload as never), plain: false }
}

export function toWireIdentity(identity: Identity): WireIdentity {
  const wire: WireIdentity = { plugin: identity.pluginId, instanceId: identity.instanceId, labels: identity.labels }
  if (identity.version !== undefined)
    wire.version = identity.version
  return wire
}
