import type { ConsolaInstance } from 'consola'
import type { Backplane } from './backplane/types.ts'
import type { ShapeLimits } from './core/bounds.ts'
import type { RoutingMiddleware } from './core/middleware.ts'
import type { RoutingPolicy } from './core/policy.ts'
import type { ErrorStage } from './errors.ts'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import process from 'node:process'
import { parseEnv } from 'node:util'
import { nanoid } from 'nanoid'
import { HubError } from './errors.ts'
import { createLogger } from './observability/logger.ts'
import { normalizeOrigin } from './request-guard.ts'

export type LogLevel = 'silent' | 'error' | 'warn' | 'log' | 'info' | 'debug' | 'trace'
export type LogFormat = 'pretty' | 'json'
export type Env = Record<string, string | undefined>

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
  /**
   * Behind a reverse proxy: a peer's address is the last one in `X-Forwarded-For` (the one
   * the proxy added), not the proxy's. Only set it when every connection comes through the proxy.
   * @default env `TRUST_PROXY`, else false
   */
  trustProxy?: boolean
  phoenix?: {
    /**
     * Endpoints of the Phoenix Channels gateway; each is also served with the `/websocket`
     * suffix the `phoenix` client appends. `[]` turns the gateway off.
     * @default ['/socket', '/debug_socket', '/release_socket', '/plugin_socket']
     */
    paths?: string[]
    /**
     * Topic prefixes a channel may join as `<prefix>:<module name>`.
     * @default ['plugin', 'plugins', 'debug_plugin', 'release_plugin']
     */
    topics?: string[]
    /**
     * Channels one socket may have joined at once; a join past this is answered
     * `{status: "error", response: {reason: "too many channels"}}`.
     * @default env `PHOENIX_MAX_CHANNELS`, else 100
     */
    maxChannels?: number
  }
  http?: {
    /**
     * Web origins whose pages may open the WebSocket endpoints and call the ops endpoints,
     * besides the hub's own origin (the request's `Host`) and localhost origins (http or https
     * on localhost, *.localhost, 127.0.0.0/8 or [::1], any port). `'*'` = any. A request without
     * an `Origin` header (not from a browser page) is never refused for it. A foreign origin
     * is answered 403.
     * @default env `ALLOWED_ORIGINS` (comma-separated), else none
     */
    allowedOrigins?: string[]
    /**
     * `Host` names the hub answers besides loopback ones (localhost, *.localhost, 127.0.0.0/8,
     * [::1]); `.example.com` also allows its subdomains, `'*'` turns the check off. Checked when
     * set, and when auth is off and `listenHub` binds a loopback address: a DNS-rebinding page,
     * which reaches 127.0.0.1 under its own name, is answered 421.
     * @default env `ALLOWED_HOSTS` (comma-separated), else none
     */
    allowedHosts?: string[]
  }
  metrics?: {
    /**
     * Serve `GET /metrics` (Prometheus text format).
     * @default env `METRICS_ENABLED`, else true
     */
    enabled?: boolean
    /**
     * Bearer token `/metrics` requires; none = open.
     * @default env `METRICS_TOKEN`
     */
    token?: string
    /**
     * Distinct event types labelled by name (built-in types aside); the rest count as `other`.
     * @default 50
     */
    maxEventTypes?: number
  }
  logger?: {
    /** @default env `LOG_LEVEL`, else 'log' */
    level?: LogLevel
    /** @default env `LOG_FORMAT`, else 'pretty' */
    format?: LogFormat
  }
  /**
   * Redis to cluster through: several hub nodes sharing it act as one hub. Read by
   * `createServer()`, which connects the Redis backplane (`createHub()` takes `backplane`).
   * @default env `REDIS_URL`, else none: a single process
   */
  redisUrl?: string
  /** A backplane to cluster through; wins over `redisUrl` (e.g. a memory backplane for hubs in one process). */
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
  }
  /** Receives every error the hub handles itself instead of crashing. @default logs it */
  onError?: (error: unknown, context: { stage: ErrorStage, peerId?: string }) => void
  /** Where environment variables are read from. @default process.env */
  env?: Env
}

export interface ResolvedHubOptions {
  instanceId: string
  auth: { tokens: string[], timeoutMs: number, maxFailures: number }
  heartbeat: { readTimeout: number, message: string }
  routing: { policy?: RoutingPolicy, middleware: RoutingMiddleware[], allowBypass: boolean, devtoolsTokens: string[] }
  limits: ResolvedLimits
  trustProxy: boolean
  /** Set when clustered. */
  backplane?: Backplane
  cluster: { nodeTimeoutMs: number, heartbeatMs: number, prefix: string }
  phoenix: { paths: string[], topics: string[], maxChannels: number }
  /** Normalized: origins as `scheme://host[:port]` without a default port, hosts lowercase. */
  http: { allowedOrigins: string[], allowedHosts: string[] }
  metrics: { enabled: boolean, token?: string, maxEventTypes: number }
  logger: ConsolaInstance
  onError: (error: unknown, context: { stage: ErrorStage, peerId?: string }) => void
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
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000
export const DEFAULT_MAX_NAME_LENGTH = 256
export const DEFAULT_MAX_LABELS = 64
export const DEFAULT_MAX_MODULES_PER_PEER = 64
export const DEFAULT_MAX_CONSUMERS_PER_PEER = 64
export const DEFAULT_MAX_DESTINATIONS = 64
export const DEFAULT_MAX_EXPRESSION_DEPTH = 8
export const DEFAULT_MAX_ROUTE_ITEMS = 256
export const DEFAULT_MAX_DATA_DEPTH = 64
export const DEFAULT_AUTH_TIMEOUT_MS = 30_000
export const DEFAULT_AUTH_MAX_FAILURES = 3
export const DEFAULT_NODE_TIMEOUT_MS = 10_000
export const DEFAULT_CLUSTER_PREFIX = 'hub-server'
export const DEFAULT_PORT = 6121
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 3000
export const DEFAULT_METRICS_MAX_EVENT_TYPES = 50
export const DEFAULT_PHOENIX_PATHS: readonly string[] = ['/socket', '/debug_socket', '/release_socket', '/plugin_socket']
export const DEFAULT_PHOENIX_TOPICS: readonly string[] = ['plugin', 'plugins', 'debug_plugin', 'release_plugin']
export const DEFAULT_PHOENIX_MAX_CHANNELS = 100
const LOG_LEVELS: readonly LogLevel[] = ['silent', 'error', 'warn', 'log', 'info', 'debug', 'trace']
const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json']

/** One setting of the `hub-server` command: its env variable, its flag and its help line. */
export interface EnvOption {
  env: string
  flag: string
  /** Placeholder of the flag's value in `--help`. */
  value: string
  /** The default, as `--help` and `.env.example` show it. */
  default: string
  description: string
}

/** Every variable the hub reads: the single spec behind the CLI's flags, its `--help` and `.env.example`. */
export const ENV_OPTIONS: readonly EnvOption[] = [
  { env: 'PORT', flag: 'port', value: '<port>', default: String(DEFAULT_PORT), description: 'port to listen on (0 = any free port)' },
  { env: 'HOST', flag: 'host', value: '<host>', default: DEFAULT_HOST, description: 'interface to listen on (0.0.0.0 = all)' },
  { env: 'AUTHENTICATION_TOKEN', flag: 'token', value: '<token>', default: '', description: 'token peers must present (empty = auth off)' },
  { env: 'SERVER_INSTANCE_ID', flag: 'instance-id', value: '<id>', default: '', description: 'the hub\'s metadata.source.instanceId (empty = a generated id)' },
  { env: 'LOG_LEVEL', flag: 'log-level', value: '<level>', default: 'log', description: LOG_LEVELS.join(' | ') },
  { env: 'LOG_FORMAT', flag: 'log-format', value: '<format>', default: 'pretty', description: LOG_FORMATS.join(' | ') },
  { env: 'HEARTBEAT_TIMEOUT_MS', flag: 'heartbeat-timeout', value: '<ms>', default: String(DEFAULT_HEARTBEAT_TIMEOUT_MS), description: 'silence before a peer is unhealthy; closed at twice this' },
  { env: 'MAX_PAYLOAD_BYTES', flag: 'max-payload', value: '<bytes>', default: String(DEFAULT_MAX_PAYLOAD_BYTES), description: 'largest inbound frame' },
  { env: 'MAX_BUFFERED_BYTES', flag: 'max-buffered', value: '<bytes>', default: String(DEFAULT_MAX_BUFFERED_BYTES), description: 'unsent bytes a peer may leave unread before it is closed with 1013' },
  { env: 'MAX_PEERS', flag: 'max-peers', value: '<n>', default: String(DEFAULT_MAX_PEERS), description: 'open sockets; past this an upgrade gets HTTP 503' },
  { env: 'MAX_PENDING_PER_ADDRESS', flag: 'max-pending-per-address', value: '<n>', default: String(DEFAULT_MAX_PENDING_PER_ADDRESS), description: 'unauthenticated sockets per client address; past this HTTP 429 (0 = no limit)' },
  { env: 'MAX_PENDING_PAYLOAD_BYTES', flag: 'max-pending-payload', value: '<bytes>', default: String(DEFAULT_MAX_PENDING_PAYLOAD_BYTES), description: 'largest frame before a peer has authenticated' },
  { env: 'RATE_LIMIT_EVENTS_PER_SEC', flag: 'rate-limit', value: '<n>', default: String(DEFAULT_RATE_LIMIT_EVENTS_PER_SEC), description: 'frames a socket may send per second; over it: error, then close 4029 (0 = no limit)' },
  { env: 'RATE_LIMIT_BURST', flag: 'rate-limit-burst', value: '<n>', default: '', description: 'frames a socket may send at once (empty = twice the rate)' },
  { env: 'RATE_LIMIT_BYTES_PER_SEC', flag: 'rate-limit-bytes', value: '<bytes>', default: String(DEFAULT_RATE_LIMIT_BYTES_PER_SEC), description: 'bytes a socket may send per second (0 = no limit)' },
  { env: 'TRUST_PROXY', flag: 'trust-proxy', value: '<bool>', default: 'false', description: 'take the client address from X-Forwarded-For (only behind a proxy)' },
  { env: 'HEADERS_TIMEOUT_MS', flag: 'headers-timeout', value: '<ms>', default: String(DEFAULT_HEADERS_TIMEOUT_MS), description: 'a connection that has not sent its request headers by then is cut' },
  { env: 'PHOENIX_MAX_CHANNELS', flag: 'phoenix-max-channels', value: '<count>', default: String(DEFAULT_PHOENIX_MAX_CHANNELS), description: 'channels one Phoenix socket may join; further joins are refused' },
  { env: 'REDIS_URL', flag: 'redis-url', value: '<url>', default: '', description: 'Redis backplane for a multi-node hub (empty = single node)' },
  { env: 'CLUSTER_NODE_TIMEOUT_MS', flag: 'node-timeout', value: '<ms>', default: String(DEFAULT_NODE_TIMEOUT_MS), description: 'a silent node is gone after this; its modules are de-announced' },
  { env: 'ALLOWED_ORIGINS', flag: 'allowed-origins', value: '<origins>', default: '', description: 'comma-separated origins whose pages may connect, besides the hub\'s own and localhost ones (* = any)' },
  { env: 'ALLOWED_HOSTS', flag: 'allowed-hosts', value: '<hosts>', default: '', description: 'comma-separated Host names answered besides loopback ones (.example.com = with subdomains, * = any); checked when set, or with auth off on a loopback bind' },
  { env: 'METRICS_ENABLED', flag: 'metrics', value: '<bool>', default: 'true', description: 'serve GET /metrics (Prometheus)' },
  { env: 'METRICS_TOKEN', flag: 'metrics-token', value: '<token>', default: '', description: 'bearer token /metrics requires (empty = open)' },
  { env: 'SHUTDOWN_TIMEOUT_MS', flag: 'shutdown-timeout', value: '<ms>', default: String(DEFAULT_SHUTDOWN_TIMEOUT_MS), description: 'on SIGINT/SIGTERM, how long peers get to close' },
]

function invalid(name: string, value: unknown, expected: string): never {
  const flag = ENV_OPTIONS.find(option => option.env === name)?.flag
  throw new HubError('invalid_option', `Invalid ${name}: ${JSON.stringify(value)} (expected ${expected}${flag ? `; flag --${flag}` : ''})`)
}

/** An explicit option wins; else the env variable, parsed strictly; else the default. */
function positiveInt(name: string, explicit: number | undefined, raw: string | undefined, fallback: number, min = 1): number {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < min)
      invalid(name, explicit, `an integer >= ${min}`)
    return explicit
  }
  if (raw === undefined || raw === '')
    return fallback
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min)
    invalid(name, raw, `an integer >= ${min}`)
  return Number(raw)
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined || value === '')
    return fallback
  if (!allowed.includes(value as T))
    invalid(name, value, allowed.join(' | '))
  return value as T
}

function bool(name: string, explicit: boolean | undefined, raw: string | undefined, fallback: boolean): boolean {
  if (explicit !== undefined)
    return explicit
  if (raw === undefined || raw === '')
    return fallback
  if (!/^(?:true|false|1|0)$/.test(raw))
    invalid(name, raw, 'true | false')
  return raw === 'true' || raw === '1'
}

function listOf(name: string, values: readonly string[], valid: (value: string) => boolean, expected: string): string[] {
  for (const value of values) {
    if (typeof value !== 'string' || !valid(value))
      invalid(name, value, expected)
  }
  return [...values]
}

/** An explicit list wins; else the env variable's comma-separated entries. */
function commaList(explicit: readonly string[] | undefined, raw: string | undefined): readonly unknown[] {
  return explicit ?? (raw ?? '').split(',').map(entry => entry.trim()).filter(entry => entry !== '')
}

const ALLOWED_HOST = /^(?:\*|\.?[\w-]+(?:\.[\w-]+)*|\[[\da-f:.]+\])$/i

function resolveHttpOptions(http: HubOptions['http'], env: Env): ResolvedHubOptions['http'] {
  return {
    allowedOrigins: commaList(http?.allowedOrigins, env.ALLOWED_ORIGINS).map(origin =>
      (origin === '*' ? origin : typeof origin === 'string' && normalizeOrigin(origin))
      || invalid('ALLOWED_ORIGINS', origin, 'origins like "https://app.example", or *')),
    allowedHosts: commaList(http?.allowedHosts, env.ALLOWED_HOSTS).map(host =>
      typeof host === 'string' && ALLOWED_HOST.test(host) ? host.toLowerCase() : invalid('ALLOWED_HOSTS', host, 'host names like "hub.example" or ".example.com", or *')),
  }
}

function tokensOf(token: string | string[] | undefined, raw: string | undefined): string[] {
  const tokens = token === undefined ? (raw ? [raw] : []) : [token].flat()
  return tokens.filter(t => t !== '')
}

/** Resolves hub options once: explicit options, then env, then defaults. Throws `HubError('invalid_option')`. */
export function resolveHubOptions(options: HubOptions = {}): ResolvedHubOptions {
  const env = options.env ?? process.env
  const logger = createLogger({
    level: oneOf('LOG_LEVEL', options.logger?.level ?? env.LOG_LEVEL, LOG_LEVELS, 'log'),
    format: oneOf('LOG_FORMAT', options.logger?.format ?? env.LOG_FORMAT, LOG_FORMATS, 'pretty'),
  })
  return {
    instanceId: options.instanceId || env.SERVER_INSTANCE_ID || nanoid(),
    auth: {
      tokens: tokensOf(options.auth?.token, env.AUTHENTICATION_TOKEN),
      timeoutMs: positiveInt('auth.timeoutMs', options.auth?.timeoutMs, undefined, DEFAULT_AUTH_TIMEOUT_MS, 0),
      maxFailures: positiveInt('auth.maxFailures', options.auth?.maxFailures, undefined, DEFAULT_AUTH_MAX_FAILURES),
    },
    heartbeat: {
      readTimeout: positiveInt('HEARTBEAT_TIMEOUT_MS', options.heartbeat?.readTimeout, env.HEARTBEAT_TIMEOUT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS),
      message: options.heartbeat?.message ?? '💛',
    },
    routing: {
      policy: options.routing?.policy,
      middleware: options.routing?.middleware ?? [],
      allowBypass: options.routing?.allowBypass ?? true,
      devtoolsTokens: options.routing?.devtoolsTokens ?? [],
    },
    limits: resolveLimits(options.limits, env),
    trustProxy: bool('TRUST_PROXY', options.trustProxy, env.TRUST_PROXY, false),
    backplane: options.backplane,
    cluster: resolveClusterOptions(options.cluster, env),
    phoenix: {
      paths: listOf('phoenix.paths', options.phoenix?.paths ?? DEFAULT_PHOENIX_PATHS, p => /^\/[^?#]*[^/?#]$/.test(p), 'paths like "/socket"'),
      topics: listOf('phoenix.topics', options.phoenix?.topics ?? DEFAULT_PHOENIX_TOPICS, t => t !== '' && !t.includes(':'), 'non-empty prefixes without ":"'),
      maxChannels: positiveInt('PHOENIX_MAX_CHANNELS', options.phoenix?.maxChannels, env.PHOENIX_MAX_CHANNELS, DEFAULT_PHOENIX_MAX_CHANNELS),
    },
    http: resolveHttpOptions(options.http, env),
    metrics: {
      enabled: bool('METRICS_ENABLED', options.metrics?.enabled, env.METRICS_ENABLED, true),
      token: options.metrics?.token || env.METRICS_TOKEN || undefined,
      maxEventTypes: positiveInt('metrics.maxEventTypes', options.metrics?.maxEventTypes, undefined, DEFAULT_METRICS_MAX_EVENT_TYPES, 0),
    },
    logger,
    onError: options.onError ?? ((error, { stage, peerId }) => logger.error(`[${stage}]${peerId ? ` peer ${peerId}:` : ''}`, error)),
  }
}

function resolveLimits(limits: HubOptions['limits'], env: Env): ResolvedLimits {
  const maxPayloadBytes = positiveInt('MAX_PAYLOAD_BYTES', limits?.maxPayloadBytes, env.MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_BYTES)
  const eventsPerSec = positiveInt('RATE_LIMIT_EVENTS_PER_SEC', limits?.eventsPerSec, env.RATE_LIMIT_EVENTS_PER_SEC, DEFAULT_RATE_LIMIT_EVENTS_PER_SEC, 0)
  const bytesPerSec = positiveInt('RATE_LIMIT_BYTES_PER_SEC', limits?.bytesPerSec, env.RATE_LIMIT_BYTES_PER_SEC, DEFAULT_RATE_LIMIT_BYTES_PER_SEC, 0)
  return {
    maxPayloadBytes,
    maxBufferedBytes: positiveInt('MAX_BUFFERED_BYTES', limits?.maxBufferedBytes, env.MAX_BUFFERED_BYTES, DEFAULT_MAX_BUFFERED_BYTES),
    maxPeers: positiveInt('MAX_PEERS', limits?.maxPeers, env.MAX_PEERS, DEFAULT_MAX_PEERS),
    maxPendingPerAddress: positiveInt('MAX_PENDING_PER_ADDRESS', limits?.maxPendingPerAddress, env.MAX_PENDING_PER_ADDRESS, DEFAULT_MAX_PENDING_PER_ADDRESS, 0),
    // Never above the payload limit: a pending peer gets no more than an authenticated one.
    maxPendingPayloadBytes: Math.min(maxPayloadBytes, positiveInt('MAX_PENDING_PAYLOAD_BYTES', limits?.maxPendingPayloadBytes, env.MAX_PENDING_PAYLOAD_BYTES, DEFAULT_MAX_PENDING_PAYLOAD_BYTES)),
    eventsPerSec,
    eventsBurst: positiveInt('RATE_LIMIT_BURST', limits?.eventsBurst, env.RATE_LIMIT_BURST, 2 * eventsPerSec, eventsPerSec > 0 ? 1 : 0),
    bytesPerSec,
    // A frame of the largest size must always be able to pass a full bucket.
    bytesBurst: Math.max(maxPayloadBytes, Math.floor(bytesPerSec / 2)),
    rateLimitGraceMs: positiveInt('limits.rateLimitGraceMs', limits?.rateLimitGraceMs, undefined, DEFAULT_RATE_LIMIT_GRACE_MS, 0),
    maxNameLength: positiveInt('limits.maxNameLength', limits?.maxNameLength, undefined, DEFAULT_MAX_NAME_LENGTH),
    maxLabels: positiveInt('limits.maxLabels', limits?.maxLabels, undefined, DEFAULT_MAX_LABELS, 0),
    maxModulesPerPeer: positiveInt('limits.maxModulesPerPeer', limits?.maxModulesPerPeer, undefined, DEFAULT_MAX_MODULES_PER_PEER),
    maxConsumersPerPeer: positiveInt('limits.maxConsumersPerPeer', limits?.maxConsumersPerPeer, undefined, DEFAULT_MAX_CONSUMERS_PER_PEER),
    maxDestinations: positiveInt('limits.maxDestinations', limits?.maxDestinations, undefined, DEFAULT_MAX_DESTINATIONS, 0),
    maxExpressionDepth: positiveInt('limits.maxExpressionDepth', limits?.maxExpressionDepth, undefined, DEFAULT_MAX_EXPRESSION_DEPTH),
    maxRouteItems: positiveInt('limits.maxRouteItems', limits?.maxRouteItems, undefined, DEFAULT_MAX_ROUTE_ITEMS),
    maxDataDepth: positiveInt('limits.maxDataDepth', limits?.maxDataDepth, undefined, DEFAULT_MAX_DATA_DEPTH, 4),
  }
}

function resolveClusterOptions(cluster: HubOptions['cluster'], env: Env): ResolvedHubOptions['cluster'] {
  const nodeTimeoutMs = positiveInt('CLUSTER_NODE_TIMEOUT_MS', cluster?.nodeTimeoutMs, env.CLUSTER_NODE_TIMEOUT_MS, DEFAULT_NODE_TIMEOUT_MS, 2)
  const heartbeatMs = positiveInt('cluster.heartbeatMs', cluster?.heartbeatMs, undefined, Math.max(1, Math.floor(nodeTimeoutMs / 5)))
  if (heartbeatMs >= nodeTimeoutMs)
    invalid('cluster.heartbeatMs', heartbeatMs, `less than the node timeout (${nodeTimeoutMs})`)
  return { nodeTimeoutMs, heartbeatMs, prefix: cluster?.prefix || DEFAULT_CLUSTER_PREFIX }
}

/** The Redis URL `createServer()` clusters through, if any. */
export function resolveRedisUrl(options: Pick<HubOptions, 'redisUrl' | 'env'> = {}): string | undefined {
  const env = options.env ?? process.env
  const url = options.redisUrl || env.REDIS_URL || undefined
  if (url !== undefined && !/^rediss?:\/\/./.test(url))
    invalid('REDIS_URL', url, 'redis://host:port or rediss://host:port')
  return url
}

export interface ListenOptions {
  /** @default env `PORT`, else 6121 (0 = any free port) */
  port?: number
  /** @default env `HOST`, else 127.0.0.1 */
  host?: string
  /**
   * On close, how long peers get to finish their close handshake before their sockets are cut.
   * @default env `SHUTDOWN_TIMEOUT_MS`, else 3000
   */
  shutdownTimeoutMs?: number
  /**
   * A connection that has not sent its request headers (e.g. a WebSocket upgrade) by then is
   * cut, so slow requests cannot hold sockets open.
   * @default env `HEADERS_TIMEOUT_MS`, else 10000
   */
  headersTimeoutMs?: number
  env?: Env
}

export function resolveListenOptions(options: ListenOptions = {}): { port: number, host: string, shutdownTimeoutMs: number, headersTimeoutMs: number } {
  const env = options.env ?? process.env
  return {
    port: positiveInt('PORT', options.port, env.PORT, DEFAULT_PORT, 0),
    host: options.host || env.HOST || DEFAULT_HOST,
    shutdownTimeoutMs: positiveInt('SHUTDOWN_TIMEOUT_MS', options.shutdownTimeoutMs, env.SHUTDOWN_TIMEOUT_MS, DEFAULT_SHUTDOWN_TIMEOUT_MS, 0),
    headersTimeoutMs: positiveInt('HEADERS_TIMEOUT_MS', options.headersTimeoutMs, env.HEADERS_TIMEOUT_MS, DEFAULT_HEADERS_TIMEOUT_MS),
  }
}

// --- Command line ----------------------------------------------------------------------

export interface CommandLine {
  help: boolean
  version: boolean
  /** What the hub resolves its options from: flags over the environment over `.env`. */
  env: Env
}

/** The variables of `<cwd>/.env`, if there is one. */
function readDotEnv(cwd: string): Env {
  const file = join(cwd, '.env')
  return existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {}
}

/**
 * Parses `hub-server` arguments (`--flag value` or `--flag=value`) onto the environment and
 * `<cwd>/.env`, so every source goes through the same resolution and validation:
 * flags > env > `.env` > defaults.
 */
export function parseCommandLine(argv: readonly string[], env: Env = process.env, cwd = process.cwd()): CommandLine {
  const result: CommandLine = { help: false, version: false, env: { ...readDotEnv(cwd), ...env } }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') {
      result.help = true
      continue
    }
    if (arg === '--version' || arg === '-v') {
      result.version = true
      continue
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg)
    const option = match && ENV_OPTIONS.find(o => o.flag === match[1])
    if (!option)
      throw new HubError('invalid_option', `Unknown argument: ${arg} (see --help)`)
    const value = match[2] ?? argv[++i]
    if (value === undefined)
      throw new HubError('invalid_option', `Missing value for --${option.flag} ${option.value}`)
    result.env[option.env] = value
  }
  return result
}
