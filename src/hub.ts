import type { Cluster } from './backplane/cluster.ts'
import type { Admission } from './core/admission.ts'
import type { Announcements } from './core/announcements.ts'
import type { Consumers } from './core/consumers.ts'
import type { Explain } from './core/explain.ts'
import type { ModuleCatalog } from './core/module-catalog.ts'
import type { Observers } from './core/observers.ts'
import type { Publish } from './core/publish.ts'
import type { Registry } from './core/registry.ts'
import type { Requests } from './core/requests.ts'
import type { RemotePeer } from './core/router.ts'
import type { Session } from './core/session.ts'
import type { Sessions } from './core/sessions.ts'
import type { HubOptions, ResolvedHubOptions } from './options.ts'
import type { HubEvent, WireIdentity } from './types.ts'
import { nanoid } from 'nanoid'
import { createCluster } from './backplane/cluster.ts'
import { createAdmission } from './core/admission.ts'
import { createAliasIndex, createSelfNamedIndex } from './core/aliases.ts'
import { createAnnouncements } from './core/announcements.ts'
import { CLOSE } from './core/close.ts'
import { createConsumers } from './core/consumers.ts'
import { announcedIdentity, markPlainJson, perIdentity } from './core/event.ts'
import { createExplain } from './core/explain.ts'
import { createLiveness } from './core/liveness.ts'
import { createModuleCatalog } from './core/module-catalog.ts'
import { createObservers } from './core/observers.ts'
import { compilePolicy } from './core/policy.ts'
import { createPublish } from './core/publish.ts'
import { createReceipts } from './core/receipts.ts'
import { createRefusals, HUB_PLUGIN } from './core/refusals.ts'
import { createRegistryFeed } from './core/registry-feed.ts'
import { createRegistryLog } from './core/registry-log.ts'
import { createRegistry } from './core/registry.ts'
import { createRemotePeers } from './core/remote-peers.ts'
import { createRequests } from './core/requests.ts'
import { createRouter } from './core/router.ts'
import { createSessions } from './core/sessions.ts'
import { HubError } from './errors.ts'
import { resolveHubOptions } from './options.ts'

export type { Announcement } from './core/announcements.ts'
export type { Handshake } from './core/sessions.ts'

/**
 * The hub as its gateways see it. Every call that can refuse returns the `HubError` (else
 * undefined); the gateway maps it to its own wire form. Failures that come later reach the
 * peer's `Connection.fail`.
 */
export interface Hub extends Pick<Sessions, 'authRequired' | 'verifyToken' | 'connect' | 'authenticate' | 'disconnect'>, Omit<Announcements, 'deannounce'>, Publish {
  readonly options: ResolvedHubOptions
  readonly registry: Registry
  /** Every connected session, by id. */
  readonly peers: ReadonlyMap<string, Session>
  /** The authenticated peers of other nodes, by id (clustered). */
  readonly remotePeers: ReadonlyMap<string, RemotePeer>
  /** Open sockets of every gateway, counted so that upgrades past the limits are refused. */
  readonly admission: Admission
  /**
   * Starts serving: the liveness timers, and the cluster joins (idempotent). `connect` and
   * `listenHub` call it, and so does the server on its first request; nothing runs before.
   */
  start: () => void
  /** Sends a hub event with peer-given `data` to the sender (answering `parentId`), then to every other authenticated peer. */
  echo: (session: Session, type: string, data: Record<string, unknown>, parentId?: string) => void
  /** The refusal when the peer has not authenticated (counted). */
  requireAuth: (session: Session) => HubError | undefined
  /**
   * Why an event a gateway took in as is may not be published: its type, or a shape bound of
   * its data or route (`limits`). Gateways that decode frames themselves check the bounds first.
   */
  refusal: (event: { type: string, data: unknown, route?: { destinations?: unknown } }) => HubError | undefined
  /**
   * Counts a refusal the gateway made itself (a frame it could not decode, a rate limit) as the
   * core counts its own, and logs the first one of its kind per peer; returns it.
   */
  refuse: (session: Session, error: HubError) => HubError
  /** Reports an error the hub or a gateway swallowed: counted (`hub_errors_total{reason=stage}`), then `onError`. */
  report: ResolvedHubOptions['onError']
  /** Any frame from the peer: it is alive. */
  touch: (session: Session) => void
  /** Sends a hub-originated event to one peer. */
  send: (session: Session, type: string, data: Record<string, unknown>, parentId?: string) => void
  /** A hub-originated event (answering `parentId`), for a gateway that writes one itself (`Connection.fail`). */
  event: (type: string, data: Record<string, unknown>, parentId?: string) => HubEvent
  /** Sends the peer the whole registry (`registry:modules:sync`) at the end of this turn, if it hears every change (not a delta or `none` peer). */
  sync: (session: Session) => void
  /** Set when clustered (a `backplane`, or `redisUrl` through `createServer()`). */
  readonly cluster?: Cluster
  /** Leaves the cluster, closes every peer with 1001 and stops timers. */
  close: () => Promise<void>
  /** Counts and timings for whoever subscribes (metrics); free when nobody does. */
  readonly observers: Observers
  /**
   * Named readiness checks behind `/readyz`: the hub is ready when every one passes. Whatever
   * the hub depends on registers one (`listening` by `listenHub`, a backplane its connection).
   */
  readonly readiness: Map<string, () => boolean>
  /** The known modules (`modules` option): their tokens, options, labels and which are required. */
  readonly catalog: ModuleCatalog
  /** Requests (`route.reply`) of this node's peers waiting for their reply. */
  readonly requests: Pick<Requests, 'pending'>
  /** Registered consumers (the handlers of event types), on every node. */
  readonly consumers: Pick<Consumers, 'events' | 'handlers'>
  /** Starts the hub, and resolves once every required module is announced (on any node); rejects after `requiredTimeoutMs` naming the missing ones. */
  ready: () => Promise<void>
  /**
   * Where an event from a peer (or the hub) would go, and for every peer left out the routing
   * step that excluded it; delivers nothing, changes nothing. A bad request is a `HubError`.
   * Async only when a routing middleware is.
   */
  explain: Explain
}

/** The hub core: wiring of sessions, registry, routing, remote peers and liveness; it knows nothing of sockets. */
export function createHub(input: HubOptions = {}): Hub {
  const options = resolveHubOptions(input)
  const observers = createObservers()
  // Every swallowed error, from the core or a gateway (`hub.report`), is also counted.
  const onError: ResolvedHubOptions['onError'] = (error, context) => {
    observers.emit('error', context.stage)
    options.onError(error, context)
  }
  const { logger, limits } = options

  // What routing reads: the tables below are filled by sessions, announcements and remote peers.
  const registry = createRegistry({ onChange: () => observers.emit('topology') })
  const catalog = createModuleCatalog({ modules: options.modules, registry, requiredTimeoutMs: options.requiredTimeoutMs })
  const peers = new Map<string, Session>()
  const authenticated = new Map<string, Session>()
  const remote = new Map<string, RemotePeer>()
  const aliases = createAliasIndex()
  const selfNamed = createSelfNamedIndex()
  const consumers = createConsumers({ maxPerPeer: limits.maxConsumersPerPeer, onChange: event => observers.emit('consumers', event) })
  const refusals = createRefusals({ limits, instanceId: options.instanceId, observers, logger })
  const cluster = options.backplane && createCluster({ backplane: options.backplane, nodeId: `${options.instanceId}-${nanoid(8)}`, ...options.cluster, logger, onError })
  options.backplane?.onError(error => onError(error, { stage: 'backplane' }))

  const hubSource: WireIdentity = { plugin: HUB_PLUGIN, instanceId: options.instanceId }
  const createEvent = (type: string, data: Record<string, unknown>, parentId?: string): HubEvent =>
    ({ type, data, metadata: { source: hubSource, event: parentId ? { id: nanoid(), parentId } : { id: nanoid() } } })
  const hubEvent: Hub['event'] = (type, data, parentId) => markPlainJson(createEvent(type, data, parentId))

  const router = createRouter({
    registry,
    authenticated,
    remote,
    aliases: aliases.peers,
    selfNamed: selfNamed.peers,
    policy: compilePolicy(options.routing.policy),
    middleware: options.routing.middleware,
    allowBypass: options.routing.allowBypass,
    onMiddlewareError: error => onError(error, { stage: 'middleware' }),
    consumers,
    onConsumerDelivery: (sender, event, delivery, group, peer) => {
      observers.emit('consumerDelivery', event.type, group, peer ? 'delivered' : 'missed')
      // A request answers its own miss (`no responder`): the requester hears of it once.
      if (!peer && delivery.required && event.route?.reply === undefined)
        refusals.fail(sender, new HubError('no_consumer', 'no consumer registered for requested event delivery'), event.metadata?.event?.id)
    },
    forward: forwardRouted,
    maxBufferedBytes: limits.maxBufferedBytes,
    onSlowConsumer: closeSlowConsumer,
    onDeliveryError: (error, event, recipient, sender) => {
      onError(error, { stage: 'deliver', peerId: recipient.id })
      // The sender hears of it once; its event was accepted, so it would otherwise never know.
      if (sender && sender.state !== 'closed')
        refusals.fail(sender, new HubError('undeliverable', 'event could not be delivered'), event.metadata?.event?.id)
    },
  })
  const send: Hub['send'] = (session, type, data, parentId) => router.deliver(hubEvent(type, data, parentId), [session])
  const requests = createRequests({ limits, refusals, observers, logger, deliver: router.deliver, replyTo: cluster?.reply })
  // The other nodes' counts are waited for one cluster heartbeat at most: a node that misses it counts 0.
  const receipts = createReceipts({ send, waitMs: options.cluster.heartbeatMs })

  // A peer may name a revision the log lacks on every authentication: its first one is logged.
  const gapLogged = new WeakSet<Session>()
  const feed = createRegistryFeed({
    registry,
    log: createRegistryLog(limits.registryLogEntries),
    healthOf: entry => !(peers.get(entry.peerId) ?? remote.get(entry.peerId))?.unhealthy,
    deliver: router.deliver,
    createEvent,
    announcedOf: perIdentity(announcedIdentity),
    laggingBytes: limits.maxBufferedBytes / 2,
    observers,
    onLagging: (session, waiting) => logger.debug(`peer ${session.id} is behind on the registry (${waiting} bytes unsent): its deltas wait for one sync`),
    onGap(session, since, epoch) {
      if (gapLogged.has(session))
        return
      gapLogged.add(session)
      if (since.epoch === epoch)
        logger.info(`peer ${session.id} holds registry revision ${since.revision}, which the log does not hold (limits.registryLogEntries): it gets a full sync (its further gaps are not logged)`)
      else
        logger.debug(`peer ${session.id} holds a registry revision of another epoch (a restarted or another node): it gets a full sync`)
    },
  })
  const announcements = createAnnouncements({ registry, feed, consumers, selfNamed, refusals, limits, logger, catalog, cluster, send })
  const sessions = createSessions({ auth: options.auth, onError, devtoolsTokens: options.routing.devtoolsTokens, maxNameLength: limits.maxNameLength, peers, authenticated, remote, refusals, announcements, feed, aliases, selfNamed, consumers, requests, catalog, cluster, send })
  const remotePeers = createRemotePeers({ peers: remote, isLocal: id => peers.has(id), registry, feed, aliases, selfNamed, consumers, requests, maxConsumersPerPeer: limits.maxConsumersPerPeer, observers, logger })
  const liveness = createLiveness({ heartbeat: options.heartbeat, authTimeout: sessions.authRequired ? options.auth.timeoutMs : 0, sessions: () => peers.values(), feed, consumers, observers, cluster, close: sessions.close })
  const publish = createPublish({ router, registry, peers, refusals, requests, receipts, observers, forward: cluster?.forward, createEvent })

  // The one cycle, as a hoisted function: sessions deliver through the router, and the router
  // closes a slow one through them (only ever once peers are served).
  function closeSlowConsumer(session: Session): void {
    logger.warn(`peer ${session.id} is not reading (over ${limits.maxBufferedBytes} bytes unsent): closing it`)
    sessions.close(session, CLOSE.slowConsumer)
  }

  // Routing forwards through the cluster, telling a receipt that counts the event which node owes it a count.
  function forwardRouted(node: string, event: HubEvent, peerIds: string[]): void {
    cluster?.forward(node, event, peerIds, receipts.forwarded(event, node, peerIds.length))
  }

  // A closed hub stays closed: a late request or peer starts nothing.
  let closed = false
  function start(): void {
    if (closed)
      return
    liveness.start()
    cluster?.start({
      ...remotePeers,
      localPeers: () => authenticated.values(),
      consumersOf: consumers.of,
      deliver(event, peerIds, node) {
        // Each peer once, however often a (forged) route names it.
        const recipients = [...new Set(peerIds)].map(id => authenticated.get(id)).filter(session => session !== undefined)
        // A request is forwarded to its one responder: its reply goes back to the requester's node.
        if (event.route?.reply !== undefined && recipients.length === 1)
          requests.served(node, event, recipients[0]!)
        return router.deliver(event, recipients)
      },
      reply: requests.remoteReply,
      ack: receipts.answer,
      discard: (reason, count) => {
        for (let i = 0; i < count; i++)
          observers.emit('error', reason)
      },
    })
  }

  return {
    options,
    registry,
    peers,
    remotePeers: remote,
    cluster,
    observers,
    admission: createAdmission(limits),
    // A clustered hub serves its own peers while the backplane is down, but is not ready.
    readiness: new Map([...(cluster ? [['backplane', () => cluster.ready] as const] : []), ...catalog.readiness]),
    catalog,
    requests,
    consumers,
    // Waiting for required modules means serving: the cluster must be joined to see them.
    ready() {
      start()
      return catalog.ready()
    },
    start,
    explain: createExplain({ steps: router.steps, registry, peers, remote, consumers, requests, refusals, limits }),
    authRequired: sessions.authRequired,
    verifyToken: sessions.verifyToken,
    connect(connection, init) {
      start()
      const session = sessions.connect(connection, init)
      observers.emit('topology')
      return session
    },
    authenticate(session, token, parentId, handshake) {
      const refused = sessions.authenticate(session, token, parentId, handshake)
      observers.emit('topology')
      return refused
    },
    disconnect: sessions.disconnect,
    announce: announcements.announce,
    identify: announcements.identify,
    registerConsumer: announcements.registerConsumer,
    unregisterConsumer: announcements.unregisterConsumer,
    publish: publish.publish,
    configure: publish.configure,
    requireAuth: refusals.requireAuth,
    refusal: refusals.ofEvent,
    refuse: refusals.refuse,
    report: onError,
    touch: liveness.touch,
    send,
    event: hubEvent,
    sync: feed.sync,
    echo(session, type, data, parentId) {
      send(session, type, data, parentId)
      // To every other authenticated peer, encoded once.
      router.deliver(hubEvent(type, data), [...authenticated.values()].filter(peer => peer !== session))
    },
    async close() {
      closed = true
      liveness.stop()
      feed.stop()
      // Goodbye first: the other nodes drop this node's modules at once, not one by one.
      const leaving = cluster?.close()
      for (const session of [...peers.values()])
        sessions.close(session, CLOSE.shutdown)
      requests.stop()
      receipts.stop()
      await leaving
    },
  }
}
