import type { ConsolaInstance } from 'consola'
import type { ResolvedLimits } from '../options.ts'
import type { HubEvent, PeerInfo } from '../types.ts'
import type { Observers } from './observers.ts'
import type { Refusals } from './refusals.ts'
import type { RemotePeer } from './router.ts'
import type { Session } from './session.ts'
import { HubError } from '../errors.ts'
import { DEFAULT_REQUEST_TIMEOUT_MS } from '../options.ts'

/** Request types whose round-robin turn is remembered; the oldest is forgotten past it. */
export const MAX_ROUND_ROBIN_TYPES = 10_000
/** Ended requests remembered (at least half as many), so that a late reply to one is dropped (and counted), not routed. */
export const MAX_ENDED_REQUESTS = 10_000

/** How a request ended, as `hub_requests_total{outcome}` counts it. */
export type RequestOutcome = 'replied' | 'timeout' | 'no_responder' | 'responder_gone'

/** One request waiting for its reply, on the requester's node or (a remote requester's) on the responder's. */
interface Pending {
  id: string
  type: string
  /** The local requester, or the node of a remote one. */
  requester: Session | string
  responderId: string
  /** The responder's node when it is remote. */
  responderNode?: string
  timer: ReturnType<typeof setTimeout>
}

export interface RequestsOptions {
  limits: Pick<ResolvedLimits, 'maxPendingRequestsPerPeer' | 'maxRequestTimeoutMs'>
  refusals: Refusals
  observers: Observers
  logger: ConsolaInstance
  /** Delivers an event to local sessions. */
  deliver: (event: HubEvent, recipients: Session[]) => number
  /** Sends a reply to a requester on another node (clustered only). */
  replyTo?: (node: string, responderId: string, event: HubEvent) => void
}

export interface Requests {
  /** Why `session` may not open this request now (too many pending, its id already pending). */
  check: (session: Session, event: HubEvent) => HubError | undefined
  /**
   * The one responder among the recipients routing selected, and the request opened with it;
   * none (and `no responder` to the requester at once) when there is no candidate.
   */
  open: (requester: Session, event: HubEvent, recipients: ReadonlySet<PeerInfo>) => PeerInfo | undefined
  /** The responder `open` would choose now among the recipients, without taking a turn (explaining a route). */
  responder: (type: string, recipients: ReadonlySet<PeerInfo>) => PeerInfo | undefined
  /**
   * An event (source stamped) whose `parentId` names a request this node knows: delivered to
   * its requester (1) if `session` is its responder and it is the first answer, else dropped (0);
   * undefined when the event answers no request.
   */
  reply: (session: Session, event: HubEvent) => number | undefined
  /** A request from a requester on `node` was forwarded here to the local `responder`. */
  served: (node: string, event: HubEvent, responder: Session) => void
  /** A reply from `responderId` of `node` to a request of a local requester. */
  remoteReply: (node: string, responderId: string, event: HubEvent) => void
  /** A peer, local or remote, is gone: its pending requests are dropped, and the requests it was to answer fail. */
  leave: (peer: PeerInfo) => void
  /** Requests of local requesters waiting for their reply. */
  readonly pending: number
  /** Stops every timer (the hub closes). */
  stop: () => void
}

/** The timeout a request asked for, within the hub's maximum. */
export function requestTimeout(event: HubEvent, maxMs: number): number {
  const reply = event.route?.reply
  const asked = typeof reply === 'object' && reply.timeoutMs !== undefined ? reply.timeoutMs : DEFAULT_REQUEST_TIMEOUT_MS
  return Math.min(asked, maxMs)
}

/**
 * Requests with replies: each goes to exactly one responder, and the first event from it whose
 * `parentId` is the request's id goes back to the requester only. The table of pending requests
 * is keyed by request id; a requester's are bounded, and each has a deadline.
 */
export function createRequests(options: RequestsOptions): Requests {
  const { limits, refusals, observers, logger, deliver, replyTo } = options
  const pending = new Map<string, Pending>()
  const byRequester = new Map<Session, Set<string>>()
  const byResponder = new Map<string, Set<string>>()
  // Round-robin turns by request type: instances of one plugin share the load.
  const turns = new Map<string, number>()
  // Ended requests by id → their requester's peer id ('' for another node's), in two generations:
  // the older one is dropped whole once the newer is full (deleting a Map's oldest entry one by
  // one is slow in V8).
  let ended = new Map<string, string>()
  let endedBefore = new Map<string, string>()
  let local = 0

  // A peer's set stays while it is connected (emptied and refilled, not rebuilt); `leave` drops it.
  function index<K>(map: Map<K, Set<string>>, key: K, id: string): void {
    const ids = map.get(key)
    if (ids)
      ids.add(id)
    else
      map.set(key, new Set<string>().add(id))
  }

  function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
    map.delete(key)
    if (map.size >= max)
      map.delete(map.keys().next().value!)
    map.set(key, value)
  }

  function settle(request: Pending, outcome?: RequestOutcome): void {
    pending.delete(request.id)
    clearTimeout(request.timer)
    byResponder.get(request.responderId)?.delete(request.id)
    if (typeof request.requester !== 'string') {
      local--
      byRequester.get(request.requester)?.delete(request.id)
      if (outcome)
        observers.emit('request', request.type, outcome)
    }
    if (ended.size >= MAX_ENDED_REQUESTS / 2) {
      endedBefore = ended
      ended = new Map()
    }
    ended.set(request.id, typeof request.requester === 'string' ? '' : request.requester.id)
  }

  function fail(requester: Session, id: string, error: HubError): void {
    if (requester.state !== 'closed')
      refusals.fail(requester, error, id)
  }

  function expire(request: Pending): void {
    settle(request, typeof request.requester === 'string' ? undefined : 'timeout')
    if (typeof request.requester !== 'string') {
      logger.debug(`peer ${request.requester.id}: request ${request.id} (${request.type}) timed out waiting for ${request.responderId}`)
      fail(request.requester, request.id, new HubError('request_timeout', 'request timed out'))
    }
  }

  function add(request: Omit<Pending, 'timer'>, timeoutMs: number): void {
    const entry = request as Pending
    entry.timer = setTimeout(() => expire(entry), timeoutMs)
    entry.timer.unref?.()
    pending.set(entry.id, entry)
    index(byResponder, entry.responderId, entry.id)
    if (typeof entry.requester !== 'string') {
      local++
      index(byRequester, entry.requester, entry.id)
    }
  }

  /** Healthy first, then on this node, then round-robin by type among what is left. */
  function choose(type: string, recipients: ReadonlySet<PeerInfo>, preview = false): PeerInfo | undefined {
    let pool = [...recipients]
    if (pool.length > 1) {
      const healthy = pool.filter(peer => !(peer as Partial<Session | RemotePeer>).unhealthy)
      if (healthy.length > 0)
        pool = healthy
      const here = pool.filter(peer => (peer as Partial<RemotePeer>).node === undefined)
      if (here.length > 0)
        pool = here
    }
    if (pool.length <= 1)
      return pool[0]
    pool.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
    const turn = turns.get(type) ?? 0
    if (!preview)
      remember(turns, type, turn + 1, MAX_ROUND_ROBIN_TYPES)
    return pool[turn % pool.length]
  }

  /** A second answer, an answer after the request ended, or one from a peer that is not the responder. */
  function dropped(type: string, id: string, from: string): number {
    observers.emit('replyDropped', type)
    logger.debug(`peer ${from}: reply to request ${id} dropped (answered already, ended, or not its responder)`)
    return 0
  }

  return {
    check(session, event) {
      // Counted and logged (once per peer, naming it) where the refusal is answered.
      if ((byRequester.get(session)?.size ?? 0) >= limits.maxPendingRequestsPerPeer)
        return refusals.limitExceeded('pending requests')
      if (pending.has(event.metadata!.event!.id!))
        return new HubError('invalid_event', 'request id already pending')
    },

    open(requester, event, recipients) {
      const id = event.metadata!.event!.id!
      const responder = choose(event.type, recipients)
      if (!responder) {
        observers.emit('request', event.type, 'no_responder')
        fail(requester, id, new HubError('no_responder', 'no responder'))
        return undefined
      }
      add({ id, type: event.type, requester, responderId: responder.id, responderNode: (responder as Partial<RemotePeer>).node }, requestTimeout(event, limits.maxRequestTimeoutMs))
      ;(responder as Partial<Session>).connection?.requested?.(event)
      return responder
    },

    responder: (type, recipients) => choose(type, recipients, true),

    reply(session, event) {
      const id = event.metadata?.event?.parentId
      if (id === undefined)
        return undefined
      const request = pending.get(id)
      if (!request) {
        // A late reply (after the timeout, the requester's or the responder's leaving: a responder
        // that reconnected answers as a new peer) goes to nobody; the requester's own events that
        // name its request go on as events.
        const requester = ended.get(id) ?? endedBefore.get(id)
        return requester === undefined || requester === session.id ? undefined : dropped(event.type, id, session.id)
      }
      if (request.responderId !== session.id || request.responderNode !== undefined)
        return dropped(event.type, id, session.id)
      settle(request, 'replied')
      if (typeof request.requester === 'string') {
        replyTo?.(request.requester, session.id, event)
        return 1
      }
      return answer(request.requester, event, id)
    },

    served(node, event, responder) {
      const id = event.metadata?.event?.id
      if (id === undefined || pending.has(id))
        return
      add({ id, type: event.type, requester: node, responderId: responder.id }, requestTimeout(event, limits.maxRequestTimeoutMs))
      responder.connection.requested?.(event)
    },

    remoteReply(node, responderId, event) {
      const id = event.metadata?.event?.parentId
      const request = id === undefined ? undefined : pending.get(id)
      if (!request || typeof request.requester === 'string' || request.responderId !== responderId || request.responderNode !== node) {
        dropped(event.type, id ?? '(none)', responderId)
        return
      }
      settle(request, 'replied')
      answer(request.requester, event, request.id)
    },

    leave(peer) {
      for (const id of byRequester.get(peer as Session) ?? [])
        settle(pending.get(id)!)
      byRequester.delete(peer as Session)
      for (const id of byResponder.get(peer.id) ?? []) {
        const request = pending.get(id)!
        settle(request, typeof request.requester === 'string' ? undefined : 'responder_gone')
        if (typeof request.requester !== 'string')
          fail(request.requester, id, new HubError('responder_gone', 'responder gone'))
      }
      byResponder.delete(peer.id)
    },

    get pending() {
      return local
    },

    stop() {
      for (const request of pending.values())
        clearTimeout(request.timer)
      pending.clear()
      byRequester.clear()
      byResponder.clear()
      local = 0
    },
  }

  function answer(requester: Session, event: HubEvent, id: string): number {
    if (requester.state === 'closed')
      return 0
    if (requester.connection.reply) {
      requester.connection.reply(event, id)
      return 1
    }
    return deliver(event, [requester])
  }
}
