import type { ConsolaInstance } from 'consola'
import type { ResolvedLimits } from '../options.ts'
import type { Identity } from '../types.ts'
import type { Observers } from './observers.ts'
import type { Session } from './session.ts'
import { HubError } from '../errors.ts'
import { checkAnnouncement, checkData, checkRoutes } from './bounds.ts'
import { isReservedEventType } from './event.ts'

/** The plugin id the hub stamps on its own events: no peer may take it. */
export const HUB_PLUGIN = 'hub-server'

export interface Refusals {
  /** Counts a refusal (a metric) and logs the first of a peer's own making; returns it. */
  refuse: (session: Session, error: HubError) => HubError
  /** A failure after the call that caused it: counted, then the peer's gateway reports it in its own form (`Connection.fail`). */
  fail: (session: Session, error: HubError, parentId?: string) => void
  /** The refusal of a peer that has not authenticated, counted; undefined when it has. */
  requireAuth: (session: Session) => HubError | undefined
  limitExceeded: (what: string) => HubError
  /** Why an event type may not be published: reserved, or over-long. */
  ofType: (type: string) => HubError | undefined
  /** Why an event a gateway took in as is may not be published: its type, or a shape bound of its data or route. */
  ofEvent: (event: { type: string, data: unknown, route?: { destinations?: unknown } }) => HubError | undefined
  /** Why a peer may not announce this: too big, or the hub's own identity. */
  ofAnnouncement: (name: string, identity: Identity) => HubError | undefined
}

/** Why the hub refuses what a peer asks, written once for every call that can refuse. */
export function createRefusals(options: { limits: ResolvedLimits, instanceId: string, observers: Observers, logger: ConsolaInstance }): Refusals {
  const { limits, instanceId, observers, logger } = options
  const logged = new WeakSet<Session>()
  const limitExceeded = (what: string): HubError => new HubError('limit_exceeded', `limit exceeded: ${what}`)

  function refuse(session: Session, error: HubError): HubError {
    observers.emit('error', error.code)
    // Logged once per peer: its frames are the peer's to repeat (the metric counts them all).
    if ((error.code === 'limit_exceeded' || error.code === 'reserved_event' || error.code === 'reserved_identity' || error.code === 'module_forbidden') && !logged.has(session)) {
      logged.add(session)
      logger.info(`peer ${session.id}: ${error.message} (its further refused frames are not logged)`)
    }
    return error
  }

  function ofType(type: string): HubError | undefined {
    if (isReservedEventType(type))
      return new HubError('reserved_event', 'reserved event type')
    if (type.length > limits.maxNameLength)
      return limitExceeded('event type')
  }

  return {
    refuse,
    fail: (session, error, parentId) => session.connection.fail(refuse(session, error), parentId),
    requireAuth: session => session.authenticated ? undefined : refuse(session, new HubError('not_authenticated', 'not authenticated')),
    limitExceeded,
    ofType,
    ofEvent(event) {
      const exceeded = checkRoutes(event, limits) ?? checkData(event.data, limits.maxDataDepth, limits.maxPayloadBytes)
      return ofType(event.type) ?? (exceeded && limitExceeded(exceeded))
    },
    ofAnnouncement(name, identity) {
      const exceeded = checkAnnouncement(name, identity, limits)
      if (exceeded)
        return limitExceeded(exceeded)
      if (identity.pluginId === HUB_PLUGIN || identity.instanceId === instanceId)
        return new HubError('reserved_identity', 'reserved identity')
    },
  }
}
