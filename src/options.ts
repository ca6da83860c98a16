import type { ConsolaInstance } from 'consola'
import type { Backplane } from './backplane/types.ts'
import type { ShapeLimits } from './core/bounds.ts'
import type { RoutingMiddleware } from './core/middleware.ts'
import type { KnownModule } from './core/module-catalog.ts'
import type { RoutingPolicy } from './core/policy.ts'
import type { Env } from './env-options.ts'
import type { ErrorStage } from './errors.ts'
import type { LogFormat, LogLevel } from './observability/logger.ts'
import process from 'node:process'
import { nanoid } from 'nanoid'
import { resolveKnownModules } from './core/module-catalog.ts'
import { envOptions, invalid, oneOf, positiveInt } from './env-options.ts'
import { createLogger, LOG_FORMATS, LOG_LEVELS } from './observability/logger.ts'

export interface HubOptions {
  /**
   * Names this hub in `metadata.source` of the events it sends.
   * @default env `SERVER_INSTANCE_ID`, else a generated nanoid
   */
  instanceId?: string
  auth?: {
    /**
     * Token(s) peers must present; none = authentication off.
     * @default env `AUTHENTICATION_TOKEN`
     */
    token?: string | string[]
    /**
     * A peer that has not authenticated after this long is closed with 4001 (0 = never).
     * @default 30000
     */
    timeoutMs?: number
    /**
     * Bad tokens a peer may present before it is closed with 4001.
     * @default 3
     */
    maxFailures?: number
  }
  heartbeat?: {
    /**
     * Silence after which a peer is unhealthy; after twice this it is closed with 4000.
     * @default env `HEARTBEAT_TIMEOUT_MS`, else 60000
     */
    readTimeout?: number
    /**
     * The `message` of the hub's heartbeat pongs.
     * @default '💛'
     */
    message?: string
  }
  routing?: {
    policy?: RoutingPolicy
    middleware?: RoutingMiddleware[]
    /**
     * Lets trusted devtools peers skip policy and middleware with `route.bypass: true`.
     * @default true
     */
    allowBypass?: boolean
    /** Tokens that authenticate a peer as trusted devtools (they also authenticate as usual). */
    devtoolsTokens?: string[]
  }
  limits?: {
    /**
     * Largest inbound frame; larger ones close the peer with 1009/4009.
     * @default env `MAX_PAYLOAD_BYTES`, else 1 MiB
     */
    maxPayloadBytes?: number
    /**
     * Outbound bytes a peer may leave unread; past this it is a slow consumer, closed with
     * 1013 and de-announced, so one stuck reader never grows the hub's memory or slows others.
     * @default env `MAX_BUFFERED_BYTES`, else 4 MiB
     */
    maxBufferedBytes?: number
    /**
     * Open sockets (native and Phoenix); past this an upgrade is refused with HTTP 503.
     * @default env `MAX_PEERS`, else 10000
     */
    maxPeers?: number
    /**
     * Sockets one address may hold open without having authenticated; past this an upgrade
     * that brings no token is refused with HTTP 429 (0 = no limit).
     * @default env `MAX_PENDING_PER_ADDRESS`, else 32
     */
    maxPendingPerAddress?: number
    /**
     * Largest frame of a peer that has not authenticated (an authentication frame is tiny);
     * larger ones close it with 1009 before they are even buffered. Raised to
     * `maxPayloadBytes` once it authenticates.
     * @default env `MAX_PENDING_PAYLOAD_BYTES`, else 16 KiB
     */
    maxPendingPayloadBytes?: number
    /**
     * Frames a socket may send per second, on average (0 = no limit). Over it a frame is
     * dropped and answered `rate limited` once; a socket still over it after `rateLimitGraceMs`
     * is closed with 4029.
     * @default env `RATE_LIMIT_EVENTS_PER_SEC`, else 200
     */
    eventsPerSec?: number
    /**
     * Frames a socket may send at once before `eventsPerSec` applies.
     * @default env `RATE_LIMIT_BURST`, else twice `eventsPerSec`
     */
    eventsBurst?: number
    /**
     * Bytes (characters of text frames) a socket may send per second, on average (0 = no
     * limit); its burst is half a second's worth, and at least one `maxPayloadBytes` frame.
     * Bounds what one sender makes the hub write to every reader.
     * @default env `RATE_LIMIT_BYTES_PER_SEC`, else 8 MiB
     */
    bytesPerSec?: number
    /**
     * How long a socket may stay over its rate limit (its frames dropped) before it is closed.
     * @default 1000
     */
    rateLimitGraceMs?: number
    // Shape bounds: what one frame may cost, checked before any recursive work. A frame over
    // one gets `error {message: "limit exceeded: <what>"}` and is dropped; the socket stays open.
    /**
     * Longest module name, plugin id, instance id, version, label key or value, event type,
     * destination string and expression list entry (characters).
     * @default 256
     */
    maxNameLength?: number
    /**
     * Labels one announced identity may carry (plugin and instance labels together).
     * @default 64
     */
    maxLabels?: number
    /**
     * Modules one peer may hold at once (an AIRI extension peer announces several on one
     * socket); one more gets `error {message: "limit exceeded: modules per peer"}`.
     * @default 64
     */
    maxModulesPerPeer?: number
    /**
     * Consumer registrations (`module:consumer:register`) one peer may hold at once; one more
     * gets `error {message: "limit exceeded: consumer registrations"}`.
     * @default 64
     */
    maxConsumersPerPeer?: number
    /**
     * Requests (`route.reply`) one peer may have waiting for a reply at once; one more gets
     * `error {message: "limit exceeded: pending requests"}`.
     * @default 256
     */
    maxPendingRequestsPerPeer?: number
    /**
     * Longest a request waits for its reply; a longer `route.reply.timeoutMs` is cut to this.
     * @default 300000 (5 min)
     */
    maxRequestTimeoutMs?: number
    /**
     * Registry changes the hub keeps by revision, so that a delta peer reconnecting gets only
     * what changed since the revision it holds; an older gap gets the full registry.
     * @default 4096
     */
    registryLogEntries?: number
    /**
     * Destinations one event may list.
     * @default 64
     */
    maxDestinations?: number
    /**
     * How deep `and`/`or` routing expressions may nest.
     * @default 8
     */
    maxExpressionDepth?: number
    /**
     * Routing work one event may ask for: every expression node and list entry counts 1, and
     * every glob counts its length (a glob is matched against each module name).
     * @default 256
     */
    maxRouteItems?: number
    /**
     * How deep objects and arrays may nest in an event (`data`, `metadata`, …): bounded so that
     * encoding it for its recipients can never overflow the stack.
     * @default 64
     */
    maxDataDepth?: number
  }
  logger?: {
    /** @default env `LOG_LEVEL`, else 'log' */
    level?: LogLevel
    /** @default env `LOG_FORMAT`, else 'pretty' */
    format?: LogFormat
  }
  /**
   * Modules the hub knows by name: their own tokens, whether readiness waits for them, the
   * options they are configured with on announce, and labels they always carry.
   * @default []
   */
  modules?: KnownModule[]
  /**
   * How long `hub.ready()` waits for the `required` modules before it rejects naming them.
   * @default env `REQUIRED_TIMEOUT_MS`, else 4000
   */
  requiredTimeoutMs?: number
  /** A backplane to cluster through; wins over `createServer()`'s `redisUrl` (e.g. a memory backplane for hubs in one process). */
  backplane?: Backplane
  cluster?: {
    /**
     * A node not heard from for this long is gone: the others de-announce its modules. Time a
     * node itself did not run (paused, suspended, its event loop blocked) does not count: it
     * resyncs on waking instead of expiring the others.
     * @default env `CLUSTER_NODE_TIMEOUT_MS`, else 10000
     */
    nodeTimeoutMs?: number
    /**
     * How often each node says it is alive; below `nodeTimeoutMs`.
     * @default a fifth of `nodeTimeoutMs`
     */
    heartbeatMs?: number
    /**
     * Prefix of the backplane's channels, so that several clusters can share one Redis.
     * @default 'hub-server'
     */
    prefix?: string
    /**
     * Most other nodes known at once: the messages of a node past it are ignored (counted as
     * `hub_errors_total{reason="backplane_limit"}`) until a known one leaves, so a forged or
     * runaway node id cannot grow this node's tables without end.
     * @default env `CLUSTER_MAX_NODES`, else 256
     */
    maxNodes?: number
    /**
     * Most peers of one other node known at once: past it, that node's new peers are ignored
     * (counted the same way).
     * @default env `CLUSTER_MAX_PEERS_PER_NODE`, else 100000
     */
    maxPeersPerNode?: number
  }
  /** Receives every error the hub handles itself instead of crashing. @default logs it */
  onError?: (error: unknown, context: { stage: ErrorStage, peerId?: string }) => void
  /** Where environment variables are read from. @default process.env */
  env?: Env
}

/** What `createHub()` runs with; read-only: the hub derives what it needs instead of changing it. */
export interface ResolvedHubOptions {
  readonly instanceId: string
  readonly auth: { readonly tokens: string[], readonly timeoutMs: number, readonly maxFailures: number }
  readonly heartbeat: { readonly readTimeout: number, readonly message: string }
  readonly routing: { readonly policy?: RoutingPolicy, readonly middleware: RoutingMiddleware[], readonly allowBypass: boolean, readonly devtoolsTokens: string[] }
  readonly limits: Readonly<ResolvedLimits>
  /** Set when clustered. */
  readonly backplane?: Backplane
  readonly cluster: { readonly nodeTimeoutMs: number, readonly heartbeatMs: number, readonly prefix: string, readonly maxNodes: number, readonly maxPeersPerNode: number }
  readonly modules: readonly KnownModule[]
  readonly requiredTimeoutMs: number
  readonly logger: ConsolaInstance
  readonly onError: (error: unknown, context: { stage: ErrorStage, peerId?: string }) => void
}

/** The resolved `limits`; the shape bounds are what `core/bounds.ts` checks. */
export interface ResolvedLimits extends ShapeLimits {
  maxBufferedBytes: number
  maxPeers: number
  maxPendingPerAddress: number
  maxPendingPayloadBytes: number
  eventsPerSec: number
  eventsBurst: number
  bytesPerSec: number
  bytesBurst: number
  rateLimitGraceMs: number
  maxModulesPerPeer: number
  maxConsumersPerPeer: number
  maxPendingRequestsPerPeer: number
  maxRequestTimeoutMs: number
  registryLogEntries: number
}

export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 60_000
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
export const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024
export const DEFAULT_MAX_PEERS = 10_000
export const DEFAULT_MAX_PENDING_PER_ADDRESS = 32
export const DEFAULT_MAX_PENDING_PAYLOAD_BYTES = 16 * 1024
export const DEFAULT_RATE_LIMIT_EVENTS_PER_SEC = 200
export const DEFAULT_RATE_LIMIT_BYTES_PER_SEC = 8 * 1024 * 1024
export const DEFAULT_RATE_LIMIT_GRACE_MS = 1000
export const DEFAULT_MAX_NAME_LENGTH = 256
export const DEFAULT_MAX_LABELS = 64
export const DEFAULT_MAX_MODULES_PER_PEER = 64
export const DEFAULT_MAX_CONSUMERS_PER_PEER = 64
export const DEFAULT_MAX_PENDING_REQUESTS_PER_PEER = 256
export const DEFAULT_MAX_REQUEST_TIMEOUT_MS = 300_000
export const DEFAULT_REGISTRY_LOG_ENTRIES = 4096
/** How long a request waits for its reply when `route.reply` names no `timeoutMs`. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
export const DEFAULT_MAX_DESTINATIONS = 64
export const DEFAULT_MAX_EXPRESSION_DEPTH = 8
export const DEFAULT_MAX_ROUTE_ITEMS = 256
export const DEFAULT_MAX_DATA_DEPTH = 64
export const DEFAULT_AUTH_TIMEOUT_MS = 30_000
export const DEFAULT_AUTH_MAX_FAILURES = 3
export const DEFAULT_NODE_TIMEOUT_MS = 10_000
export const DEFAULT_CLUSTER_PREFIX = 'hub-server'
export const DEFAULT_CLUSTER_MAX_NODES = 256
export const DEFAULT_CLUSTER_MAX_PEERS_PER_NODE = 100_000
export const DEFAULT_REQUIRED_TIMEOUT_MS = 4000

/** The hub's env-configurable options. */
export const HUB_ENV_OPTIONS = envOptions({
  AUTHENTICATION_TOKEN: { option: 'auth.token', flag: 'token', value: '<token>', default: '', description: 'token peers must present (empty = auth off)' },
  SERVER_INSTANCE_ID: { option: 'instanceId', flag: 'instance-id', value: '<id>', default: '', description: 'the hub\'s metadata.source.instanceId (empty = a generated id)' },
  LOG_LEVEL: { option: 'logger.level', flag: 'log-level', value: '<level>', default: 'log', description: LOG_LEVELS.join(' | ') },
  LOG_FORMAT: { option: 'logger.format', flag: 'log-format', value: '<format>', default: 'pretty', description: LOG_FORMATS.join(' | ') },
  HEARTBEAT_TIMEOUT_MS: { option: 'heartbeat.readTimeout', flag: 'heartbeat-timeout', value: '<ms>', default: String(DEFAULT_HEARTBEAT_TIMEOUT_MS), description: 'silence before a peer is unhealthy; closed at twice this' },
  MAX_PAYLOAD_BYTES: { option: 'limits.maxPayloadBytes', flag: 'max-payload', value: '<bytes>', default: String(DEFAULT_MAX_PAYLOAD_BYTES), description: 'largest inbound frame' },
  MAX_BUFFERED_BYTES: { option: 'limits.maxBufferedBytes', flag: 'max-buffered', value: '<bytes>', default: String(DEFAULT_MAX_BUFFERED_BYTES), description: 'unsent bytes a peer may leave unread before it is closed with 1013' },
  MAX_PEERS: { option: 'limits.maxPeers', flag: 'max-peers', value: '<n>', default: String(DEFAULT_MAX_PEERS), description: 'open sockets; past this an upgrade gets HTTP 503' },
  MAX_PENDING_PER_ADDRESS: { option: 'limits.maxPendingPerAddress', flag: 'max-pending-per-address', value: '<n>', default: String(DEFAULT_MAX_PENDING_PER_ADDRESS), description: 'unauthenticated sockets per client address; past this HTTP 429 (0 = no limit)' },
  MAX_PENDING_PAYLOAD_BYTES: { option: 'limits.maxPendingPayloadBytes', flag: 'max-pending-payload', value: '<bytes>', default: String(DEFAULT_MAX_PENDING_PAYLOAD_BYTES), description: 'largest frame before a peer has authenticated' },
  RATE_LIMIT_EVENTS_PER_SEC: { option: 'limits.eventsPerSec', flag: 'rate-limit', value: '<n>', default: String(DEFAULT_RATE_LIMIT_EVENTS_PER_SEC), description: 'frames a socket may send per second; over it: error, then close 4029 (0 = no limit)' },
  RATE_LIMIT_BURST: { option: 'limits.eventsBurst', flag: 'rate-limit-burst', value: '<n>', default: '', description: 'frames a socket may send at once (empty = twice the rate)' },
  RATE_LIMIT_BYTES_PER_SEC: { option: 'limits.bytesPerSec', flag: 'rate-limit-bytes', value: '<bytes>', default: String(DEFAULT_RATE_LIMIT_BYTES_PER_SEC), description: 'bytes a socket may send per second (0 = no limit)' },
  REQUIRED_TIMEOUT_MS: { option: 'requiredTimeoutMs', flag: 'required-timeout', value: '<ms>', default: String(DEFAULT_REQUIRED_TIMEOUT_MS), description: 'how long start-up waits for the config\'s required modules before it logs the missing ones (and keeps serving)' },
  CLUSTER_NODE_TIMEOUT_MS: { option: 'cluster.nodeTimeoutMs', flag: 'node-timeout', value: '<ms>', default: String(DEFAULT_NODE_TIMEOUT_MS), description: 'a silent node is gone after this; its modules are de-announced' },
  CLUSTER_MAX_NODES: { option: 'cluster.maxNodes', flag: 'cluster-max-nodes', value: '<n>', default: String(DEFAULT_CLUSTER_MAX_NODES), description: 'other nodes known at once; messages of any node past it are ignored' },
  CLUSTER_MAX_PEERS_PER_NODE: { option: 'cluster.maxPeersPerNode', flag: 'cluster-max-peers-per-node', value: '<n>', default: String(DEFAULT_CLUSTER_MAX_PEERS_PER_NODE), description: 'peers of one other node known at once; past it its new peers are ignored' },
})
const ENV = HUB_ENV_OPTIONS

/** The authentication tokens: the explicit option's, else the env variable's (the dashboard falls back on them too). */
export function tokensOf(token: string | string[] | undefined, raw: string | undefined): string[] {
  const tokens = token === undefined ? (raw ? [raw] : []) : [token].flat()
  return tokens.filter(t => t !== '')
}

/** Resolves hub options once: explicit options, then env, then defaults. Throws `HubError('invalid_option')`. */
export function resolveHubOptions(options: HubOptions = {}): ResolvedHubOptions {
  const env = options.env ?? process.env
  const logger = createLogger({
    level: oneOf(ENV.LOG_LEVEL, options.logger?.level, env, LOG_LEVELS, 'log'),
    format: oneOf(ENV.LOG_FORMAT, options.logger?.format, env, LOG_FORMATS, 'pretty'),
  })
  const tokens = tokensOf(options.auth?.token, env.AUTHENTICATION_TOKEN)
  return {
    instanceId: options.instanceId || env.SERVER_INSTANCE_ID || nanoid(),
    auth: {
      tokens,
      timeoutMs: positiveInt('auth.timeoutMs', options.auth?.timeoutMs, env, DEFAULT_AUTH_TIMEOUT_MS, 0),
      maxFailures: positiveInt('auth.maxFailures', options.auth?.maxFailures, env, DEFAULT_AUTH_MAX_FAILURES),
    },
    heartbeat: {
      readTimeout: positiveInt(ENV.HEARTBEAT_TIMEOUT_MS, options.heartbeat?.readTimeout, env, DEFAULT_HEARTBEAT_TIMEOUT_MS),
      message: options.heartbeat?.message ?? '💛',
    },
    routing: {
      policy: options.routing?.policy,
      middleware: options.routing?.middleware ?? [],
      allowBypass: options.routing?.allowBypass ?? true,
      devtoolsTokens: options.routing?.devtoolsTokens ?? [],
    },
    limits: resolveLimits(options.limits, env),
    backplane: options.backplane,
    cluster: resolveClusterOptions(options.cluster, env),
    modules: resolveKnownModules(options.modules, tokens),
    requiredTimeoutMs: positiveInt(ENV.REQUIRED_TIMEOUT_MS, options.requiredTimeoutMs, env, DEFAULT_REQUIRED_TIMEOUT_MS),
    logger,
    onError: options.onError ?? ((error, { stage, peerId }) => logger.error(`[${stage}]${peerId ? ` peer ${peerId}:` : ''}`, error)),
  }
}

function resolveLimits(limits: HubOptions['limits'], env: Env): ResolvedLimits {
  const maxPayloadBytes = positiveInt(ENV.MAX_PAYLOAD_BYTES, limits?.maxPayloadBytes, env, DEFAULT_MAX_PAYLOAD_BYTES)
  const eventsPerSec = positiveInt(ENV.RATE_LIMIT_EVENTS_PER_SEC, limits?.eventsPerSec, env, DEFAULT_RATE_LIMIT_EVENTS_PER_SEC, 0)
  const bytesPerSec = positiveInt(ENV.RATE_LIMIT_BYTES_PER_SEC, limits?.bytesPerSec, env, DEFAULT_RATE_LIMIT_BYTES_PER_SEC, 0)
  return {
    maxPayloadBytes,
    maxBufferedBytes: positiveInt(ENV.MAX_BUFFERED_BYTES, limits?.maxBufferedBytes, env, DEFAULT_MAX_BUFFERED_BYTES),
    maxPeers: positiveInt(ENV.MAX_PEERS, limits?.maxPeers, env, DEFAULT_MAX_PEERS),
    maxPendingPerAddress: positiveInt(ENV.MAX_PENDING_PER_ADDRESS, limits?.maxPendingPerAddress, env, DEFAULT_MAX_PENDING_PER_ADDRESS, 0),
    // Never above the payload limit: a pending peer gets no more than an authenticated one.
    maxPendingPayloadBytes: Math.min(maxPayloadBytes, positiveInt(ENV.MAX_PENDING_PAYLOAD_BYTES, limits?.maxPendingPayloadBytes, env, DEFAULT_MAX_PENDING_PAYLOAD_BYTES)),
    eventsPerSec,
    eventsBurst: positiveInt(ENV.RATE_LIMIT_BURST, limits?.eventsBurst, env, 2 * eventsPerSec, eventsPerSec > 0 ? 1 : 0),
    bytesPerSec,
    // A frame of the largest size must always be able to pass a full bucket.
    bytesBurst: Math.max(maxPayloadBytes, Math.floor(bytesPerSec / 2)),
    rateLimitGraceMs: positiveInt('limits.rateLimitGraceMs', limits?.rateLimitGraceMs, env, DEFAULT_RATE_LIMIT_GRACE_MS, 0),
    maxNameLength: positiveInt('limits.maxNameLength', limits?.maxNameLength, env, DEFAULT_MAX_NAME_LENGTH),
    maxLabels: positiveInt('limits.maxLabels', limits?.maxLabels, env, DEFAULT_MAX_LABELS, 0),
    maxModulesPerPeer: positiveInt('limits.maxModulesPerPeer', limits?.maxModulesPerPeer, env, DEFAULT_MAX_MODULES_PER_PEER),
    maxConsumersPerPeer: positiveInt('limits.maxConsumersPerPeer', limits?.maxConsumersPerPeer, env, DEFAULT_MAX_CONSUMERS_PER_PEER),
    maxPendingRequestsPerPeer: positiveInt('limits.maxPendingRequestsPerPeer', limits?.maxPendingRequestsPerPeer, env, DEFAULT_MAX_PENDING_REQUESTS_PER_PEER),
    maxRequestTimeoutMs: positiveInt('limits.maxRequestTimeoutMs', limits?.maxRequestTimeoutMs, env, DEFAULT_MAX_REQUEST_TIMEOUT_MS),
    registryLogEntries: positiveInt('limits.registryLogEntries', limits?.registryLogEntries, env, DEFAULT_REGISTRY_LOG_ENTRIES),
    maxDestinations: positiveInt('limits.maxDestinations', limits?.maxDestinations, env, DEFAULT_MAX_DESTINATIONS, 0),
    maxExpressionDepth: positiveInt('limits.maxExpressionDepth', limits?.maxExpressionDepth, env, DEFAULT_MAX_EXPRESSION_DEPTH),
    maxRouteItems: positiveInt('limits.maxRouteItems', limits?.maxRouteItems, env, DEFAULT_MAX_ROUTE_ITEMS),
    maxDataDepth: positiveInt('limits.maxDataDepth', limits?.maxDataDepth, env, DEFAULT_MAX_DATA_DEPTH, 4),
  }
}

function resolveClusterOptions(cluster: HubOptions['cluster'], env: Env): ResolvedHubOptions['cluster'] {
  const nodeTimeoutMs = positiveInt(ENV.CLUSTER_NODE_TIMEOUT_MS, cluster?.nodeTimeoutMs, env, DEFAULT_NODE_TIMEOUT_MS, 2)
  const heartbeatMs = positiveInt('cluster.heartbeatMs', cluster?.heartbeatMs, env, Math.max(1, Math.floor(nodeTimeoutMs / 5)))
  if (heartbeatMs >= nodeTimeoutMs)
    invalid('cluster.heartbeatMs', heartbeatMs, `less than the node timeout (${nodeTimeoutMs})`)
  return {
    nodeTimeoutMs,
    heartbeatMs,
    prefix: cluster?.prefix || DEFAULT_CLUSTER_PREFIX,
    maxNodes: positiveInt(ENV.CLUSTER_MAX_NODES, cluster?.maxNodes, env, DEFAULT_CLUSTER_MAX_NODES),
    maxPeersPerNode: positiveInt(ENV.CLUSTER_MAX_PEERS_PER_NODE, cluster?.maxPeersPerNode, env, DEFAULT_CLUSTER_MAX_PEERS_PER_NODE),
  }
}
