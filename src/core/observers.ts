/** What the hub reports to observers (metrics, tracing); each entry is the listener's arguments. */
export interface HubObservations {
  /** A peer sent an event (any protocol, built-in or routed), after decoding; `authenticated` false when it had not authenticated. */
  received: [type: string, authenticated?: boolean]
  /** A routed event reached `delivered` peers, `seconds` after the hub took it in. */
  routed: [type: string, delivered: number, seconds: number]
  /** A failure: an error code sent to a peer, or the stage of an error the hub swallowed. */
  error: [reason: string]
  /** A peer was closed for silence (4000). */
  heartbeatExpired: []
  /** An upgrade was refused before it cost a socket (`max_peers`, `pending_per_address`). */
  refused: [reason: string]
  /** A frame over its socket's rate limit was dropped, or the socket closed for it (4029). */
  rateLimited: [action: 'dropped' | 'closed']
  /** A consumer delivery of `event` in `group` reached its one consumer, or found none. */
  consumerDelivery: [event: string, group: string, outcome: 'delivered' | 'missed']
  /** A consumer of the event type registered or left, on any node (gateways advertising handlers listen). */
  consumers: [event: string]
  /** A request (`route.reply`) of a local requester ended: replied, timed out, found no responder, or lost it. */
  request: [type: string, outcome: 'replied' | 'timeout' | 'no_responder' | 'responder_gone']
  /** A reply was dropped: a second one, one after the timeout, or one from a peer that is not the request's responder. */
  replyDropped: [type: string]
  /** Peers, modules or their health changed, on this node or another (a live view redraws). */
  topology: []
  /** A socket closed: by the hub (its `CLOSE` code) or by the peer (the code it sent); `peer` names it for people. */
  closed: [peer: string, code: number, reason: string, protocol: string]
  /** Registry deltas and syncs not sent to peers that fell behind (a full sync repairs them later). */
  registryDeltasSkipped: [count: number]
  /** Peers that fell behind on the registry got the full sync that repairs their view. */
  registryRepaired: [count: number]
  /** Delta peers got their first sync (after authenticating, or having fallen behind): a delta from the revision they held, or the full registry. */
  registryDeltaSync: [kind: 'delta' | 'full', count: number]
}

type Listener<K extends keyof HubObservations> = (...args: HubObservations[K]) => void

export interface Observers {
  /** Subscribes; returns the unsubscribe function. */
  on: <K extends keyof HubObservations>(name: K, listener: Listener<K>) => () => void
  /** Whether anyone listens: callers skip extra work (clocks) when nobody does. */
  has: (name: keyof HubObservations) => boolean
  emit: <K extends keyof HubObservations>(name: K, ...args: HubObservations[K]) => void
}

/** A tiny typed emitter; emitting with no listener costs one map lookup. */
export function createObservers(): Observers {
  const listeners = new Map<keyof HubObservations, Set<(...args: any[]) => void>>()
  return {
    on(name, listener) {
      let set = listeners.get(name)
      if (!set)
        listeners.set(name, set = new Set())
      set.add(listener)
      return () => {
        set.delete(listener)
        if (set.size === 0)
          listeners.delete(name)
      }
    },
    has: name => listeners.has(name),
    emit(name, ...args) {
      const set = listeners.get(name)
      if (!set)
        return
      for (const listener of set)
        listener(...args)
    },
  }
}
