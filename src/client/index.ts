/**
 * `hub-server/client`: a client of hub-server's native protocol for Node ≥ 20 and browsers.
 * @module
 */

// Connection options and reports
export { backoffDelay, DEFAULT_RECONNECT_FACTOR, DEFAULT_RECONNECT_INITIAL_DELAY_MS, DEFAULT_RECONNECT_JITTER, DEFAULT_RECONNECT_MAX_DELAY_MS, DEFAULT_RECONNECT_STABLE_AFTER_MS, resolveReconnectOptions } from './backoff.ts'
export type { ReconnectOptions, ResolvedReconnectOptions } from './backoff.ts'

// The client
export { createClient, DEFAULT_REQUEST_TIMEOUT_MS } from './client.ts'
export { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS } from './connection.ts'

export type { CloseInfo, HeartbeatOptions, ReconnectInfo } from './connection.ts'
// Errors
export { ClientError } from './errors.ts'

export type { ClientErrorCode } from './errors.ts'
export { DEFAULT_QUEUE_MAX_SIZE, DEFAULT_QUEUE_MAX_WAIT_MS } from './outbox.ts'
export type { QueueOptions } from './outbox.ts'
// The registry view
export { moduleKey } from './registry-view.ts'
export type { ModuleEntry, ModulesChange, RegistryPosition } from './registry-view.ts'
export type { WebSocketConstructor, WebSocketLike } from './socket.ts'
export type { ClientModule, ClientOptions, ClientStatus, Destinations, EmitOptions, EventHandler, EventMap, HubClient, ReceivedEvent, RequestHandler, RequestOptions } from './types.ts'
