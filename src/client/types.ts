import type { ReconnectOptions } from './backoff.ts'
import type { CloseInfo, HeartbeatOptions, ReconnectInfo } from './connection.ts'
import type { QueueOptions } from './outbox.ts'
import type { ModuleEntry, ModulesChange } from './registry-view.ts'
import type { WebSocketConstructor } from './socket.ts'

/** The module this client announces. */
export interface ClientModule {
  /** The module name; with `index`, the key others address it by (`module:<name>`). */
  name: string
  /** Several instances of one module are numbered by `index`. */
  index?: number
  /**
   * The identity announced, in any shape the hub accepts (AIRI 0.8.4 `{plugin, instanceId}`,
   * v0.9 `{id, kind, plugin: {id}}`, HEAD `{id, extension: {id}}`).
   * @default `{ plugin: name, instanceId: <name>-<random, fixed for this client>, labels }`
   */
  identity?: Record<string, unknown>
  /** Labels of the default identity (routing by `label:` selectors, policy). */
  labels?: Record<string, string>
}

/** What `createClient` takes. */
export interface ClientOptions {
  /**
   * The hub's native endpoint, e.g. `ws://localhost:6121/ws`; with several (the nodes of a
   * cluster), each reconnect tries the next.
   */
  url: string | readonly string[]
  /** The hub's token or a module token; sent in the first frame (`module:authenticate`), never in the URL. */
  token?: string
  /** The module to announce; without one the client only listens, sends and asks. */
  module?: ClientModule
  /**
   * The WebSocket constructor: pass `WebSocket` from `ws` in Node 20.
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor
  /**
   * `delta`: a live `client.modules`, kept by batched, revisioned deltas and recovered by revision
   * after a reconnect (a hub without the capability sends AIRI's per-change events, which work too).
   * `none`: no registry traffic at all (`client.modules` stays empty), for bots that do not need it.
   * @default 'delta'
   */
  registry?: 'delta' | 'none'
  /** Liveness: pings and the silence after which the connection is dropped. */
  heartbeat?: HeartbeatOptions
  /**
   * Reconnect backoff, or `false` to never reconnect.
   * @default { initialDelayMs: 1000, maxDelayMs: 30000, factor: 2, jitter: 0.5, stableAfterMs: 10000 }
   */
  reconnect?: ReconnectOptions | false
  /** Calls made while disconnected wait here, bounded. */
  queue?: QueueOptions
  /**
   * How long `request` waits for a reply unless it says otherwise; also how long `emit` waits for an ack.
   * @default 30000
   */
  requestTimeoutMs?: number
}

/** `connecting` (first socket), `open` (authenticated and announced), `reconnecting` (waiting or retrying), `closed` (for good). */
export type ClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** Where an event goes: destination strings (`plugin:x`, `module:x`, `label:k=v`, globs, …) or expressions, as in docs/protocol.md §7.1. */
export type Destinations = string | Array<string | Record<string, unknown>>

/** An event as a handler receives it. */
export interface ReceivedEvent<D = Record<string, unknown>> {
  /** The event's type, as given to `on`. */
  type: string
  /** The event's data. */
  data: D
  /** The sender as the hub stamped it, in the shape of the generation it announced with. */
  source?: Record<string, unknown>
  /** The sender's plugin id and instance id, read from `source` whatever its shape. */
  from?: { plugin: string, instance: string }
  /** The event's id (`metadata.event.id`). */
  id?: string
  /** The id of the event this one answers or follows, when the sender gave one. */
  parentId?: string
}

/** Event types and their data; `createClient<MyEvents>()` types `on`, `emit`, `request` and `respond`. */
export type EventMap = Record<string, any>

/** Handles a routed event: its data, and the event with its sender. It may be async; what it throws or rejects with goes to `onError`. */
export type EventHandler<D> = (data: D, event: ReceivedEvent<D>) => void
/** Answers a request; what it returns (or resolves to) is the reply's data, what it throws an error reply. */
export type RequestHandler<D> = (data: D, event: ReceivedEvent<D>) => Record<string, unknown> | Promise<Record<string, unknown>>

/** How `emit` sends. */
export interface EmitOptions {
  /** Destinations; none = every other peer. */
  to?: Destinations
  /** Ask the hub for a receipt: `emit` then resolves to `{delivered}`, the peers reached on every node. */
  ack?: boolean
}

/** Where `request` asks, and how long it waits. */
export interface RequestOptions {
  /** Destinations; without them the request goes to the one consumer of its type (a peer that `respond`s to it). */
  to?: Destinations
  /** How long the hub waits for the reply (at most its `limits.maxRequestTimeoutMs`). @default requestTimeoutMs */
  timeoutMs?: number
}

/** A connected hub client. Every listener method returns a function that removes the listener. */
export interface HubClient<E extends EventMap = EventMap> {
  /** Where the connection stands, for a UI. */
  readonly status: ClientStatus
  /** The hub's registry (every node's modules), by `moduleKey` (`name[#index][@peer]`); empty with `registry: 'none'`. */
  readonly modules: ReadonlyMap<string, ModuleEntry>
  /** The first module in `modules` of that name (and index), whichever peer holds it. */
  find: (name: string, index?: number) => ModuleEntry | undefined
  /** Handles events of one type routed to this client (not requests: see `respond`). */
  on: <K extends keyof E & string>(type: K, handler: EventHandler<E[K]>) => () => void
  /** Removes a handler given to `on`. */
  off: <K extends keyof E & string>(type: K, handler: EventHandler<E[K]>) => void
  /** Sends an event; resolves once sent (`{}`), or with `ack` to `{delivered}`. Waits (bounded) while disconnected. */
  emit: <K extends keyof E & string>(type: K, data: E[K], options?: EmitOptions) => Promise<{ delivered?: number }>
  /** Sends a request to one responder; resolves to the reply's data, rejects with a `ClientError` (`no_responder`, `timeout`, `responder_gone`, `error_reply`, `disconnected`, …). */
  request: <R = Record<string, unknown>, K extends keyof E & string = keyof E & string>(type: K, data: E[K], options?: RequestOptions) => Promise<R>
  /** Answers requests of one type, and registers as its consumer so that requests without `to` find this client. */
  respond: <K extends keyof E & string>(type: K, handler: RequestHandler<E[K]>) => () => void
  /** Called with what changed each time the view changes. */
  onModules: (listener: (change: ModulesChange) => void) => () => void
  /** Called each time the client is authenticated and announced (`reconnected` after the first time). */
  onOpen: (listener: (info: { reconnected: boolean }) => void) => () => void
  /** Called each time a connection ends. */
  onClose: (listener: (info: CloseInfo) => void) => () => void
  /** Called with errors no call waits for (a refused token or announce, a hub error about an event, what a handler or another listener threw or rejected with). */
  onError: (listener: (error: Error) => void) => () => void
  /** Called when a reconnect attempt is scheduled. */
  onReconnect: (listener: (info: ReconnectInfo) => void) => () => void
  /** Closes for good: waiting calls reject with `closed`. */
  close: () => void
}
