import type { Delivery, Destination, EventEncoder, HubEvent, Identity, ModuleEntry, PeerInfo } from '../types.ts'
import type { Consumers } from './consumers.ts'
import type { Lookup, TargetPredicate } from './match.ts'
import type { Next, RouteContext, RoutingMiddleware } from './middleware.ts'
import type { RecipientFilter } from './policy.ts'
import type { Registry } from './registry.ts'
import type { Session } from './session.ts'
import { CONSUMER_DEFAULTS } from './consumers.ts'
import { compileDestination } from './match.ts'
import { composeMiddleware } from './middleware.ts'

/** An authenticated peer of another hub node, as routing sees it (clustered hubs only). */
export interface RemotePeer extends PeerInfo {
  /** The node it is connected to. */
  readonly node: string
  /** Its node said it went silent: it is no consumer candidate until it speaks again. */
  unhealthy?: boolean
}

export interface RouterOptions {
  registry: Registry
  /** Every authenticated session, by id. */
  authenticated: ReadonlyMap<string, Session>
  /** Every authenticated peer of the other nodes, by id (empty alone). */
  remote: ReadonlyMap<string, RemotePeer>
  /** Peers, local and remote, by the other ids they answer to (`peer:<id>`, `ids`). */
  aliases: ReadonlyMap<string, ReadonlySet<PeerInfo>>
  /** Authenticated peers, local and remote, without modules but with an identity of their own (`PeerInfo.identity`). */
  selfNamed: ReadonlySet<PeerInfo>
  policy?: RecipientFilter
  middleware: readonly RoutingMiddleware[]
  /** Whether trusted devtools peers may skip policy and middleware with `route.bypass`. */
  allowBypass: boolean
  /** Where a failed asynchronous middleware is reported. */
  onMiddlewareError: (error: unknown) => void
  /** Registered consumers, local and remote: an event with a delivery goes to one of them. */
  consumers: Consumers
  /** A consumer delivery chose `peer`, or found no candidate in `group`. */
  onConsumerDelivery: (sender: Session, event: HubEvent, delivery: Delivery, group: string, peer?: PeerInfo) => void
  /** Sends an event to some of the `remote` peers of one node. */
  forward: (node: string, event: HubEvent, peerIds: string[]) => void
  /** Outbound bytes a recipient may have waiting before it counts as a slow consumer. */
  maxBufferedBytes: number
  /** A recipient's unsent bytes passed `maxBufferedBytes`. */
  onSlowConsumer: (session: Session) => void
  /**
   * An event could not be encoded or sent to some recipients (the others still got it): called
   * once per delivery with the first error, and the peer that sent it when a peer did.
   */
  onDeliveryError: (error: unknown, event: HubEvent, recipient: Session, sender?: Session) => void
}

/** Takes the one recipient of an event among those destinations, policy and middleware selected; none drops it. */
export type Pick = (recipients: ReadonlySet<PeerInfo>) => PeerInfo | undefined

/** Told, for each recipient, the bytes its connection had waiting and the length of the frame just queued. */
export type Backlog = (session: Session, waiting: number, frameLength: number) => void

/**
 * The steps of `route`, one at a time and in its order, for explaining a route without taking
 * it (`createExplain`): none of them delivers, or changes any state.
 */
export interface RouteSteps {
  /** The consumer delivery the event asks for (or its type implies); undefined = destinations. */
  deliveryOf: (event: HubEvent) => Delivery | undefined
  /** Recipients chosen by destinations alone; never the sender (none when the hub sends it). */
  select: (sender: PeerInfo | undefined, event: HubEvent) => Set<PeerInfo>
  /** Why a registered consumer can't take an event: gone from its node, unhealthy, or denied by the policy; undefined = a candidate. */
  unfitConsumer: (peer: PeerInfo) => 'gone' | 'unhealthy' | 'policy' | undefined
  /** Whether the sender skips policy and middleware (a trusted devtools peer's `route.bypass`). */
  bypasses: (sender: PeerInfo | undefined, event: HubEvent) => boolean
  policy?: RecipientFilter
  middleware: readonly RoutingMiddleware[]
  /** The recipients a middleware chain left, of those it was given: it may only narrow them. */
  narrow: (given: ReadonlySet<PeerInfo>, left: readonly PeerInfo[]) => Set<PeerInfo>
  /** Bytes a local recipient has waiting, when over `maxBufferedBytes` (delivering closes it as a slow consumer). */
  overBuffered: (session: Session) => number | undefined
}

export interface Router {
  /**
   * Routes one event from `sender`; returns how many peers it was delivered to (async if a
   * middleware is). With `pick`, it goes to the one recipient `pick` takes of those selected (a request).
   */
  route: (sender: Session, event: HubEvent, pick?: Pick) => number | Promise<number>
  /**
   * Delivers one event (from `sender`, if a peer sent it) to the given sessions, encoding it
   * once per wire protocol. Each recipient's waiting bytes go to `onBacklog` when given, else to
   * the slow-consumer check. `frames` holds the encodings by encoder, for a caller that
   * delivers the same event again (a sync of one revision, turn after turn).
   */
  deliver: (event: HubEvent, recipients: Iterable<Session>, sender?: Session, onBacklog?: Backlog, frames?: Map<EventEncoder, string | Error>) => number
  readonly steps: RouteSteps
}

const HUB_SENDER: PeerInfo = { id: 'hub', authenticated: false }

/** The context a routing middleware sees; `explain` marks a dry run (`hub.explain`). */
export function createRouteContext(event: HubEvent, sender: PeerInfo | undefined, recipients: Iterable<PeerInfo>, explain?: true): RouteContext {
  let dropped = false
  return {
    event,
    // The hub itself sends as no peer: middleware sees an unauthenticated, moduleless sender.
    sender: sender ?? HUB_SENDER,
    recipients: [...recipients],
    drop: () => { dropped = true },
    get dropped() { return dropped },
    ...(explain && { explain }),
  }
}

/** The destinations of an event: `route.destinations`, else an array at `data.destinations`. */
export function destinationsOf(event: HubEvent): Destination[] | undefined {
  const fromRoute = event.route?.destinations
  if (fromRoute)
    return fromRoute
  const fromData = event.data.destinations
  return Array.isArray(fromData) ? fromData as Destination[] : undefined
}

export function createRouter(options: RouterOptions): Router {
  const { registry, authenticated, remote, aliases, selfNamed, policy, allowBypass, onMiddlewareError, forward, maxBufferedBytes, onSlowConsumer, onDeliveryError, consumers, onConsumerDelivery } = options
  const runMiddleware = options.middleware.length > 0 ? composeMiddleware(options.middleware) : undefined

  // Set by select() when it chose a remote peer, read right after: a single node never splits recipients.
  let remoteSelected = false

  function addRemote(into: Set<PeerInfo>, id: string): void {
    const peer = remote.get(id)
    if (peer) {
      into.add(peer)
      remoteSelected = true
    }
  }

  function addAll(into: Set<PeerInfo>): void {
    for (const session of authenticated.values())
      into.add(session)
    if (remote.size > 0) {
      for (const peer of remote.values())
        into.add(peer)
      remoteSelected = true
    }
  }

  function addEntries(into: Set<PeerInfo>, entries: Iterable<ModuleEntry>): void {
    for (const entry of entries) {
      const session = authenticated.get(entry.peerId)
      if (session)
        into.add(session)
      else if (entry.node !== undefined)
        addRemote(into, entry.peerId)
    }
  }

  /** The peer of a registry entry, if it is authenticated. */
  function peerOf(entry: ModuleEntry): PeerInfo | undefined {
    return authenticated.get(entry.peerId) ?? (entry.node === undefined ? undefined : remote.get(entry.peerId))
  }

  function addPeer(into: Set<PeerInfo>, peer: PeerInfo): void {
    if ((peer as Partial<RemotePeer>).node === undefined) {
      if (authenticated.has(peer.id))
        into.add(peer)
    }
    else {
      addRemote(into, peer.id)
    }
  }

  /** Peers without modules named by their own identity. */
  function addSelfNamed(into: Set<PeerInfo>, test: (identity: Identity) => boolean): void {
    for (const peer of selfNamed) {
      if (test(peer.identity!))
        addPeer(into, peer)
    }
  }

  /** Every module and every peer without one that `test` names. */
  function scan(into: Set<PeerInfo>, test: TargetPredicate): void {
    for (const entry of registry.entries()) {
      const peer = peerOf(entry)
      if (peer && test(peer, entry))
        addPeer(into, peer)
    }
    for (const session of authenticated.values()) {
      if (session.modules.length === 0 && test(session))
        into.add(session)
    }
    for (const peer of remote.values()) {
      if (!peer.modules?.length && test(peer))
        addRemote(into, peer.id)
    }
  }

  function collect(lookup: Lookup, into: Set<PeerInfo>): void {
    switch (lookup.by) {
      case 'all':
        addAll(into)
        return
      case 'peer': {
        const session = authenticated.get(lookup.id)
        if (session)
          into.add(session)
        else
          addRemote(into, lookup.id)
        addAliased(into, lookup.id)
        return
      }
      case 'index':
        for (const [index, key] of lookup.keys) {
          addEntries(into, registry.lookup(index, key))
          if (selfNamed.size > 0 && index !== 'module')
            addSelfNamed(into, identity => (index === 'plugin' ? identity.pluginId : identity.instanceId) === key)
        }
        return
      case 'label': {
        const { key, value } = lookup
        addEntries(into, registry.withLabel(key, value))
        if (selfNamed.size > 0)
          addSelfNamed(into, identity => Object.hasOwn(identity.labels, key) && identity.labels[key] === value)
        return
      }
      case 'scan':
        scan(into, lookup.test)
    }
  }

  function addAliased(into: Set<PeerInfo>, alias: string): void {
    for (const peer of aliases.get(alias) ?? [])
      addPeer(into, peer)
  }

  /** Recipients chosen by destinations alone; never the sender. */
  function select(sender: PeerInfo | undefined, event: HubEvent): Set<PeerInfo> {
    const destinations = destinationsOf(event)
    const recipients = new Set<PeerInfo>()
    remoteSelected = false
    if (!destinations) {
      addAll(recipients)
    }
    else {
      for (const destination of destinations)
        collect(compileDestination(destination), recipients)
    }
    if (sender)
      recipients.delete(sender)
    return recipients
  }

  /**
   * The delivery of an event: its `route.delivery` over the event type's defaults, or the
   * defaults alone once a consumer of the type registered (until then it routes as any event).
   */
  function deliveryOf(event: HubEvent): Delivery | undefined {
    const requested = event.route?.delivery
    const defaults = CONSUMER_DEFAULTS.get(event.type)
    if (requested)
      return defaults ? { ...defaults, ...requested } : requested
    return defaults && consumers.has(event.type) ? defaults : undefined
  }

  /** A registered consumer is a candidate when still present (on this node or its own), healthy and allowed by the policy. */
  function unfitConsumer(candidate: PeerInfo): 'gone' | 'unhealthy' | 'policy' | undefined {
    const { node } = candidate as Partial<RemotePeer>
    if ((node === undefined ? authenticated.get(candidate.id) : remote.get(candidate.id)) !== candidate)
      return 'gone'
    if ((candidate as Session | RemotePeer).unhealthy)
      return 'unhealthy'
    if (policy && !policy(candidate))
      return 'policy'
  }

  /** The one consumer an event goes to, on any node: never the sender, an unhealthy peer or one the policy denies. */
  function selectConsumer(sender: Session, event: HubEvent, delivery: Delivery): Set<PeerInfo> {
    const { group, peer } = consumers.select(event.type, delivery, candidate => candidate !== sender && unfitConsumer(candidate) === undefined)
    remoteSelected = (peer as Partial<RemotePeer> | undefined)?.node !== undefined
    onConsumerDelivery(sender, event, delivery, group, peer)
    return new Set(peer ? [peer] : [])
  }

  function bypasses(sender: PeerInfo | undefined, event: HubEvent): boolean {
    return allowBypass && (sender as Partial<Session> | undefined)?.trusted === true && event.route?.bypass === true
  }

  function narrow(given: ReadonlySet<PeerInfo>, left: readonly PeerInfo[]): Set<PeerInfo> {
    const narrowed = new Set<PeerInfo>()
    for (const peer of left) {
      if (given.has(peer))
        narrowed.add(peer)
    }
    return narrowed
  }

  function overBuffered(session: Session): number | undefined {
    const waiting = session.connection.buffered?.() ?? 0
    return waiting > maxBufferedBytes ? waiting : undefined
  }

  function checkSlowConsumer(session: Session, waiting: number): void {
    if (waiting > maxBufferedBytes)
      onSlowConsumer(session)
  }

  function deliver(event: HubEvent, recipients: Iterable<Session>, sender?: Session, onBacklog: Backlog = checkSlowConsumer, frames = new Map<EventEncoder, string | Error>()): number {
    // Peers of one protocol share one encoded frame; an encoder that failed is not tried again.
    let delivered = 0
    let failed = false
    for (const session of recipients) {
      const { encoder } = session.connection
      let frame = frames.get(encoder)
      try {
        if (frame === undefined) {
          try {
            frame = encoder.encode(event)
          }
          catch (error) {
            frame = error instanceof Error ? error : new Error(String(error))
          }
          frames.set(encoder, frame)
        }
        if (typeof frame !== 'string')
          throw frame
        onBacklog(session, session.connection.send(frame), frame.length)
        delivered++
      }
      catch (error) {
        if (!failed)
          onDeliveryError(error, event, session, sender)
        failed = true
      }
    }
    return delivered
  }

  /** Delivers to local recipients and forwards to each other node the ids of its own, once. */
  function dispatch(sender: Session, event: HubEvent, recipients: Set<PeerInfo>, clustered: boolean): number {
    if (!clustered)
      return deliver(event, recipients as Set<Session>, sender)
    const local: Session[] = []
    const byNode = new Map<string, string[]>()
    for (const peer of recipients) {
      const { node } = peer as Partial<RemotePeer>
      if (node === undefined) {
        local.push(peer as Session)
        continue
      }
      const ids = byNode.get(node)
      if (ids)
        ids.push(peer.id)
      else
        byNode.set(node, [peer.id])
    }
    let delivered = deliver(event, local, sender)
    for (const [node, ids] of byNode) {
      forward(node, event, ids)
      delivered += ids.length
    }
    return delivered
  }

  function route(sender: Session, event: HubEvent, pick?: Pick): number | Promise<number> {
    const delivery = deliveryOf(event)
    let recipients = delivery ? selectConsumer(sender, event, delivery) : select(sender, event)
    const clustered = remoteSelected
    const send = (event: HubEvent, recipients: Set<PeerInfo>): number => {
      if (!pick)
        return dispatch(sender, event, recipients, clustered)
      const one = pick(recipients)
      return dispatch(sender, event, new Set(one ? [one] : []), clustered)
    }
    if (bypasses(sender, event))
      return send(event, recipients)
    if (policy) {
      for (const session of recipients) {
        if (!policy(session))
          recipients.delete(session)
      }
    }
    if (!runMiddleware)
      return send(event, recipients)

    const context = createRouteContext(event, sender, recipients)
    let delivered = 0
    const final: Next = () => {
      // Middleware narrows: anything it added that destinations and policy did not choose is ignored.
      recipients = narrow(recipients, context.recipients)
      delivered = send(context.event, recipients)
    }
    const result = runMiddleware(context, final)
    if (result instanceof Promise) {
      return result.then(() => delivered, (error) => {
        onMiddlewareError(error)
        return 0
      })
    }
    return delivered
  }

  return {
    route,
    deliver,
    steps: { deliveryOf, select, unfitConsumer, bypasses, policy, middleware: options.middleware, narrow, overBuffered },
  }
}
