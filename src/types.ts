import type { HubError } from './errors.ts'

/** A module's identity, normalised from whichever shape the client sent. */
export interface Identity {
  pluginId: string
  instanceId: string
  version?: string
  /** Plugin labels merged under instance labels. */
  labels: Record<string, string>
  /**
   * The identity as the module announced it, when it used a later AIRI generation's shape
   * (v0.9 nested, HEAD extension); absent for the 0.8.4 shape or none, whose wire form is flat.
   */
  announced?: NestedIdentity | ExtensionModuleIdentity
}

/** One announced module in the registry, keyed by (name, index). */
export interface ModuleEntry {
  name: string
  index?: number
  identity: Identity
  /** The session that announced it. */
  peerId: string
  /** The hub node that peer is connected to, when clustered and it is not this one. */
  node?: string
}

/** Identity as it travels on the wire (the `@proj-airi/server-sdk@0.8.4` shape). */
export interface WireIdentity {
  plugin: string
  instanceId: string
  version?: string
  labels?: Record<string, string>
}

/** AIRI v0.9-0.10 identity. */
export interface NestedIdentity {
  id: string
  kind: 'plugin'
  plugin: { id: string, version?: string, labels?: Record<string, string> }
  labels?: Record<string, string>
}

/** AIRI v0.11+ ("extension" generation) module identity. */
export interface ExtensionModuleIdentity {
  id: string
  extension: { id: string, version?: string, labels?: Record<string, string> }
  labels?: Record<string, string>
}

/** An identity in one of the shapes the three AIRI generations announce. */
export type AnnouncedIdentity = WireIdentity | NestedIdentity | ExtensionModuleIdentity

/**
 * A sender as the hub stamps it on routed events: every generation's fields at once (HEAD
 * reads `id` and `extension.id`, v0.9 `plugin.id`, 0.8.4 `plugin` and `instanceId`). `plugin`
 * is the one field that collides (a string in 0.8.4): here it is the v0.9/HEAD object, and
 * 0.8.4 peers get the flat `WireIdentity` instead (the AIRI gateway encodes per generation).
 */
export interface StampedSource {
  id: string
  instanceId: string
  kind: 'plugin'
  plugin: { id: string, version?: string }
  extension: { id: string, version?: string, labels?: Record<string, string> }
  labels: Record<string, string>
}

export type RouteExpression
  = | { type: 'and', all: RouteExpression[] }
    | { type: 'or', any: RouteExpression[] }
    | { type: 'glob', glob: string, inverted?: boolean }
    | { type: 'ids', ids: string[], inverted?: boolean }
    | { type: 'plugin', plugins: string[], inverted?: boolean }
    | { type: 'instance', instances: string[], inverted?: boolean }
    | { type: 'label', selectors: string[], inverted?: boolean }
    | { type: 'module', modules: string[], inverted?: boolean }
    | { type: 'source', sources: string[], inverted?: boolean }

export type Destination = string | RouteExpression

export type ConsumerMode = 'consumer' | 'consumer-group'
export type ConsumerSelection = 'first' | 'priority' | 'round-robin' | 'sticky'

/** `route.delivery`: deliver to exactly one registered consumer of the event. */
export interface Delivery {
  mode?: ConsumerMode
  group?: string
  selection?: ConsumerSelection
  stickyKey?: string
  required?: boolean
}

export interface RouteConfig {
  destinations?: Destination[]
  bypass?: boolean
  /** Deliver to exactly one registered consumer instead (`core/consumers.ts`). */
  delivery?: Delivery
  /** A request: delivered to exactly one responder, whose answer (`parentId` = this event's id) comes back to the sender only (`core/requests.ts`). */
  reply?: true | { timeoutMs?: number }
  /** A delivery receipt: the sender gets `event:ack {delivered}` counting recipients on every node. */
  ack?: boolean
}

export interface EventMetadata {
  /** Hub-stamped: a `StampedSource` for routed events, the hub's own `WireIdentity` for its events. */
  source?: WireIdentity | StampedSource
  event?: { id?: string, parentId?: string }
}

/** One event as the hub core sees it, whatever protocol carried it. */
export interface HubEvent {
  type: string
  data: Record<string, unknown>
  metadata?: EventMetadata
  route?: RouteConfig
}

/**
 * Why a peer's socket is closed (an entry of `CLOSE`, core/close.ts): the code and reason on
 * the wire, and the reason its modules are de-announced with when not `connection closed`.
 */
export interface Close {
  readonly code: number
  readonly reason: string
  readonly deannounce?: DeannounceReason
}

/** Turns an event into the text frame of one wire protocol; the router calls it once per protocol per event. */
export interface EventEncoder {
  encode: (event: HubEvent) => string
  /**
   * The frame depends on the event alone, never on a socket's state: the hub may keep it and
   * send it again for the same event (a registry sync of one revision, turn after turn).
   */
  readonly pure?: boolean
}

/**
 * The port a protocol edge gives the core for one peer. The core never sees a socket:
 * it sends encoded frames and asks for closes through this.
 */
export interface Connection {
  /**
   * Encodes events for this peer; peers sharing an encoder share one encoded frame. A gateway
   * may switch it once the peer shows which generation of its protocol it speaks.
   */
  encoder: EventEncoder
  /** The gateway serving this peer (its `Gateway.name`), for views that show peers by protocol. */
  readonly protocol?: string
  /** Queues a frame; returns the bytes earlier sends left waiting for this peer (0 if unknown). */
  send: (frame: string) => number
  /** The bytes waiting for this peer now (0 if unknown). */
  buffered?: () => number
  close: (close: Close) => void
  /**
   * Reports a failure that came after the call that caused it (a required consumer missing, an
   * event undeliverable), answering the peer's event `parentId`; the gateway writes its own form.
   */
  fail: (error: HubError, parentId?: string) => void
  /** Probe a silent peer (a native ping); its answer counts as liveness. */
  ping?: () => void
  /**
   * Takes the reply to this peer's request `requestId` in the gateway's own form (a Phoenix
   * `phx_reply`); without it, the reply is delivered as any event.
   */
  reply?: (event: HubEvent, requestId: string) => void
  /** Told of each request delivered to this peer, so that a gateway can correlate a reply made in its own terms (Atomemo's `request_id`). */
  requested?: (event: HubEvent) => void
}

/** What middleware and policy may know about a peer. */
export interface PeerInfo {
  readonly id: string
  readonly authenticated: boolean
  /** The peer's first module still announced (policy judges the peer by it). */
  readonly module?: ModuleEntry
  /** Every module the peer announced, oldest first (an AIRI extension peer holds several). */
  readonly modules?: readonly ModuleEntry[]
  /** Other ids the peer answers to in `peer:<id>` and `{type:'ids'}` destinations (AIRI `peer:authenticate {peerId}`). */
  readonly aliases?: ReadonlySet<string>
  /**
   * The peer's own identity, apart from its modules (an AIRI extension peer's
   * `extension:authenticate` / `extension:announce`: plugin = the extension id, its labels).
   * While the peer has no modules, destinations, policy and its stamped source go by it.
   */
  readonly identity?: Identity
  /** The gateway serving the peer (`Connection.protocol`), when known. */
  readonly protocol?: string
}

/** Why a module left the registry, as `registry:modules:deannounced` and the backplane carry it. */
export type DeannounceReason = 'connection closed' | 'heartbeat expired' | 'server shutdown' | 're-announcing'
