import type { Hooks } from 'crossws'
import type { DashboardOptions, ResolvedDashboardOptions } from './dashboard/options.ts'
import type { Env } from './env-options.ts'
import type { Hub } from './hub.ts'
import type { MetricsOptions } from './observability/endpoints.ts'
import type { HubOptions } from './options.ts'
import type { Gateway, GatewayHooks } from './protocol/gateway.ts'
import type { PhoenixGatewayOptions } from './protocol/phoenix.ts'
import type { GuardOptions, RequestGuard } from './request-guard.ts'
import process from 'node:process'
import { defineWebSocketHandler, H3 } from 'h3'
import { createRedisBackplane } from './backplane/redis.ts'
import { resolveDashboardOptions } from './dashboard/options.ts'
import { addDashboard } from './dashboard/routes.ts'
import { bool, commaList, envOptions, invalid, positiveInt } from './env-options.ts'
import { HubError } from './errors.ts'
import { createHub } from './hub.ts'
import { addOpsEndpoints } from './observability/endpoints.ts'
import { tokensOf } from './options.ts'
import { airiGateway, DEFAULT_AIRI_PATH } from './protocol/airi-gateway.ts'
import { createGatewayHooks } from './protocol/gateway.ts'
import { makaioGateway } from './protocol/makaio.ts'
import { phoenixGateway } from './protocol/phoenix.ts'
import { thymianGateway } from './protocol/thymian.ts'
import { createRequestGuard, isWebSocketUpgrade, normalizeOrigin } from './request-guard.ts'

/** The hub's options, and those of its edge: endpoints, request guard, Redis. */
export interface ServerOptions extends HubOptions {
  /**
   * The wire protocols served, each on its own paths; an embedder's own gateway (`defineGateway`)
   * goes here too.
   * @default [airiGateway({ path }), phoenixGateway(phoenix), thymianGateway(), makaioGateway()]
   */
  gateways?: Gateway[]
  /**
   * Path of the native (AIRI) WebSocket endpoint, when `gateways` is not given.
   * @default '/ws'
   */
  path?: string
  /** Options of the Phoenix Channels gateway, when `gateways` is not given. */
  phoenix?: Omit<PhoenixGatewayOptions, 'env'>
  /**
   * Behind a reverse proxy: a peer's address is the last one in `X-Forwarded-For` (the one
   * the proxy added), not the proxy's. Only set it when every connection comes through the proxy.
   * @default env `TRUST_PROXY`, else false
   */
  trustProxy?: boolean
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
  /** The live dashboard (`GET /dashboard`): nodes, peers, modules, event rates, routing explained. */
  dashboard?: DashboardOptions
  /**
   * Redis to cluster through: several hub nodes sharing it act as one hub (`backplane` wins).
   * @default env `REDIS_URL`, else none: a single process
   */
  redisUrl?: string
}

export interface ResolvedServerOptions {
  gateways: Gateway[]
  http: GuardOptions
  metrics: MetricsOptions
  dashboard: ResolvedDashboardOptions
  /** Set when clustered through Redis. */
  redisUrl?: string
}

export const DEFAULT_METRICS_MAX_EVENT_TYPES = 50

/** The edge's env-configurable options. */
export const SERVER_ENV_OPTIONS = envOptions({
  REDIS_URL: { option: 'redisUrl', flag: 'redis-url', value: '<url>', default: '', description: 'Redis backplane for a multi-node hub (empty = single node)' },
  ALLOWED_ORIGINS: { option: 'http.allowedOrigins', flag: 'allowed-origins', value: '<origins>', default: '', description: 'comma-separated origins whose pages may connect, besides the hub\'s own and localhost ones (* = any)' },
  ALLOWED_HOSTS: { option: 'http.allowedHosts', flag: 'allowed-hosts', value: '<hosts>', default: '', description: 'comma-separated Host names answered besides loopback ones (.example.com = with subdomains, * = any); checked when set, or with auth off on a loopback bind' },
  TRUST_PROXY: { option: 'trustProxy', flag: 'trust-proxy', value: '<bool>', default: 'false', description: 'take the client address from X-Forwarded-For (only behind a proxy)' },
  METRICS_ENABLED: { option: 'metrics.enabled', flag: 'metrics', value: '<bool>', default: 'true', description: 'serve GET /metrics (Prometheus)' },
  METRICS_TOKEN: { option: 'metrics.token', flag: 'metrics-token', value: '<token>', default: '', description: 'bearer token /metrics requires (empty = open)' },
})
const ENV = SERVER_ENV_OPTIONS

const ALLOWED_HOST = /^(?:\*|\.?[\w-]+(?:\.[\w-]+)*|\[[\da-f:.]+\])$/i

/** The Redis URL `createServer()` clusters through, if any. */
export function resolveRedisUrl(options: Pick<ServerOptions, 'redisUrl' | 'env'> = {}): string | undefined {
  const env = options.env ?? process.env
  const url = options.redisUrl || env.REDIS_URL || undefined
  if (url !== undefined && !/^rediss?:\/\/./.test(url))
    invalid(ENV.REDIS_URL, url, 'redis://host:port or rediss://host:port')
  return url
}

function resolveHttpOptions({ http, trustProxy }: ServerOptions, env: Env): GuardOptions {
  return {
    trustProxy: bool(ENV.TRUST_PROXY, trustProxy, env, false),
    allowedOrigins: commaList(ENV.ALLOWED_ORIGINS, http?.allowedOrigins, env).map(origin =>
      (origin === '*' ? origin : typeof origin === 'string' && normalizeOrigin(origin))
      || invalid(ENV.ALLOWED_ORIGINS, origin, 'origins like "https://app.example", or *')),
    allowedHosts: commaList(ENV.ALLOWED_HOSTS, http?.allowedHosts, env).map(host =>
      typeof host === 'string' && ALLOWED_HOST.test(host) ? host.toLowerCase() : invalid(ENV.ALLOWED_HOSTS, host, 'host names like "hub.example" or ".example.com", or *')),
  }
}

/** Resolves the edge's options once (the hub resolves its own). Throws `HubError('invalid_option')`. */
export function resolveServerOptions(options: ServerOptions = {}): ResolvedServerOptions {
  const env = options.env ?? process.env
  const metricsToken = options.metrics?.token || env.METRICS_TOKEN || undefined
  return {
    gateways: options.gateways ?? [airiGateway({ path: options.path ?? DEFAULT_AIRI_PATH }), phoenixGateway({ ...options.phoenix, env }), thymianGateway({ env }), makaioGateway({ env })],
    http: resolveHttpOptions(options, env),
    metrics: {
      enabled: bool(ENV.METRICS_ENABLED, options.metrics?.enabled, env, true),
      token: metricsToken,
      maxEventTypes: positiveInt('metrics.maxEventTypes', options.metrics?.maxEventTypes, env, DEFAULT_METRICS_MAX_EVENT_TYPES, 0),
    },
    dashboard: resolveDashboardOptions(options.dashboard, env, [metricsToken, ...tokensOf(options.auth?.token, env.AUTHENTICATION_TOKEN)]),
    redisUrl: options.backplane ? undefined : resolveRedisUrl(options),
  }
}

export interface HubServer {
  /** The h3 app: mount it, or serve it with any h3 v2 host. */
  app: H3
  hub: Hub
  registry: Hub['registry']
  /**
   * crossws options for a host that upgrades itself (e.g. `crossws/adapters/node`). Only the
   * hub's endpoints upgrade; any other path is answered 404.
   */
  websocket: { hooks: Partial<Hooks>, serverOptions: { maxPayload: number } }
  /** Refuses foreign origins and unserved hosts before any endpoint or gateway sees the request. */
  guard: RequestGuard
  /** Leaves the cluster (if any) and closes every peer with 1001 "server shutdown". */
  closeAllPeers: () => Promise<void>
  /** Gateways' own ports (`Gateway.port`): `listenHub` serves `/` of each as the gateway's first path. */
  rootPorts: ReadonlyArray<{ port: number, path: string }>
  /** The dashboard page's path, when it is served. */
  dashboardPath?: string
}

const NOT_FOUND = (): Response => new Response('Not Found', { status: 404 })

/** The gateway's hooks, its upgrade behind the guard. */
function guarded(hooks: GatewayHooks, guard: RequestGuard): GatewayHooks {
  return { ...hooks, upgrade: request => guard.check(request) ?? hooks.upgrade?.(request) }
}

/** One set of crossws hooks for all endpoints, dispatched by path (crossws' default namespace). */
function dispatchByPath(gateways: ReadonlyMap<string, GatewayHooks>, guard: RequestGuard): Partial<Hooks> {
  const of = (namespace: string): GatewayHooks | undefined => gateways.get(namespace)
  return {
    upgrade(request) {
      const refusal = guard.check(request)
      if (refusal)
        return refusal
      const hooks = of(new URL(request.url).pathname)
      return hooks ? hooks.upgrade?.(request) : NOT_FOUND()
    },
    open: peer => of(peer.namespace)?.open?.(peer),
    message: (peer, message) => of(peer.namespace)?.message?.(peer, message),
    ping: (peer, data) => of(peer.namespace)?.ping?.(peer, data),
    pong: (peer, data) => of(peer.namespace)?.pong?.(peer, data),
    close: (peer, details) => of(peer.namespace)?.close?.(peer, details),
    error: (peer, error) => of(peer.namespace)?.error?.(peer, error),
  }
}

/** The hub as an h3 app with its WebSocket endpoints. */
export function createServer(options: ServerOptions = {}): HubServer {
  const { gateways: served, http, metrics, dashboard, redisUrl } = resolveServerOptions(options)
  const hub = createHub(redisUrl ? { ...options, backplane: createRedisBackplane({ url: redisUrl }) } : options)
  const gateways = new Map<string, GatewayHooks>()
  for (const gateway of served) {
    const hooks = createGatewayHooks(hub, gateway, http)
    for (const path of gateway.paths) {
      if (gateways.has(path)) {
        hub.close() // its backplane (a Redis connection) must not outlive a server that never was
        throw new HubError('invalid_option', `Invalid ${gateway.name} paths: ${path} is already an endpoint`)
      }
      gateways.set(path, hooks)
    }
  }

  const guard = createRequestGuard(hub, http)
  const app = new H3()
  // Upgrades are checked by the gateways' own upgrade hooks: a host that upgrades through the
  // app (Nitro) takes hooks from the route's answer, and a refusal here would carry none.
  app.use((event) => {
    // A host that mounts the app (Nitro) never calls listenHub: the first request starts the hub.
    hub.start()
    return isWebSocketUpgrade(event.req) && gateways.has(event.url.pathname) ? undefined : guard.check(event.req)
  })
  for (const [path, hooks] of gateways)
    app.get(path, defineWebSocketHandler(guarded(hooks, guard)))
  addOpsEndpoints(app, hub, metrics, served.flatMap(gateway => gateway.events ?? []))
  const dashboardStreams = dashboard.enabled ? addDashboard(app, hub, dashboard, http) : undefined

  return {
    app,
    hub,
    registry: hub.registry,
    websocket: { hooks: dispatchByPath(gateways, guard), serverOptions: { maxPayload: hub.options.limits.maxPayloadBytes } },
    guard,
    closeAllPeers: () => {
      dashboardStreams?.close() // open pages would hold the HTTP server open
      return hub.close()
    },
    rootPorts: served.flatMap(gateway => gateway.port === undefined ? [] : [{ port: gateway.port, path: gateway.paths[0]! }]),
    dashboardPath: dashboard.enabled ? dashboard.path : undefined,
  }
}
