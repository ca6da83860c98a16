// Cluster
export type { Cluster } from './backplane/cluster.ts'
export { createMemoryBackplane, createMemoryBus } from './backplane/memory.ts'
export type { MemoryBus } from './backplane/memory.ts'
export { createRedisBackplane } from './backplane/redis.ts'
export type { RedisBackplaneOptions } from './backplane/redis.ts'
export type { Backplane } from './backplane/types.ts'

export { CLOSE } from './core/close.ts'
export type { Close } from './core/close.ts'
export type { ConsumerRegistration } from './core/consumers.ts'
export { ExplainRequestSchema } from './core/explain.ts'
export type { Explain, ExplainPeer, ExplainRequest, ExplainResult, ExplainStep } from './core/explain.ts'
export { defineMiddleware } from './core/middleware.ts'
export type { Next, RouteContext, RoutingMiddleware } from './core/middleware.ts'
export type { KnownModule, ModuleCatalog } from './core/module-catalog.ts'
export type { HubObservations, Observers } from './core/observers.ts'
export type { RoutingPolicy } from './core/policy.ts'

export type { Registry } from './core/registry.ts'
export type { RemotePeer } from './core/router.ts'
export type { Session } from './core/session.ts'
export { HubError } from './errors.ts'
export type { ErrorStage, HubErrorCode } from './errors.ts'
// Hub core
export { createHub } from './hub.ts'
export type { Announcement, Handshake, Hub } from './hub.ts'
// Server
export { listenHub, resolveListenOptions } from './listen.ts'

export type { HubListener, ListenOptions } from './listen.ts'
export type { MetricsOptions } from './observability/endpoints.ts'
export type { LogFormat, LogLevel } from './observability/logger.ts'
// Options and errors
export { resolveHubOptions } from './options.ts'
export type { HubOptions, ResolvedHubOptions } from './options.ts'
// Gateways
export { airiGateway } from './protocol/airi-gateway.ts'
export type { AiriGatewayOptions } from './protocol/airi-gateway.ts'
export { defineGateway } from './protocol/gateway.ts'
export type { Gateway, GatewayAuth, GatewayHandler, GatewaySocket, UpgradeExtras } from './protocol/gateway.ts'
export { makaioGateway } from './protocol/makaio.ts'
export type { MakaioGatewayOptions } from './protocol/makaio.ts'
export { phoenixGateway } from './protocol/phoenix.ts'
export type { PhoenixGatewayOptions, PhoenixReplyRule } from './protocol/phoenix.ts'
export { thymianGateway, type ThymianGatewayOptions } from './protocol/thymian.ts'
export type { GuardOptions, RequestGuard } from './request-guard.ts'
export { createServer, resolveRedisUrl, resolveServerOptions } from './server.ts'
export type { HubServer, ResolvedServerOptions, ServerOptions } from './server.ts'

// Vocabulary
export type * from './types.ts'
