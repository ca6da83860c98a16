import type { ConsolaInstance } from 'consola'
import type { HubError } from '../errors.ts'
import type { DeannounceReason, Identity, ModuleEntry } from '../types.ts'
import type { SelfNamedIndex } from './aliases.ts'
import type { ConsumerRegistration, Consumers } from './consumers.ts'
import type { ModuleCatalog } from './module-catalog.ts'
import type { Refusals } from './refusals.ts'
import type { RegistryFeed } from './registry-feed.ts'
import type { Registry } from './registry.ts'
import type { ClusterLink, Session } from './session.ts'

export interface Announcement {
  name: string
  index?: number
  identity: Identity
  /**
   * The peer may hold several modules (an AIRI extension peer): its others stay, and only one
   * of the same name and index is replaced. Otherwise the peer has one module, this one.
   */
  alongside?: boolean
}

export interface AnnouncementsOptions {
  registry: Registry
  feed: RegistryFeed
  consumers: Consumers
  selfNamed: SelfNamedIndex
  refusals: Refusals
  limits: { maxModulesPerPeer: number, maxNameLength: number }
  logger: ConsolaInstance
  /** Known modules: who may announce them, their labels, the options each is sent on announce. */
  catalog: Pick<ModuleCatalog, 'refusal' | 'labelled' | 'optionsOf'>
  cluster?: ClusterLink
  /** Sends a hub-originated event to one peer. */
  send: (session: Session, type: string, data: Record<string, unknown>) => void
}

export interface Announcements {
  /** Registers a module of the peer; the refusal when it may not. */
  announce: (session: Session, announcement: Announcement) => HubError | undefined
  /** Names the peer itself, apart from its modules; the refusal when it may not. */
  identify: (session: Session, identity: Identity) => HubError | undefined
  registerConsumer: (session: Session, registration: ConsumerRegistration) => HubError | undefined
  unregisterConsumer: (session: Session, registration: ConsumerRegistration) => HubError | undefined
  /** Takes modules of `session` out of the registry (all of them by default) and tells the others. */
  deannounce: (session: Session, reason: DeannounceReason, entries?: readonly ModuleEntry[]) => void
}

/** What a local peer offers: its modules, its own identity, the events it consumes. */
export function createAnnouncements(options: AnnouncementsOptions): Announcements {
  const { registry, feed, consumers, selfNamed, refusals, limits, logger, catalog, cluster, send } = options

  /** The registry changed under `session`: its own list follows, and so do the other nodes. */
  function modulesChanged(session: Session, reason?: DeannounceReason): void {
    session.modules = registry.ofPeer(session.id)
    selfNamed.update(session)
    cluster?.update(session, reason)
  }

  function deannounce(session: Session, reason: DeannounceReason, entries: readonly ModuleEntry[] = session.modules): void {
    if (entries.length === 0)
      return
    for (const entry of entries) {
      registry.delete(entry)
      logger.debug(`module ${entry.name} of peer ${session.id} de-announced (${reason})`)
    }
    modulesChanged(session, reason)
    for (const entry of entries)
      feed.deannounced(entry, reason, session)
  }

  return {
    deannounce,

    announce(session, { name, index, identity: announced, alongside }) {
      const unauthenticated = refusals.requireAuth(session)
      if (unauthenticated)
        return unauthenticated
      const refused = refusals.ofAnnouncement(name, announced) ?? catalog.refusal(session, name)
      if (refused)
        return refusals.refuse(session, refused)
      const identity = catalog.labelled(name, announced)
      const current = session.modules.find(entry => entry.name === name && entry.index === index)
      const same = current !== undefined && JSON.stringify(current.identity) === JSON.stringify(identity)
      // A peer of one module replaces it; a peer of several replaces only the one of this name and index.
      const replaced = alongside ? (current ? [current] : []) : session.modules
      if (!same && session.modules.length - replaced.length >= limits.maxModulesPerPeer)
        return refusals.refuse(session, refusals.limitExceeded('modules per peer'))
      let entry: ModuleEntry | undefined
      if (!same) {
        deannounce(session, 're-announcing', replaced)
        entry = { name, index, identity, peerId: session.id }
        registry.set(entry)
        modulesChanged(session)
        logger.debug(`module ${name} announced by peer ${session.id}`)
      }
      feed.sync(session)
      if (entry)
        feed.announced(entry, session)
      const config = catalog.optionsOf(name)
      if (config)
        send(session, 'module:configure', { config })
    },

    identify(session, identity) {
      const unauthenticated = refusals.requireAuth(session)
      if (unauthenticated)
        return unauthenticated
      const refused = refusals.ofAnnouncement(identity.pluginId, identity)
      if (refused)
        return refusals.refuse(session, refused)
      session.identity = identity
      selfNamed.update(session)
      cluster?.update(session)
    },

    registerConsumer(session, registration) {
      const unauthenticated = refusals.requireAuth(session)
      if (unauthenticated)
        return unauthenticated
      if (registration.event.length > limits.maxNameLength || (registration.group?.length ?? 0) > limits.maxNameLength)
        return refusals.refuse(session, refusals.limitExceeded('consumer event or group'))
      if (!consumers.register(session, registration))
        return refusals.refuse(session, refusals.limitExceeded('consumer registrations'))
      logger.debug(`peer ${session.id} consumes ${registration.event} (group ${registration.group ?? 'default'})`)
      cluster?.update(session)
    },

    unregisterConsumer(session, registration) {
      const unauthenticated = refusals.requireAuth(session)
      if (unauthenticated)
        return unauthenticated
      if (consumers.unregister(session, registration))
        cluster?.update(session)
    },
  }
}
