import type { ResolvedHubOptions } from '../options.ts'
import type { Close } from '../types.ts'
import type { Consumers } from './consumers.ts'
import type { Heartbeat } from './heartbeat.ts'
import type { Observers } from './observers.ts'
import type { RegistryFeed } from './registry-feed.ts'
import type { ClusterLink, Session } from './session.ts'
import { CLOSE } from './close.ts'
import { createHeartbeat } from './heartbeat.ts'

export interface LivenessOptions {
  heartbeat: ResolvedHubOptions['heartbeat']
  /** Peers still pending after this long are closed (0 = never). */
  authTimeout: number
  sessions: () => Iterable<Session>
  feed: RegistryFeed
  consumers: Consumers
  observers: Observers
  cluster?: ClusterLink
  close: (session: Session, close: Close) => void
}

/**
 * Liveness of local peers: a silent peer's modules turn unhealthy (here and on the other
 * nodes), then it is closed; a peer still pending at the authentication deadline is closed.
 */
export function createLiveness(options: LivenessOptions): Heartbeat {
  const { feed, consumers, observers, cluster, close } = options

  function healthChanged(session: Session, healthy: boolean): void {
    observers.emit('topology')
    for (const entry of session.modules)
      feed.health(entry, healthy, session)
    if (session.modules.length > 0 || consumers.of(session))
      cluster?.health(session.id, healthy)
  }

  return createHeartbeat({
    readTimeout: options.heartbeat.readTimeout,
    authTimeout: options.authTimeout,
    // Taken at each call, so a test's fake clock is read.
    now: () => Date.now(),
    sessions: options.sessions,
    onUnhealthy: session => healthChanged(session, false),
    onHealthy: session => healthChanged(session, true),
    onExpired: (session) => {
      observers.emit('heartbeatExpired')
      close(session, CLOSE.heartbeatExpired)
    },
    onAuthTimeout: session => close(session, CLOSE.authFailed),
  })
}
