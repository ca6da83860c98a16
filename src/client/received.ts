import type { ReceivedEvent } from './types.ts'
import type { WireEvent } from './wire.ts'

function idOf(value: unknown): string | undefined {
  if (typeof value === 'string')
    return value
  const id = value !== null && typeof value === 'object' ? (value as { id?: unknown }).id : undefined
  return typeof id === 'string' ? id : undefined
}

/** Plugin and instance id of a stamped source: 0.8.4 `{plugin, instanceId}`, later `{id, plugin: {id}, extension: {id}}`. */
function senderOf(source: Record<string, unknown> | undefined): ReceivedEvent['from'] {
  const plugin = idOf(source?.plugin) ?? idOf(source?.extension)
  const instance = idOf(source?.instanceId) ?? idOf(source?.id)
  return plugin !== undefined && instance !== undefined ? { plugin, instance } : undefined
}

/** What a handler gets of a routed event. */
export function received<D>(event: WireEvent): ReceivedEvent<D> {
  const source = event.metadata?.source
  return { type: event.type, data: event.data as D, source, from: senderOf(source), id: event.metadata?.event?.id, parentId: event.metadata?.event?.parentId }
}
