import type { TimedRegistration } from '../core/consumers.ts'
import type { DeannounceReason, HubEvent, Identity } from '../types.ts'

/**
 * How hub nodes talk: channels of string messages, nothing more. An engine (memory, Redis,
 * later NATS or Valkey) only moves bytes; everything a cluster means lives in `cluster.ts`.
 */
export interface Backplane {
  /** Connected: publishes go out and subscriptions deliver. */
  readonly ready: boolean
  /**
   * Sends one message to every subscriber of `channel` on every node, this one included;
   * resolves to how many subscribers it reached (0: nobody listens there, e.g. a dead node).
   */
  publish: (channel: string, message: string) => Promise<number>
  /**
   * Delivers the messages of `channel` to `handler`, in the order each publisher sent them
   * (across channels too). The first subscription connects the engine. `handler` must not
   * throw: an engine calls it from its connection's callbacks.
   */
  subscribe: (channel: string, handler: (message: string) => void) => Promise<void>
  /** Called whenever `ready` changes, e.g. when the engine is lost or comes back; must not throw. */
  onReadyChange: (listener: (ready: boolean) => void) => void
  /** Called with the errors the engine recovers from by itself (e.g. once per lost connection). */
  onError: (listener: (error: unknown) => void) => void
  close: () => Promise<void>
}

/** A module as nodes tell each other about it. */
export interface RemoteModule {
  name: string
  index?: number
  identity: Identity
}

/** An authenticated peer of one node as the others know it: its id, its modules (an AIRI extension peer holds several) and its aliases. */
export interface RemotePeerState {
  id: string
  modules?: RemoteModule[]
  /** Other ids it answers to (`peer:authenticate {peerId}`). */
  aliases?: string[]
  /** Its own identity, apart from its modules (`PeerInfo.identity`). */
  identity?: Identity
  /** The gateway serving it (`PeerInfo.protocol`), for views that show peers by protocol. */
  protocol?: string
  /** The events it consumes (`module:consumer:register`), with when each was registered. */
  consumers?: TimedRegistration[]
  /**
   * Silent past the read timeout when its state was sent (health changes in between travel as
   * `health` messages): a node that learns the peer late, or repairs a gap, knows it too.
   */
  unhealthy?: true
}

/**
 * Every message between nodes, checked on receipt (`messages.ts`). Each node owns the entries
 * of its own authenticated peers (Phoenix.Tracker): it numbers its changes (`seq`), sends them
 * as deltas, and a full `state` when asked, when it (re)joins, or when a receiver saw a gap.
 */
export type ClusterMessage
  = | { type: 'state', node: string, seq: number, peers: RemotePeerState[], /** Asks every node to answer with its own state. */ hello: boolean }
    /** A peer authenticated, announced, lost modules (`reason` says why, then), or changed its consumer registrations. */
    | { type: 'peer', node: string, seq: number, peer: RemotePeerState, reason?: DeannounceReason }
    | { type: 'left', node: string, seq: number, id: string }
    | { type: 'heartbeat', node: string, seq: number }
    | { type: 'health', node: string, id: string, healthy: boolean }
    | { type: 'sync', node: string }
    | { type: 'bye', node: string }
    /** An event routed to some peers of the receiving node; `ack` is the token of the sender's receipt, to answer with the count. */
    | { type: 'route', node: string, to: string[], event: HubEvent, ack?: string }
    /** The reply of `responder` (a peer of `node`) to a request of a peer of the receiving node. */
    | { type: 'reply', node: string, responder: string, event: HubEvent }
    /** How many peers of `node` a routed event with a receipt reached. */
    | { type: 'ack', node: string, token: string, delivered: number }
