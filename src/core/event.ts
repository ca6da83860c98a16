import type { HubEvent, Identity, WireIdentity } from '../types.ts'

// Events known to hold only plain JSON values, so codecs may skip superjson's walk.
const plainEvents = new WeakSet<HubEvent>()

export function markPlainJson<T extends HubEvent>(event: T): T {
  plainEvents.add(event)
  return event
}

export function isPlainJson(event: HubEvent): boolean {
  return plainEvents.has(event)
}

export function toWireIdentity(identity: Identity): WireIdentity {
  const wire: WireIdentity = { plugin: identity.pluginId, instanceId: identity.instanceId, labels: identity.labels }
  if (identity.version !== undefined)
    wire.version = identity.version
  return wire
}
