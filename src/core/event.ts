import type { AnnouncedIdentity, HubEvent, Identity, StampedSource, WireIdentity } from '../types.ts'
import superjson from 'superjson'

/**
 * Event types only the hub sends: a peer that could send them would speak for the hub
 * (forge registry changes, errors, acks, configuration, authentication results).
 */
const RESERVED_TYPES = new Set([
  'error',
  'event:ack',
  'module:authenticated',
  'module:announced',
  'module:de-announced',
  'module:configure',
  'extension:module:announced',
  'extension:module:de-announced',
  'extension:authenticated',
  'extension:announced',
  'peer:authenticated',
  'transport:connection:heartbeat',
  // Consumer registrations are for the hub; they are never relayed.
  'module:consumer:register',
  'module:consumer:unregister',
])

/** Whether peers may not send events of this type (`registry:*` included). */
export function isReservedEventType(type: string): boolean {
  return RESERVED_TYPES.has(type) || type.startsWith('registry:') || type.startsWith('phx_')
}

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

/** The value of a parsed superjson payload; without `meta` it is plain JSON, taken as is (no walk, no copy). Throws on a bad `meta`. */
export function fromSuperjson(payload: { json: unknown, meta?: unknown }): { value: unknown, plain: boolean } {
  return payload.meta === undefined ? { value: payload.json, plain: true } : { value: superjson.deserialize(payload as never), plain: false }
}

/** superjson references one frame may carry; real clients send a few at most. */
export const MAX_SUPERJSON_REFERENCES = 64

function referencePaths(references: unknown): unknown[] {
  const groups = Array.isArray(references)
    ? [references[0], ...Object.entries((references[1] ?? {}) as object).flat()]
    : Object.entries((references ?? {}) as object).flat()
  return groups.flat()
}

function isTransform(type: unknown): boolean {
  return typeof type === 'string' || (Array.isArray(type) && type.length === 2 && type.every(part => typeof part === 'string'))
}

/**
 * What superjson would choke on in a frame's `meta`, checked before it walks it:
 * - `malformed`: a `values` tree that is not `{path: node}` / `[transform, {path: node}?]`
 *   all the way down; superjson walks anything else (a string, char by char) until the stack
 *   overflows, quadratically in memory.
 * - `superjson paths`: superjson resolves every path from the root, and a step through a Map
 *   or Set walks it item by item, so many paths through one that is already built are
 *   quadratic. What superjson emits never does that for `values` (a container's children are
 *   annotated under it, before it is built), and rarely has references: refuse paths through a
 *   Map or Set other than from under its own annotation,
 * - `superjson references`: and more than a few references.
 */
export function checkSuperjsonMeta(meta: unknown): 'malformed' | 'superjson references' | 'superjson paths' | undefined {
  if (typeof meta !== 'object' || meta === null)
    return undefined
  const { values, referentialEqualities } = meta as { values?: unknown, referentialEqualities?: unknown }
  const references = referentialEqualities === undefined ? [] : referencePaths(referentialEqualities)
  if (references.length > MAX_SUPERJSON_REFERENCES)
    return 'superjson references'
  const containers = new Set<string>()
  const paths: Array<{ path: string, under: ReadonlySet<string> }> = []
  const pending: Array<{ tree: unknown, origin: string, under: ReadonlySet<string> }> = values === undefined ? [] : [{ tree: values, origin: '', under: new Set() }]
  while (pending.length > 0) {
    const { tree, origin, under } = pending.pop()!
    if (typeof tree !== 'object' || tree === null)
      return 'malformed'
    if (Array.isArray(tree)) {
      const [kind, children] = tree
      if (tree.length > 2 || !isTransform(kind))
        return 'malformed'
      const inside = kind === 'set' || kind === 'map' ? new Set([...under, origin]) : under
      if (inside !== under)
        containers.add(origin)
      if (children !== undefined) {
        if (typeof children !== 'object' || children === null || Array.isArray(children))
          return 'malformed'
        pending.push({ tree: children, origin, under: inside })
      }
      continue
    }
    for (const [key, subtree] of Object.entries(tree)) {
      const path = origin === '' ? key : `${origin}.${key}`
      paths.push({ path, under })
      pending.push({ tree: subtree, origin: path, under })
    }
  }
  if (containers.size === 0)
    return undefined
  const through = (path: string, under: ReadonlySet<string>): boolean => {
    for (let dot = path.indexOf('.'); dot !== -1; dot = path.indexOf('.', dot + 1)) {
      const prefix = path.slice(0, dot)
      if (containers.has(prefix) && !under.has(prefix))
        return true
    }
    return false
  }
  const none: ReadonlySet<string> = new Set()
  if (paths.some(({ path, under }) => through(path, under)) || references.some(path => typeof path === 'string' && through(path, none)))
    return 'superjson paths'
  return undefined
}

export function toWireIdentity(identity: Identity): WireIdentity {
  const wire: WireIdentity = { plugin: identity.pluginId, instanceId: identity.instanceId, labels: identity.labels }
  if (identity.version !== undefined)
    wire.version = identity.version
  return wire
}

/** The identity in the shape its module announced it: a later generation's as sent, else the 0.8.4 flat one. */
export function announcedIdentity(identity: Identity): AnnouncedIdentity {
  return identity.announced ?? toWireIdentity(identity)
}

/**
 * The sender of a routed event, as the hub stamps it: the announced identity's own fields
 * with every generation's beside them where they do not collide (see `StampedSource`).
 * `labels` are the merged ones routing uses.
 */
export function stampedSource(identity: Identity): StampedSource {
  const { pluginId, instanceId, version, labels, announced } = identity
  const owner = version === undefined ? { id: pluginId } : { id: pluginId, version }
  return {
    ...announced,
    id: instanceId,
    instanceId,
    kind: 'plugin',
    plugin: announced && 'plugin' in announced ? announced.plugin : owner,
    extension: announced && 'extension' in announced ? announced.extension : owner,
    labels,
  }
}

/** `build`, once per identity: identities are immutable (a re-announce makes a new one), so each wire form is built once. */
export function perIdentity<T>(build: (identity: Identity) => T): (identity: Identity) => T {
  const built = new WeakMap<Identity, T>()
  return (identity) => {
    let value = built.get(identity)
    if (value === undefined)
      built.set(identity, value = build(identity))
    return value
  }
}
