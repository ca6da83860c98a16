import type { ConsumerMode, Delivery, PeerInfo } from '../types.ts'

export interface ConsumerRegistration {
  event: string
  mode?: ConsumerMode
  group?: string
  priority?: number
}

interface Consumer {
  peer: PeerInfo
  priority: number
  /** Registration order, for ties of priority. */
  seq: number
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
  /** False when the peer already holds `maxPerPeer` registrations (a re-registration is free). */
  register: (peer: PeerInfo, registration: ConsumerRegistration) => boolean
  unregister: (peer: PeerInfo, registration: ConsumerRegistration) => void
  /** The peer left: every registration of it goes. */
  removePeer: (peer: PeerInfo) => void
  /** Whether any consumer is registered for the event type. */
  has: (event: string) => boolean
  /**
   * The one consumer of `event` under `delivery` that passes `isCandidate`, and the group it
   * was chosen from; undefined peer when there is none.
   */
  select: (event: string, delivery: Delivery, isCandidate: (peer: PeerInfo) => boolean) => { group: string, peer?: PeerInfo }
}

function groupOf(registration: { group?: string }): string {
  return registration.group ?? DEFAULT_CONSUMER_GROUP
}

export function createConsumers(options: { maxPerPeer: number, maxStickyKeys?: number }): Consumers {
  const { maxPerPeer, maxStickyKeys = MAX_STICKY_KEYS } = options
  // event → group → consumers, ordered by priority (high first) then registration.
  const byEvent = new Map<string, Map<string, Consumer[]>>()
  const perPeer = new Map<PeerInfo, Set<string>>()
  // Round-robin: the candidates last seen and the next index, per (event, group).
  const cursors = new Map<string, { members: string, next: number }>()
  // Sticky keys name peers by id: a peer that left holds no memory through them.
  const sticky = new Map<string, string>()
  let seq = 0

  const keyOf = (event: string, group: string): string => `${event}\0${group}`

  function remove(peer: PeerInfo, event: string, group: string): void {
    const groups = byEvent.get(event)
    const consumers = groups?.get(group)
    const at = consumers?.findIndex(consumer => consumer.peer === peer) ?? -1
    if (at < 0)
      return
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
  }

  return {
    register(peer, registration) {
      const { event } = registration
      const group = groupOf(registration)
      const key = keyOf(event, group)
      const keys = perPeer.get(peer)
      if (!keys?.has(key) && (keys?.size ?? 0) >= maxPerPeer)
        return false
      remove(peer, event, group)
      let groups = byEvent.get(event)
      if (!groups)
        byEvent.set(event, groups = new Map())
      let consumers = groups.get(group)
      if (!consumers)
        groups.set(group, consumers = [])
      const consumer = { peer, priority: registration.priority ?? 0, seq: seq++ }
      const at = consumers.findIndex(other => other.priority < consumer.priority)
      consumers.splice(at < 0 ? consumers.length : at, 0, consumer)
      if (keys)
        keys.add(key)
      else
        perPeer.set(peer, new Set([key]))
      return true
    },

    unregister(peer, registration) {
      remove(peer, registration.event, groupOf(registration))
    },

    removePeer(peer) {
      for (const key of perPeer.get(peer) ?? []) {
        const [event, group] = key.split('\0') as [string, string]
        remove(peer, event, group)
      }
    },

    has: event => byEvent.has(event),

    select(event, delivery, isCandidate) {
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
          if (cursor?.members !== members)
            cursors.set(key, cursor = { members, next: 0 })
          const chosen = candidates[cursor.next % candidates.length]!
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
