import type { HubEvent, PeerInfo } from '../types.ts'
import type { ShapeLimits } from './bounds.ts'
import type { Consumers } from './consumers.ts'
import type { Next, RoutingMiddleware } from './middleware.ts'
import type { Refusals } from './refusals.ts'
import type { Registry } from './registry.ts'
import type { Requests } from './requests.ts'
import type { RemotePeer, RouteSteps } from './router.ts'
import type { Session } from './session.ts'
import * as v from 'valibot'
import { HubError } from '../errors.ts'
import { checkRoutes } from './bounds.ts'
import { Data, DataDestinations, Route } from './event-schema.ts'
import { stampedSource } from './event.ts'
import { composeMiddleware } from './middleware.ts'
import { createRouteContext, destinationsOf } from './router.ts'

/** Where an event would go, asked without sending it (`hub.explain`, the dashboard's `POST <path>/api/explain`). */
export interface ExplainRequest {
  /** The sender: a peer id, or a module name (`name` or `name:index`); absent = as if the hub sent it. */
  from?: string
  /** The event as a peer would send it: its type, data, and route (destinations, delivery, bypass…). */
  event: { type: string, data?: unknown, route?: unknown }
}

/** An explain request as JSON carries it (a body to validate); `route` as the AIRI gateway validates one. */
export const ExplainRequestSchema = v.object({
  from: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(1024))),
  event: v.object({
    type: v.pipe(v.string(), v.minLength(1)),
    data: v.optional(Data),
    route: v.optional(Route),
  }),
})

/** A peer as an explanation names it. */
export interface ExplainPeer {
  peerId: string
  /** The node it is connected to; absent = this node. */
  node?: string
  modules: { name: string, index?: number }[]
  /** The gateway serving it, when known. */
  protocol?: string
}

/** The routing step that left a peer out, in the router's order: the first one that excludes a peer is named. */
export type ExplainStep = 'sender' | 'unauthenticated' | 'destinations' | 'policy' | 'middleware' | 'delivery' | 'slow-consumer' | 'unhealthy'

export interface ExplainResult {
  sender?: ExplainPeer
  recipients: ExplainPeer[]
  /** Every other peer, local and remote, with the step that excluded it and why, in words. */
  excluded: (ExplainPeer & { step: ExplainStep, reason: string })[]
}

export interface ExplainOptions {
  steps: RouteSteps
  registry: Registry
  /** Every connected session of this node, authenticated or not. */
  peers: ReadonlyMap<string, Session>
  remote: ReadonlyMap<string, RemotePeer>
  consumers: Pick<Consumers, 'select'>
  requests: Pick<Requests, 'responder'>
  refusals: Pick<Refusals, 'ofEvent' | 'limitExceeded'>
  /** The shape limits a gateway holds an event to (destinations, expression depth, route items). */
  limits: ShapeLimits
}

export type Explain = (request: ExplainRequest) => ExplainResult | HubError | Promise<ExplainResult | HubError>

interface Verdict { step: ExplainStep, reason: string }

function describePeer(peer: PeerInfo): ExplainPeer {
  const described: ExplainPeer = { peerId: peer.id, modules: (peer.modules ?? []).map(({ name, index }) => index === undefined ? { name } : { name, index }) }
  const { node } = peer as Partial<RemotePeer>
  if (node !== undefined)
    described.node = node
  // Gateways that name themselves set it; older ports leave it out.
  if (peer.protocol !== undefined)
    described.protocol = peer.protocol
  return described
}

/** Characters of the destinations a reason names: it is repeated for every peer they left out. */
const MAX_REASON_DESTINATIONS = 512

/** Why destinations left a peer out, naming them as sent (none = the event names no recipient). */
function destinationsReason(event: HubEvent): string {
  const destinations = destinationsOf(event)!
  if (destinations.length === 0)
    return 'destinations: the list is empty, so the event goes to nobody'
  const named = destinations.map(destination => typeof destination === 'string' ? destination : JSON.stringify(destination)).join(', ')
  return `destinations: no destination matches (${named.length > MAX_REASON_DESTINATIONS ? `${named.slice(0, MAX_REASON_DESTINATIONS)}…` : named})`
}

function middlewareName(middleware: RoutingMiddleware, index: number): string {
  return middleware.name ? `middleware #${index + 1} (${middleware.name})` : `middleware #${index + 1}`
}

/**
 * Explains a route by taking the router's own steps (`RouteSteps`) in its order over every
 * peer, local and remote, and naming for each one left out the first step that excluded it.
 * It delivers nothing and changes no state: consumer and request turns are only previewed,
 * and middleware runs with `context.explain` set. O(peers × middleware) per request.
 */
export function createExplain(options: ExplainOptions): Explain {
  const { steps, registry, peers, remote, consumers, requests, refusals, limits } = options

  /** The sender by peer id, else by module name (`name`, or `name:index`). */
  function findSender(from: string): PeerInfo | HubError {
    const byId = peers.get(from) ?? remote.get(from)
    if (byId)
      return byId.authenticated ? byId : new HubError('not_authenticated', `peer "${from}" has not authenticated: the hub refuses its events`)
    const colon = from.lastIndexOf(':')
    const index = colon > 0 && /^\d+$/.test(from.slice(colon + 1)) ? Number(from.slice(colon + 1)) : undefined
    const entry = (index === undefined ? undefined : registry.find(from.slice(0, colon), index)) ?? registry.find(from)
    const peer = entry && (peers.get(entry.peerId) ?? remote.get(entry.peerId))
    return peer ?? new HubError('module_not_found', `no peer or module "${from}" on any node`)
  }

  /** The event as `publish` would route it: its source stamped as the sender's. */
  function eventOf(request: v.InferOutput<typeof ExplainRequestSchema>['event'], sender: PeerInfo | undefined): HubEvent {
    const identity = sender?.module?.identity ?? sender?.identity
    return {
      type: request.type,
      data: request.data ?? {},
      ...(request.route && { route: request.route as HubEvent['route'] }),
      metadata: { ...(identity && { source: stampedSource(identity) }), event: { id: 'explain' } },
    }
  }

  return (request) => {
    // The schema recurses into route expressions: their shape is bounded first, as a gateway's frame is.
    const exceeded = checkRoutes((request as { event?: unknown } | null)?.event, limits)
    if (exceeded)
      return refusals.limitExceeded(exceeded)
    const parsed = v.safeParse(ExplainRequestSchema, request)
    if (!parsed.success) {
      const issue = parsed.issues[0]
      const path = issue.path?.map(item => String(item.key)).join('.')
      return new HubError('invalid_event', `invalid explain request${path ? ` at ${path}` : ''}: ${issue.message}`)
    }
    const { from, event: wanted } = parsed.output
    const sender = from === undefined ? undefined : findSender(from)
    if (sender instanceof HubError)
      return sender
    const event = eventOf(wanted, sender)
    const refused = refusals.ofEvent(event)
    if (refused)
      return refused
    if (!v.is(DataDestinations, event.data.destinations))
      return new HubError('invalid_event', 'invalid explain request at event.data.destinations: not a list of destinations')

    const verdicts = new Map<PeerInfo, Verdict>()
    const everyone: PeerInfo[] = [...peers.values(), ...remote.values()]
    let left = new Set<PeerInfo>()
    for (const peer of everyone) {
      if (peer === sender)
        verdicts.set(peer, { step: 'sender', reason: 'the sender: an event is never echoed to it' })
      else if (!peer.authenticated)
        verdicts.set(peer, { step: 'unauthenticated', reason: 'not authenticated: routing skips it' })
      else
        left.add(peer)
    }
    /** Leaves out each peer still in that `keep` refuses, with its verdict. */
    const exclude = (keep: (peer: PeerInfo) => Verdict | undefined): void => {
      for (const peer of left) {
        const verdict = keep(peer)
        if (verdict) {
          verdicts.set(peer, verdict)
          left.delete(peer)
        }
      }
    }

    const delivery = steps.deliveryOf(event)
    if (delivery) {
      // The router's own choice, previewed: every registered consumer of the group is asked about.
      const unfit = new Map<PeerInfo, 'gone' | 'unhealthy' | 'policy'>()
      const members = new Set<PeerInfo>()
      const { group, peer: chosen } = consumers.select(event.type, delivery, (candidate) => {
        members.add(candidate)
        if (candidate === sender)
          return false
        const why = steps.unfitConsumer(candidate)
        if (why)
          unfit.set(candidate, why)
        return why === undefined
      }, true)
      const selection = delivery.selection ?? 'first'
      exclude((peer) => {
        if (!members.has(peer))
          return { step: 'delivery', reason: `delivery: not a consumer of "${event.type}" in group "${group}"` }
        const why = unfit.get(peer)
        if (why === 'unhealthy')
          return { step: 'unhealthy', reason: `unhealthy: a consumer of "${event.type}" in group "${group}" that went silent` }
        if (why === 'policy')
          return { step: 'policy', reason: steps.policy!.explain(peer) ?? 'policy' }
        if (peer !== chosen)
          return { step: 'delivery', reason: chosen ? `delivery: consumer group "${group}" picked peer ${chosen.id} (${selection})` : `delivery: no candidate in consumer group "${group}"` }
        return undefined
      })
    }
    else {
      const selected = steps.select(sender, event)
      // Without destinations every authenticated peer is selected: the reason is never needed.
      const reason = destinationsOf(event) ? destinationsReason(event) : ''
      exclude(peer => selected.has(peer) ? undefined : { step: 'destinations', reason })
    }

    const bypass = steps.bypasses(sender, event)
    const { policy } = steps
    if (!bypass && policy)
      exclude(peer => policy(peer) ? undefined : { step: 'policy', reason: policy.explain(peer) ?? 'policy' })

    const finish = (): ExplainResult => {
      if (wanted.route?.reply !== undefined) {
        const responder = requests.responder(event.type, left)
        exclude(peer => peer === responder ? undefined : { step: 'delivery', reason: `delivery: a request goes to one responder, peer ${responder!.id}` })
      }
      exclude((peer) => {
        const waiting = (peer as Partial<RemotePeer>).node === undefined ? steps.overBuffered(peer as Session) : undefined
        return waiting === undefined ? undefined : { step: 'slow-consumer', reason: `slow consumer: ${waiting} bytes unsent, over maxBufferedBytes (delivering closes it)` }
      })
      const result: ExplainResult = { recipients: [...left].map(describePeer), excluded: [] }
      if (sender)
        result.sender = describePeer(sender)
      for (const peer of everyone) {
        const verdict = verdicts.get(peer)
        if (verdict)
          result.excluded.push({ ...describePeer(peer), ...verdict })
      }
      return result
    }

    if (bypass || steps.middleware.length === 0)
      return finish()
    const ran = runMiddleware(steps, event, sender, left, (peer, verdict) => {
      verdicts.set(peer, verdict)
    }, (narrowed) => {
      left = narrowed
    })
    return ran instanceof Promise ? ran.then(finish) : finish()
  }
}

/**
 * Runs the middleware chain as a dry run (`context.explain`), each one wrapped so that the
 * recipients it removed before calling `next()` are laid at its door; one that never calls
 * `next()`, drops the event or throws excludes every recipient it was given.
 */
function runMiddleware(steps: RouteSteps, event: HubEvent, sender: PeerInfo | undefined, given: Set<PeerInfo>, exclude: (peer: PeerInfo, verdict: Verdict) => void, done: (left: Set<PeerInfo>) => void): void | Promise<void> {
  const context = createRouteContext(event, sender, given, true)
  const named = steps.middleware.map(middlewareName)
  let still = given
  let reached = false
  // The middleware running when the chain stopped: the innermost one entered.
  let entered = -1
  const laid = (index: number, why: string): void => {
    for (const peer of still)
      exclude(peer, { step: 'middleware', reason: `${named[index]} ${why}` })
    still = new Set()
  }
  const traced = steps.middleware.map((middleware, index): RoutingMiddleware => (ctx, next) => {
    entered = index
    return middleware(ctx, () => {
      const kept = steps.narrow(still, ctx.recipients)
      for (const peer of still) {
        if (!kept.has(peer))
          exclude(peer, { step: 'middleware', reason: `${named[index]} removed it from the recipients` })
      }
      still = kept
      if (ctx.dropped)
        laid(index, 'dropped the event')
      return next()
    })
  })
  const final: Next = () => {
    reached = true
  }
  const settle = (failed: boolean): void => {
    if (!reached)
      laid(entered, failed ? 'failed: the event would go nowhere' : context.dropped ? 'dropped the event' : 'did not call next(): the event would go nowhere')
    done(still)
  }
  let result: void | Promise<void>
  try {
    result = composeMiddleware(traced)(context, final)
  }
  catch {
    settle(true)
    return
  }
  if (result instanceof Promise)
    return result.then(() => settle(false), () => settle(true))
  settle(false)
}
