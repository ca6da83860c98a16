import type { ConsumerMode, Delivery, PeerInfo } from '../types.ts'

export interface ConsumerRegistration {
  event: string
  mode?: ConsumerMode
  group?: string
  priority?: number
}

/**
 * A registration as it travels between hub nodes: `at` is when it was made, in ms of the
 * registering node's clock (strictly increasing on that node), so every node orders the
 * consumers of a group alike.
 */
export interface TimedRegistration {
  event: string
  /** Omitted for the group `default`. */
  group?: string
  /** Omitted for 0. */
  priority?: number
  at: number
}

interface Consumer {
  peer: PeerInfo
  event: string
  group: string
  priority: number
  /** Registration time, for ties of priority; ties of it (registrations on two nodes in one ms) go by peer id. */
  at: number
}

/** A consumer-group is keyed by event and group; `consumer` mode is the group `default`. */
export const DEFAULT_CONSUMER_GROUP = 'default'

/** Events delivered to one chat-ingestion consumer once any consumer of them registered (AIRI stage-ui). */
export const CONSUMER_DEFAULTS: ReadonlyMap<string, Delivery> = new Map(['input:text', 'input:text:voice', 'input:voice'].map(type =>
  [type, { mode: 'consumer-group', group: 'chat-ingestion', selection: 'first' }],
))

/** Sticky keys kept per hub; the oldest is forgotten past it. */
export const MAX_STICKY_KEYS = 10_000

export interface Consumers {
  /**
   * False when the peer already holds `maxPerPeer` registrations (a re-registration is free).
   * `at` is the registration time another node gave it; a local one is stamped now.
   */
  register: (peer: PeerInfo, registration: ConsumerRegistration, at?: number) => boolean
  /** False when the peer held no such registration. */
  unregister: (peer: PeerInfo, registration: ConsumerRegistration) => boolean
  /** The peer's registrations as other nodes learn them; undefined when it holds none. */
  of: (peer: PeerInfo) => TimedRegistration[] | undefined
  /** The peer left: every registration of it goes. */
  removePeer: (peer: PeerInfo) => void
  /** Whether any consumer is registered for the event type. */
  has: (event: string) => boolean
  /**
   * The one consumer of `event` under `delivery` that passes `isCandidate`, and the group it
   * was chosen from; undefined peer when there is none. With `preview`, it only tells whom it
   * would choose: no round-robin turn or sticky key changes (explaining a route).
   */
  select: (event: string, delivery: Delivery, isCandidate: (peer: PeerInfo) => boolean, preview?: boolean) => { group: string, peer?: PeerInfo }
  /** The event types with any consumer, on any node. */
  events: () => Iterable<string>
  /** Every consumer of the event type, in every group, with its priority. */
  handlers: (event: string) => Array<{ peer: PeerInfo, priority: number }>
}

function groupOf(registration: { group?: string }): string {
  return registration.group ?? DEFAULT_CONSUMER_GROUP
}

export function createConsumers(options: { maxPerPeer: number, maxStickyKeys?: number, onChange?: (event: string) => void }): Consumers {
  const { maxPerPeer, maxStickyKeys = MAX_STICKY_KEYS, onChange } = options
  // event → group → consumers, ordered by priority (high first) then registration.
  const byEvent = new Map<string, Map<string, Consumer[]>>()
  const perPeer = new Map<PeerInfo, Map<string, Consumer>>()
  // Round-robin: the candidates last seen and the next index, per (event, group).
  const cursors = new Map<string, { members: string, next: number }>()
  // Sticky keys name peers by id: a peer that left holds no memory through them.
  const sticky = new Map<string, string>()
  let lastAt = 0

  const keyOf = (event: string, group: string): string => `${event}\0${group}`

  /** Whether `a` comes before `b`: priority (high first), then registration time, then peer id. */
  const before = (a: Consumer, b: Consumer): boolean => a.priority !== b.priority
    ? a.priority > b.priority
    : a.at !== b.at ? a.at < b.at : a.peer.id < b.peer.id

  function remove(peer: PeerInfo, event: string, group: string): boolean {
    const groups = byEvent.get(event)
    const consumers = groups?.get(group)
    const at = consumers?.findIndex(consumer => consumer.peer === peer) ?? -1
    if (at < 0)
      return false
    consumers!.splice(at, 1)
    if (consumers!.length === 0) {
      groups!.delete(group)
      cursors.delete(keyOf(event, group))
      if (groups!.size === 0)
        byEvent.delete(event)
    }
    const keys = perPeer.get(peer)!
    keys.delete(keyOf(event, group))
    if (keys.size === 0)
      perPeer.delete(peer)
    onChange?.(event)
    return true
  }

  return {
    register(peer, registration, at) {
      const { event } = registration
      const group = groupOf(registration)
      const key = keyOf(event, group)
      const held = perPeer.get(peer)
      if (!held?.has(key) && (held?.size ?? 0) >= maxPerPeer)
        return false
      remove(peer, event, group)
      let groups = byEvent.get(event)
      if (!groups)
        byEvent.set(event, groups = new Map())
      let consumers = groups.get(group)
      if (!consumers)
        groups.set(group, consumers = [])
      // Strictly increasing here, so registrations of this node keep their order everywhere.
      if (at === undefined)
        at = lastAt = Math.max(Date.now(), lastAt + 1)
      const consumer: Consumer = { peer, event, group, priority: registration.priority ?? 0, at }
      const index = consumers.findIndex(other => before(consumer, other))
      consumers.splice(index < 0 ? consumers.length : index, 0, consumer)
      // Looked up again: replacing the peer's only registration removed its entry.
      const keys = perPeer.get(peer)
      if (keys)
        keys.set(key, consumer)
      else
        perPeer.set(peer, new Map([[key, consumer]]))
      onChange?.(event)
      return true
    },

    unregister: (peer, registration) => remove(peer, registration.event, groupOf(registration)),

    of(peer) {
      const held = perPeer.get(peer)
      if (!held)
        return undefined
      return [...held.values()].map(({ event, group, priority, at }) => {
        const registration: TimedRegistration = { event, at }
        if (group !== DEFAULT_CONSUMER_GROUP)
          registration.group = group
        if (priority !== 0)
          registration.priority = priority
        return registration
      })
    },

    removePeer(peer) {
      for (const { event, group } of [...perPeer.get(peer)?.values() ?? []])
        remove(peer, event, group)
    },

    has: event => byEvent.has(event),

    events: () => byEvent.keys(),

    handlers: event => [...byEvent.get(event)?.values() ?? []].flat().map(({ peer, priority }) => ({ peer, priority })),

    select(event, delivery, isCandidate, preview = false) {
      const group = groupOf(delivery)
      const candidates = byEvent.get(event)?.get(group)?.filter(consumer => isCandidate(consumer.peer)) ?? []
      if (candidates.length === 0)
        return { group }
      const key = keyOf(event, group)
      switch (delivery.selection) {
        case 'round-robin': {
          // A consumer joining, leaving or falling out of candidacy starts the turn again.
          const members = candidates.map(consumer => consumer.peer.id).join('\0')
          let cursor = cursors.get(key)
          if (cursor?.members !== members) {
            cursor = { members, next: 0 }
            if (!preview)
              cursors.set(key, cursor)
          }
          const chosen = candidates[cursor.next % candidates.length]!
          if (!preview)
            cursor.next = (cursor.next + 1) % candidates.length
          return { group, peer: chosen.peer }
        }
        case 'sticky': {
          if (delivery.stickyKey === undefined)
            return { group, peer: candidates[0]!.peer }
          const stickyKey = `${key}\0${delivery.stickyKey}`
          const held = sticky.get(stickyKey)
          const kept = held === undefined ? undefined : candidates.find(consumer => consumer.peer.id === held)
          if (kept)
            return { group, peer: kept.peer }
          const chosen = candidates[0]!.peer
          if (preview)
            return { group, peer: chosen }
          sticky.delete(stickyKey)
          if (sticky.size >= maxStickyKeys)
            sticky.delete(sticky.keys().next().value!)
          sticky.set(stickyKey, chosen.id)
          return { group, peer: chosen }
        }
        default:
          // `first` and `priority`: the head of the order (priority, then registration).
          return { group, peer: candidates[0]!.peer }
      }
    },
  }
}
