import type { AnnouncedIdentity, EventEncoder, HubEvent, Identity, ModuleEntry } from '../types.ts'
import type { Observers } from './observers.ts'
import type { RegistryChange, RegistryDiff, RegistryLog } from './registry-log.ts'
import type { Registry } from './registry.ts'
import type { Router } from './router.ts'
import type { Session } from './session.ts'
// The turn's end is real (node:timers); the repair check is a global timer, which a test's fake clock drives.
import { setImmediate } from 'node:timers'
import { markPlainJson } from './event.ts'
import { createTurnQueue } from './turn.ts'

/** How often peers that fell behind on registry changes are checked for a drained backlog (ms). */
export const REPAIR_CHECK_MS = 100

/**
 * How a peer asked to hear the registry when it authenticated (AIRI `module:authenticate
 * {registry}`); a peer that did not ask gets every change as its own event.
 */
export interface RegistryRequest {
  /** `delta`: one `registry:modules:delta` per turn that changed the registry; `none`: nothing at all. */
  mode: 'delta' | 'none'
  /** The last revision the peer holds (of this epoch): it gets only what changed since, while the log holds it. */
  since?: { epoch: string, revision: number }
}

export interface RegistryFeedOptions {
  registry: Registry
  /** The recent changes by revision, for delta peers. */
  log: RegistryLog
  /** Whether a module's peer is healthy now (delta peers see it in each entry). */
  healthOf: (entry: ModuleEntry) => boolean
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
  /** A delta peer named a revision the log no longer holds (or another epoch's): it gets a full sync (for a log line). */
  onGap: (session: Session, since: NonNullable<RegistryRequest['since']>, epoch: string) => void
}

export interface RegistryFeed {
  /** An authenticated peer hears the registry as it asked (again, when it authenticates again): it gets its first sync at the turn's end. */
  admit: (session: Session, request?: RegistryRequest) => void
  /** The peer is gone: it hears nothing more. */
  leave: (session: Session) => void
  /** Queues a full `registry:modules:sync` for a peer that hears every change; the turn's syncs leave together. */
  sync: (session: Session) => void
  announced: (entry: ModuleEntry, except?: Session) => void
  deannounced: (entry: ModuleEntry, reason: string, except?: Session) => void
  health: (entry: ModuleEntry, healthy: boolean, except?: Session) => void
  /** Stops the repair timer. */
  stop: () => void
}

// One module as registry events carry it.
interface EntryData extends Record<string, unknown> { name: string, index?: number, identity: AnnouncedIdentity }

// One module as delta peers see it: its owner tells apart modules of the same name and index.
interface DeltaEntry extends EntryData { peer: string, healthy: boolean }

// A sync of one revision, and its encodings by encoder.
interface KeptSync { revision: number, event: HubEvent, frames: Map<EventEncoder, string | Error> }

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
 * registry adds to a backlog stays bounded (`laggingBytes`, one turn of deltas, one sync). A
 * sync asked by a peer already past `laggingBytes` (a re-announce or re-authentication per
 * frame, unread) is held the same way: it gets one once it drained.
 *
 * Peers that asked for `delta` get instead, at the end of each turn that changed the registry,
 * one `registry:modules:delta` (the turn's net changes by revision, encoded once for all of
 * them); their first sync is a delta from the revision they hold when the log still has it,
 * else the full registry with its revision. Peers that asked for `none` are in no recipient set.
 */
export function createRegistryFeed(options: RegistryFeedOptions): RegistryFeed {
  const { registry, log, healthOf, deliver, createEvent, announcedOf, laggingBytes, observers, onLagging, onGap } = options
  // Who hears every change as its own event, and who hears deltas; a `none` peer is in neither.
  const perChange = new Set<Session>()
  const deltaPeers = new Set<Session>()
  // Delta peers waiting for their first sync at the turn's end, with the revision they hold.
  const joining = new Map<Session, RegistryRequest['since']>()
  // Every delta bumps the sequence; a lagging peer remembers the one it missed first.
  let sequence = 0
  const lagging = new Map<Session, number>()
  // The last health change of each peer with modules (its modules share its liveness): the sequence and the state it took.
  const healthChanges = new Map<string, { sequence: number, healthy: boolean }>()
  let repairTimer: ReturnType<typeof setTimeout> | undefined

  const entryData = (entry: ModuleEntry): EntryData => ({ name: entry.name, index: entry.index, identity: announcedOf(entry.identity) })

  // A sync never marks a peer lagging (nor closes it): what it adds is one registry.
  const ignoreBacklog = (): void => {}

  function fallBehind(session: Session, waiting: number): void {
    if (lagging.has(session))
      return
    lagging.set(session, sequence)
    onLagging(session, waiting)
    repairTimer ??= setTimeout(repair, REPAIR_CHECK_MS).unref()
  }

  /**
   * The peers a sync may go to now. One already behind (over `laggingBytes` unsent, or lagging)
   * gets none: it is marked lagging, and the repair sends it one sync once it drained. A peer
   * asks for a whole registry with every re-announce or re-authentication, read or not.
   */
  function keepingUp(to: Iterable<Session>): Session[] {
    const ready: Session[] = []
    let held = 0
    for (const session of to) {
      const waiting = session.connection.buffered?.() ?? 0
      if (waiting <= laggingBytes && !lagging.has(session)) {
        ready.push(session)
        continue
      }
      fallBehind(session, waiting)
      held++
    }
    if (held > 0)
      observers.emit('registryDeltasSkipped', held)
    return ready
  }

  /**
   * A sync built once per revision (`revisionOf`) for all who ask, whichever turn (a reconnect
   * storm's many turns), and encoded once per pure encoder (one per protocol). Another encoder's
   * frame (a socket's own, like Makaio's routing filter) is not kept: it may differ next time,
   * and there is one per socket. The sender returns how many peers it went to.
   */
  function keptSync(revisionOf: () => number, build: () => HubEvent): (to: Iterable<Session>) => number {
    let kept: KeptSync | undefined
    return (to) => {
      const ready = keepingUp(to)
      if (ready.length === 0)
        return 0
      const revision = revisionOf()
      if (kept?.revision !== revision)
        kept = { revision, event: markPlainJson(build()), frames: new Map() }
      const delivered = deliver(kept.event, ready, undefined, ignoreBacklog, kept.frames)
      for (const encoder of kept.frames.keys()) {
        if (!encoder.pure)
          kept.frames.delete(encoder)
      }
      return delivered
    }
  }

  // The registry's state, for peers that hear every change.
  const sendSync = keptSync(() => registry.revision, () => createEvent('registry:modules:sync', { modules: [...registry.entries()].map(entryData) }))
  const syncs = createTurnQueue<Session>(asked => sendSync(new Set(asked.filter(session => perChange.has(session) && session.state !== 'closed'))))

  const deltaEntry = (entry: ModuleEntry): DeltaEntry => ({ peer: entry.peerId, ...entryData(entry), healthy: healthOf(entry) })
  const deltaEvent = (from: number, diff: RegistryDiff): HubEvent => markPlainJson(createEvent('registry:modules:delta', {
    epoch: log.epoch,
    revision: log.revision,
    from,
    added: diff.added.map(deltaEntry),
    removed: diff.removed.map(({ peerId, name, index }) => ({ peer: peerId, name, index })),
    health: diff.health.map(({ entry: { peerId, name, index }, healthy }) => ({ peer: peerId, name, index, healthy })),
  }))
  // The full registry for delta peers: with health, so kept by the log's revision (health changes bump it).
  const sendFullSync = keptSync(() => log.revision, () => createEvent('registry:modules:sync', { modules: [...registry.entries()].map(deltaEntry), epoch: log.epoch, revision: log.revision }))

  // The revision delta peers were last brought to; the turn's changes lie after it.
  let flushed = log.revision
  let flushQueued = false
  function queueFlush(): void {
    if (!flushQueued) {
      flushQueued = true
      setImmediate(flush)
    }
  }

  /** At the turn's end: the turn's delta to the delta peers that keep up, then the first syncs of those that joined. */
  function flush(): void {
    flushQueued = false
    if (log.revision !== flushed) {
      const to = [...deltaPeers].filter(session => !lagging.has(session))
      if (to.length > 0) {
        const diff = log.diffSince(flushed)
        // A turn of more changes than the log holds (a node of many modules gone at once) is a full sync.
        if (diff)
          deliver(deltaEvent(flushed, diff), to, undefined, judge)
        else
          sendFullSync(to)
      }
      if (to.length < deltaPeers.size)
        observers.emit('registryDeltasSkipped', deltaPeers.size - to.length)
      flushed = log.revision
    }
    if (joining.size === 0)
      return
    const full: Session[] = []
    const recovering = new Map<number, Session[]>()
    for (const [session, since] of joining) {
      deltaPeers.add(session)
      if (since?.epoch === log.epoch && log.holds(since.revision)) {
        const group = recovering.get(since.revision)
        if (group)
          group.push(session)
        else
          recovering.set(since.revision, [session])
        continue
      }
      if (since)
        onGap(session, since, log.epoch)
      full.push(session)
    }
    joining.clear()
    // One diff per revision held, however many peers held it; a gap that would carry more than
    // the registry (a mass reconnect) is smaller as a full sync. Removed and health items are
    // keys, about half an entry each: a small registry that lost and gained a few is a delta.
    for (const [since, asked] of recovering) {
      const to = keepingUp(asked)
      if (to.length === 0)
        continue
      const diff = log.diffSince(since)!
      if (diff.added.length + (diff.removed.length + diff.health.length) / 2 > registry.size) {
        full.push(...to)
        continue
      }
      deliver(deltaEvent(since, diff), to, undefined, ignoreBacklog)
      observers.emit('registryDeltaSync', 'delta', to.length)
    }
    const sent = sendFullSync(full)
    if (sent > 0)
      observers.emit('registryDeltaSync', 'full', sent)
  }

  function record(change: RegistryChange): void {
    log.append(change)
    if (deltaPeers.size > 0)
      queueFlush()
  }

  // What this turn queued per peer: a connection may tell only what earlier turns left unsent,
  // and one turn of a storm can carry hundreds of deltas (every peer that dropped at once).
  let queued = new Map<Session, number>()
  function judge(session: Session, waiting: number, frameLength: number): void {
    if (queued.size === 0)
      setImmediate(() => queued = new Map())
    const before = queued.get(session) ?? 0
    queued.set(session, before + frameLength)
    if (waiting + before > laggingBytes)
      fallBehind(session, waiting)
  }

  function publish(type: string, data: Record<string, unknown>, except?: Session): void {
    sequence++
    const to: Session[] = []
    let skipped = 0
    for (const session of perChange) {
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
        // A delta peer joins again: its full sync leaves at the turn's end, after that turn's delta.
        if (deltaPeers.delete(session)) {
          joining.set(session, undefined)
          queueFlush()
          observers.emit('registryRepaired', 1)
        }
        else {
          drained.set(session, since)
        }
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

  function leave(session: Session): void {
    perChange.delete(session)
    deltaPeers.delete(session)
    joining.delete(session)
    lagging.delete(session)
  }

  return {
    admit(session, request) {
      leave(session)
      if (!request) {
        perChange.add(session)
        syncs.push(session)
      }
      else if (request.mode === 'delta') {
        joining.set(session, request.since)
        queueFlush()
      }
    },
    leave,
    sync(session) {
      if (perChange.has(session))
        syncs.push(session)
    },
    announced(entry, except) {
      record({ kind: 'added', entry })
      for (const type of changeTypes(entry, 'announced'))
        publish(type, entryData(entry), except)
    },
    deannounced(entry, reason, except) {
      record({ kind: 'removed', entry })
      if (registry.ofPeer(entry.peerId).length === 0)
        healthChanges.delete(entry.peerId)
      for (const type of changeTypes(entry, 'de-announced'))
        publish(type, { ...entryData(entry), reason }, except)
    },
    health(entry, healthy, except) {
      record({ kind: 'health', entry, healthy })
      healthChanges.set(entry.peerId, { sequence: sequence + 1, healthy })
      publish(...healthPayload(entry, healthy), except)
    },
    stop() {
      clearTimeout(repairTimer)
      repairTimer = undefined
      lagging.clear()
      deltaPeers.clear()
      joining.clear()
    },
  }
}
