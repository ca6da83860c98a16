import type { AnnouncedIdentity, HubEvent, Identity, ModuleEntry } from '../types.ts'
import type { Observers } from './observers.ts'
import type { Registry } from './registry.ts'
import type { Router } from './router.ts'
import type { Session } from './session.ts'
// The turn's end is real (node:timers); the repair check is a global timer, which a test's fake clock drives.
import { setImmediate } from 'node:timers'
import { markPlainJson } from './event.ts'
import { createTurnQueue } from './turn.ts'

/** How often peers that fell behind on registry changes are checked for a drained backlog (ms). */
export const REPAIR_CHECK_MS = 100

export interface RegistryFeedOptions {
  registry: Registry
  /** Who hears registry changes: every authenticated session. */
  recipients: () => Iterable<Session>
  deliver: Router['deliver']
  /** A hub-originated event (no parentId: registry traffic answers nobody). */
  createEvent: (type: string, data: Record<string, unknown>) => HubEvent
  /** An identity in the shape its module announced it (each AIRI generation's gateway renders it for its peers). */
  announcedOf: (identity: Identity) => AnnouncedIdentity
  /**
   * Bytes a peer may have waiting before registry deltas to it stop being queued; it gets one
   * full sync once its backlog is below half of this.
   */
  laggingBytes: number
  observers: Observers
  /** A peer fell behind and its deltas are now coalesced (for a log line). */
  onLagging: (session: Session, waiting: number) => void
}

export interface RegistryFeed {
  /** Queues a full `registry:modules:sync` for the peer; the turn's syncs leave together. */
  sync: (session: Session) => void
  announced: (entry: ModuleEntry, except?: Session) => void
  deannounced: (entry: ModuleEntry, reason: string, except?: Session) => void
  health: (entry: ModuleEntry, healthy: boolean, except?: Session) => void
  /** Stops the repair timer. */
  stop: () => void
}

// One module as registry events carry it.
interface EntryData extends Record<string, unknown> { name: string, index?: number, identity: AnnouncedIdentity }

/** A HEAD (extension) module is announced and de-announced under both names, the HEAD one first (stage-ui listens to both). */
function changeTypes(entry: ModuleEntry, change: 'announced' | 'de-announced'): string[] {
  const { announced } = entry.identity
  return announced && 'extension' in announced ? [`extension:module:${change}`, `module:${change}`] : [`module:${change}`]
}

/**
 * Registry traffic to peers (`module:announced`, `module:de-announced`,
 * `registry:modules:health:*`, `registry:modules:sync`), paced so a reconnect storm cannot get
 * healthy peers closed as slow consumers. A peer that keeps up sees every delta, in order. A
 * peer with more than `laggingBytes` unsent gets no more deltas: it is marked lagging and,
 * once its backlog has drained, gets ONE full sync instead (a sync replaces a client's view,
 * which is how AIRI's own server-runtime sends one after every change), followed by the health
 * of the modules whose health changed meanwhile (a sync carries none). Registry traffic never
 * closes a peer: only routed traffic counts toward the slow-consumer limit, so what the
 * registry adds to a backlog stays bounded (`laggingBytes`, one turn of deltas, one sync).
 */
export function createRegistryFeed(options: RegistryFeedOptions): RegistryFeed {
  const { registry, recipients, deliver, createEvent, announcedOf, laggingBytes, observers, onLagging } = options
  // Every delta bumps the sequence; a lagging peer remembers the one it missed first.
  let sequence = 0
  const lagging = new Map<Session, number>()
  // The last health change of each peer with modules (its modules share its liveness): the sequence and the state it took.
  const healthChanges = new Map<string, { sequence: number, healthy: boolean }>()
  let repairTimer: ReturnType<typeof setTimeout> | undefined

  const entryData = (entry: ModuleEntry): EntryData => ({ name: entry.name, index: entry.index, identity: announcedOf(entry.identity) })

  // Syncs repair; they never mark a peer lagging (nor close it).
  const ignoreBacklog = (): void => {}

  // A sync is the registry's state at the turn's end, encoded once for all who asked in it.
  let syncCache: { revision: number, modules: EntryData[] } | undefined
  function sendSync(to: Iterable<Session>): void {
    if (syncCache?.revision !== registry.revision)
      syncCache = { revision: registry.revision, modules: [...registry.entries()].map(entryData) }
    deliver(markPlainJson(createEvent('registry:modules:sync', { modules: syncCache.modules })), to, undefined, ignoreBacklog)
  }
  const syncs = createTurnQueue<Session>(asked => sendSync(new Set(asked.filter(session => session.state !== 'closed'))))

  // What this turn queued per peer: a connection may tell only what earlier turns left unsent,
  // and one turn of a storm can carry hundreds of deltas (every peer that dropped at once).
  let queued = new Map<Session, number>()
  function judge(session: Session, waiting: number, frameLength: number): void {
    if (queued.size === 0)
      setImmediate(() => queued = new Map())
    const before = queued.get(session) ?? 0
    queued.set(session, before + frameLength)
    if (waiting + before <= laggingBytes || lagging.has(session))
      return
    lagging.set(session, sequence)
    onLagging(session, waiting)
    repairTimer ??= setTimeout(repair, REPAIR_CHECK_MS).unref()
  }

  function publish(type: string, data: Record<string, unknown>, except?: Session): void {
    sequence++
    const to: Session[] = []
    let skipped = 0
    for (const session of recipients()) {
      if (session === except)
        continue
      if (lagging.has(session))
        skipped++
      else
        to.push(session)
    }
    deliver(markPlainJson(createEvent(type, data)), to, undefined, judge)
    if (skipped > 0)
      observers.emit('registryDeltasSkipped', skipped)
  }

  /** Lagging peers whose backlog has drained get one sync, then the health changes they missed. */
  function repair(): void {
    repairTimer = undefined
    const drained = new Map<Session, number>()
    for (const [session, since] of lagging) {
      if (session.state === 'closed') {
        lagging.delete(session)
      }
      else if ((session.connection.buffered?.() ?? 0) < laggingBytes / 2) {
        lagging.delete(session)
        drained.set(session, since)
      }
    }
    if (drained.size > 0) {
      sendSync(drained.keys())
      observers.emit('registryRepaired', drained.size)
      for (const [peerId, change] of healthChanges) {
        const to = [...drained].filter(([session, since]) => change.sequence > since && session.id !== peerId).map(([session]) => session)
        if (to.length === 0)
          continue
        for (const entry of registry.ofPeer(peerId))
          deliver(markPlainJson(createEvent(...healthPayload(entry, change.healthy))), to, undefined, judge)
      }
    }
    if (lagging.size > 0)
      repairTimer = setTimeout(repair, REPAIR_CHECK_MS).unref()
  }

  function healthPayload(entry: ModuleEntry, healthy: boolean): [type: string, data: Record<string, unknown>] {
    return healthy
      ? ['registry:modules:health:healthy', entryData(entry)]
      : ['registry:modules:health:unhealthy', { ...entryData(entry), reason: 'heartbeat late' }]
  }

  return {
    sync: syncs.push,
    announced(entry, except) {
      for (const type of changeTypes(entry, 'announced'))
        publish(type, entryData(entry), except)
    },
    deannounced(entry, reason, except) {
      if (registry.ofPeer(entry.peerId).length === 0)
        healthChanges.delete(entry.peerId)
      for (const type of changeTypes(entry, 'de-announced'))
        publish(type, { ...entryData(entry), reason }, except)
    },
    health(entry, healthy, except) {
      healthChanges.set(entry.peerId, { sequence: sequence + 1, healthy })
      publish(...healthPayload(entry, healthy), except)
    },
    stop() {
      clearTimeout(repairTimer)
      repairTimer = undefined
      lagging.clear()
    },
  }
}
