// Cluster
export type { Cluster } from './backplane/cluster.ts'
export { createMemoryBackplane, createMemoryBus } from './backplane/memory.ts'
export type { MemoryBus } from './backplane/memory.ts'
export { createRedisBackplane } from './backplane/redis.ts'
export type { RedisBackplaneOptions } from './backplane/redis.ts'
export type { Backplane } from './backplane/types.ts'

export type { ConsumerRegistration } from './core/consumers.ts'
export { defineMiddleware } from './core/middleware.ts'
export type { Next, RouteContext, RoutingMiddleware } from './core/middleware.ts'
export type { HubObservations, Observers } from './core/observers.ts'
export type { RoutingPolicy } from './core/policy.ts'
export type { Registry } from './core/registry.ts'
export type { RemotePeer } from './core/router.ts'

export { HubError } from './errors.ts'
export type { ErrorStage, HubErrorCode } from './errors.ts'
// Hub core
export { createHub } from './hub.ts'
export type { Announcement, Handshake, Hub } from './hub.ts'
// Server
export { listenHub } from './listen.ts'
export type { HubListener } from './listen.ts'

// Options and errors
export { resolveHubOptions, resolveListenOptions, resolveRedisUrl } from './options.ts'
export type { HubOptions, ListenOptions, LogFormat, LogLevel, ResolvedHubOptions } from './options.ts'
export type { RequestGuard } from './request-guard.ts'
export { createServer } from './server.ts'
export type { HubServer, ServerOptions } from './server.ts'

// Vocabulary
export type * from './types.ts'
