import type { Hooks } from 'crossws'
import type { Hub } from './hub.ts'
import type { HubOptions } from './options.ts'
import type { GatewayHooks } from './protocol/ws.ts'
import type { RequestGuard } from './request-guard.ts'
import { defineWebSocketHandler, H3 } from 'h3'
import { createRedisBackplane } from './backplane/redis.ts'
import { HubError } from './errors.ts'
import { createHub } from './hub.ts'
import { addOpsEndpoints } from './observability/endpoints.ts'
import { resolveRedisUrl } from './options.ts'
import { createPhoenixHooks } from './protocol/phoenix.ts'
import { createAiriHooks } from './protocol/ws.ts'
import { createRequestGuard, isWebSocketUpgrade } from './request-guard.ts'

export interface ServerOptions extends HubOptions {
  /**
   * Path of the native (AIRI) WebSocket endpoint.
   * @default '/ws'
   */
  path?: string
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
  const redisUrl = options.backplane ? undefined : resolveRedisUrl(options)
  const hub = createHub(redisUrl ? { ...options, backplane: createRedisBackplane({ url: redisUrl }) } : options)
  const gateways = new Map<string, GatewayHooks>([
    [options.path ?? '/ws', createAiriHooks(hub)],
  ])
  const phoenix = createPhoenixHooks(hub)
  for (const path of hub.options.phoenix.paths) {
    // The `phoenix` client appends `/websocket` to the URL it is given.
    for (const endpoint of [path, `${path}/websocket`]) {
      if (gateways.has(endpoint)) {
        hub.close() // its heartbeat timer must not outlive a server that never was
        throw new HubError('invalid_option', `Invalid phoenix.paths: ${endpoint} is already an endpoint`)
      }
      gateways.set(endpoint, phoenix)
    }
  }

  const guard = createRequestGuard(hub)
  const app = new H3()
  // Upgrades are checked by the gateways' own upgrade hooks: a host that upgrades through the
  // app (Nitro) takes hooks from the route's answer, and a refusal here would carry none.
  app.use(event => isWebSocketUpgrade(event.req) && gateways.has(event.url.pathname) ? undefined : guard.check(event.req))
  for (const [path, hooks] of gateways)
    app.get(path, defineWebSocketHandler(guarded(hooks, guard)))
  addOpsEndpoints(app, hub)

  return {
    app,
    hub,
    registry: hub.registry,
    websocket: { hooks: dispatchByPath(gateways, guard), serverOptions: { maxPayload: hub.options.limits.maxPayloadBytes } },
    guard,
    closeAllPeers: hub.close,
  }
}
