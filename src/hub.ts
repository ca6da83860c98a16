import type { Cluster } from './backplane/cluster.ts'
import type { Admission } from './core/admission.ts'
import type { Observers } from './core/observers.ts'
import type { Registry } from './core/registry.ts'
import type { RemotePeer } from './core/router.ts'
import type { HubOptions, ResolvedHubOptions } from './options.ts'
import type { Connection, HubEvent, Identity, ModuleEntry, WireIdentity } from './types.ts'
import { nanoid } from 'nanoid'
import { createCluster, toPeerState } from './backplane/cluster.ts'
import { createAdmission } from './core/admission.ts'
import { createTokenVerifier } from './core/auth.ts'
import { checkAnnouncement, checkData, checkRoutes } from './core/bounds.ts'
import { isReservedEventType, markPlainJson, toWireIdentity } from './core/event.ts'
import { createHeartbeat } from './core/heartbeat.ts'
import { createObservers } from './core/observers.ts'
import { compilePolicy } from './core/policy.ts'
import { createRegistryFeed } from './core/registry-feed.ts'
import { createRegistry } from './core/registry.ts'
import { createRouter } from './core/router.ts'
import { Session } from './core/session.ts'
import { HubError } from './errors.ts'
import { resolveHubOptions } from './options.ts'

export interface Announcement {
  name: string
  index?: number
  identity: Identity
}

export type DeannounceReason = 'connection closed' | 'heartbeat expired' | 'server shutdown' | 're-announcing'

export interface Hub {
  readonly options: ResolvedHubOptions
  readonly registry: Registry
  /** Every connected session, by id. */
  readonly peers: ReadonlyMap<string, Session>
  /** Whether a token would authenticate (for gateways that check it before the upgrade). */
  verifyToken: (token: unknown) => boolean
  /** Whether peers must authenticate at all. */
  readonly authRequired: boolean
  /** Open sockets of every gateway, counted so that upgrades past the limits are refused. */
  readonly admission: Admission
  /** A new peer; `token` when it already presented one at the upgrade. */
  connect: (connection: Connection, init?: { token?: string }) => Session
  authenticate: (session: Session, token: unknown, parentId?: string) => boolean
  announce: (session: Session, announcement: Announcement, parentId?: string) => void
  configure: (session: Session, target: { moduleName: string, moduleIndex?: number, config: unknown }, parentId?: string) => void
  /** False (and an error event sent) when the peer has not authenticated. */
  requireAuth: (session: Session, parentId?: string) => boolean
  /** Answers a heartbeat ping. */
  pong: (session: Session, parentId?: string) => void
  /**
   * Routes an event from an authenticated peer; resolves to the number of recipients. A
   * reserved or over-long type is refused with an error event (and 0).
   */
  publish: (session: Session, event: HubEvent) => number | Promise<number>
  /**
   * Why an event a gateway took in as is may not be published: its type, or a shape bound of
   * its data or route (`limits`). Gateways that decode frames themselves check the bounds first.
   */
  refusal: (event: { type: string, data: unknown, route?: { destinations?: unknown } }) => HubError | undefined
  /** Any frame from the peer: it is alive. */
  touch: (session: Session) => void
  /** Sends a hub-originated event to one peer. */
  send: (session: Session, type: string, data: Record<string, unknown>, parentId?: string) => void
  /** Sends the `error` event for a failure caused by the peer's event `parentId`. */
  reject: (session: Session, error: HubError, parentId?: string) => void
  /** The peer's connection is gone. */
  disconnect: (session: Session, reason?: DeannounceReason) => void
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
}

const SHUTDOWN_CODE = 1001
const SLOW_CONSUMER_CODE = 1013

/** The hub core: sessions, registry, routing and liveness; it knows nothing of sockets. */
export function createHub(input: HubOptions = {}): Hub {
  const options = resolveHubOptions(input)
  const observers = createObservers()
  const { logger } = options
  // Every swallowed error, from the core or an edge, is also counted.
  const report = options.onError
  const onError: typeof report = (error, context) => {
    observers.emit('error', context.stage)
    report(error, context)
  }
  options.onError = onError
  const registry = createRegistry()
  const peers = new Map<string, Session>()
  const authenticated = new Map<string, Session>()
  const authRequired = options.auth.tokens.length > 0
  const verifyToken = createTokenVerifier([...options.auth.tokens, ...options.routing.devtoolsTokens])
  const isDevtoolsToken = createTokenVerifier(options.routing.devtoolsTokens)
  const hubSource: WireIdentity = { plugin: 'hub-server', instanceId: options.instanceId }
  const wireIdentities = new WeakMap<object, WireIdentity>()
  let cluster: Cluster | undefined
  const remotePeers = new Map<string, RemotePeer>()

  const router = createRouter({
    registry,
    authenticated,
    remote: remotePeers,
    policy: compilePolicy(options.routing.policy),
    middleware: options.routing.middleware,
    allowBypass: options.routing.allowBypass,
    onMiddlewareError: error => onError(error, { stage: 'middleware' }),
    forward: (node, event, peerIds) => cluster?.forward(node, event, peerIds),
    maxBufferedBytes: options.limits.maxBufferedBytes,
    onSlowConsumer: (session) => {
      logger.warn(`peer ${session.id} is not reading (over ${options.limits.maxBufferedBytes} bytes unsent): closing it`)
      closeSession(session, SLOW_CONSUMER_CODE, 'slow consumer')
    },
    onDeliveryError: (error, event, recipient, sender) => {
      onError(error, { stage: 'deliver', peerId: recipient.id })
      // The sender hears of it once; its event was accepted, so it would otherwise never know.
      if (sender && sender.state !== 'closed')
        reject(sender, new HubError('undeliverable', 'event could not be delivered'), event.metadata?.event?.id)
    },
  })

  function createEvent(type: string, data: Record<string, unknown>, parentId?: string): HubEvent {
    return { type, data, metadata: { source: hubSource, event: parentId ? { id: nanoid(), parentId } : { id: nanoid() } } }
  }

  function send(session: Session, type: string, data: Record<string, unknown>, parentId?: string): void {
    router.deliver(markPlainJson(createEvent(type, data, parentId)), [session])
  }

  function wireOf(identity: Identity): WireIdentity {
    let wire = wireIdentities.get(identity)
    if (!wire)
      wireIdentities.set(identity, wire = toWireIdentity(identity))
    return wire
  }

  const feed = createRegistryFeed({
    registry,
    recipients: () => authenticated.values(),
    deliver: router.deliver,
    createEvent,
    wireOf,
    laggingBytes: options.limits.maxBufferedBytes / 2,
    observers,
    onLagging: (session, waiting) => logger.debug(`peer ${session.id} is behind on the registry (${waiting} bytes unsent): its deltas wait for one sync`),
  })

  function admit(session: Session, trusted: boolean, parentId?: string): void {
    session.state = 'authenticated'
    session.trusted = trusted
    authenticated.set(session.id, session)
    cluster?.update(session.id, session.module)
    send(session, 'module:authenticated', { authenticated: true }, parentId)
    feed.sync(session)
  }

  function deannounce(session: Session, reason: DeannounceReason): void {
    if (!session.module)
      return
    const entry = session.module
    registry.delete(session.id)
    session.module = undefined
    cluster?.update(session.id, undefined, reason)
    logger.debug(`module ${entry.name} de-announced (${reason})`)
    feed.deannounced(entry, reason, session)
  }

  function disconnect(session: Session, reason: DeannounceReason = 'connection closed'): void {
    if (session.state === 'closed')
      return
    deannounce(session, reason)
    session.state = 'closed'
    peers.delete(session.id)
    if (authenticated.delete(session.id))
      cluster?.left(session.id)
  }

  function closeSession(session: Session, code: number, reason: string, deannounceReason?: DeannounceReason): void {
    disconnect(session, deannounceReason)
    try {
      session.connection.close(code, reason)
    }
    catch (error) {
      onError(error, { stage: 'close', peerId: session.id })
    }
  }

  const heartbeat = createHeartbeat({
    readTimeout: options.heartbeat.readTimeout,
    authTimeout: authRequired ? options.auth.timeoutMs : 0,
    now: Date.now,
    sessions: () => peers.values(),
    onUnhealthy: (session) => {
      if (session.module) {
        feed.health(session.module, false, session)
        cluster?.health(session.id, false)
      }
    },
    onHealthy: (session) => {
      if (session.module) {
        feed.health(session.module, true, session)
        cluster?.health(session.id, true)
      }
    },
    onExpired: (session) => {
      observers.emit('heartbeatExpired')
      closeSession(session, 4000, 'heartbeat expired', 'heartbeat expired')
    },
    onAuthTimeout: session => closeSession(session, 4001, 'authentication failed'),
  })

  function requireAuth(session: Session, parentId?: string): boolean {
    if (session.authenticated)
      return true
    reject(session, new HubError('not_authenticated', 'not authenticated'), parentId)
    return false
  }

  const refusalLogged = new WeakSet<Session>()

  function reject(session: Session, error: HubError, parentId?: string): void {
    observers.emit('error', error.code)
    // Logged once per peer: its frames are the peer's to repeat (the metric counts them all).
    if ((error.code === 'limit_exceeded' || error.code === 'reserved_event' || error.code === 'reserved_identity') && !refusalLogged.has(session)) {
      refusalLogged.add(session)
      logger.info(`peer ${session.id}: ${error.message} (its further refused frames are not logged)`)
    }
    send(session, 'error', { message: error.message }, parentId)
  }

  const limitExceeded = (what: string): HubError => new HubError('limit_exceeded', `limit exceeded: ${what}`)

  function typeRefusal(type: string): HubError | undefined {
    if (isReservedEventType(type))
      return new HubError('reserved_event', 'reserved event type')
    if (type.length > options.limits.maxNameLength)
      return limitExceeded('event type')
  }

  function refusal(event: { type: string, data: unknown, route?: { destinations?: unknown } }): HubError | undefined {
    const { limits } = options
    const exceeded = checkRoutes(event, limits) ?? checkData(event.data, limits.maxDataDepth, limits.maxPayloadBytes)
    return typeRefusal(event.type) ?? (exceeded && limitExceeded(exceeded))
  }

  /** Why a peer may not announce this: too big, or the hub's own identity. */
  function announceRefusal(name: string, identity: Identity): HubError | undefined {
    const exceeded = checkAnnouncement(name, identity, options.limits)
    if (exceeded)
      return limitExceeded(exceeded)
    if (identity.pluginId === hubSource.plugin || identity.instanceId === options.instanceId)
      return new HubError('reserved_identity', 'reserved identity')
  }

  if (options.backplane) {
    cluster = createCluster({
      backplane: options.backplane,
      nodeId: `${options.instanceId}-${nanoid(8)}`,
      ...options.cluster,
      logger,
      onError,
      port: {
        * localPeers() {
          for (const session of authenticated.values())
            yield toPeerState(session.id, session.module)
        },
        upsert(node, { id, module }, reason) {
          // Peer ids are unique per session: one already owned here or by another node is forged.
          if (peers.has(id) || (remotePeers.get(id)?.node ?? node) !== node)
            return
          const previous = registry.get(id)
          if (previous?.node !== undefined) {
            registry.delete(id)
            feed.deannounced(previous, reason)
          }
          const entry: ModuleEntry | undefined = module && { ...module, peerId: id, node }
          remotePeers.set(id, { id, authenticated: true, module: entry, node })
          if (entry) {
            registry.set(entry)
            feed.announced(entry)
          }
        },
        remove(node, id, reason) {
          if (remotePeers.get(id)?.node !== node)
            return
          remotePeers.delete(id)
          const entry = registry.get(id)
          if (entry?.node === undefined)
            return
          registry.delete(id)
          feed.deannounced(entry, reason)
        },
        health(node, peerId, healthy) {
          const entry = registry.get(peerId)
          if (entry?.node === node)
            feed.health(entry, healthy)
        },
        deliver(event, peerIds) {
          const recipients: Session[] = []
          for (const id of peerIds) {
            const session = authenticated.get(id)
            if (session)
              recipients.push(session)
          }
          router.deliver(event, recipients)
        },
        discard(reason, count) {
          for (let i = 0; i < count; i++)
            observers.emit('error', reason)
        },
      },
    })
    options.backplane.onError(error => onError(error, { stage: 'backplane' }))
  }

  return {
    options,
    registry,
    peers,
    cluster,
    verifyToken,
    authRequired,
    admission: createAdmission(options.limits),
    touch: heartbeat.touch,
    send,
    reject,
    requireAuth,
    refusal,
    disconnect,
    observers,
    // A clustered hub serves its own peers while the backplane is down, but is not ready.
    readiness: new Map(cluster ? [['backplane', () => cluster.ready]] : []),

    connect(connection, init) {
      const session = new Session(nanoid(), connection, Date.now())
      peers.set(session.id, session)
      if (!authRequired)
        admit(session, false)
      else if (init?.token !== undefined && verifyToken(init.token))
        admit(session, isDevtoolsToken(init.token))
      return session
    },

    authenticate(session, token, parentId) {
      if (!authRequired) {
        admit(session, false, parentId)
        return true
      }
      if (verifyToken(token)) {
        admit(session, isDevtoolsToken(token), parentId)
        return true
      }
      session.failedAuths++
      reject(session, new HubError('invalid_token', 'invalid token'), parentId)
      if (session.failedAuths >= options.auth.maxFailures)
        closeSession(session, 4001, 'authentication failed')
      return false
    },

    announce(session, { name, index, identity }, parentId) {
      if (!requireAuth(session, parentId))
        return
      const refused = announceRefusal(name, identity)
      if (refused)
        return reject(session, refused, parentId)
      const current = session.module
      const same = current && current.name === name && current.index === index
        && JSON.stringify(current.identity) === JSON.stringify(identity)
      if (!same) {
        if (current)
          deannounce(session, 're-announcing')
        session.module = { name, index, identity, peerId: session.id }
        registry.set(session.module)
        cluster?.update(session.id, session.module)
        logger.debug(`module ${name} announced by peer ${session.id}`)
      }
      feed.sync(session)
      if (!same)
        feed.announced(session.module!, session)
    },

    configure(session, { moduleName, moduleIndex, config }, parentId) {
      if (!requireAuth(session, parentId))
        return
      const target = registry.find(moduleName, moduleIndex)
      if (target?.node !== undefined && cluster) {
        cluster.forward(target.node, createEvent('module:configure', { config }, parentId), [target.peerId])
        return
      }
      const targetSession = target && peers.get(target.peerId)
      if (!targetSession) {
        reject(session, new HubError('module_not_found', 'module not found, it hasn\'t announced itself or the name is incorrect'), parentId)
        return
      }
      router.deliver(createEvent('module:configure', { config }, parentId), [targetSession])
    },

    pong(session, parentId) {
      send(session, 'transport:connection:heartbeat', { kind: 'pong', message: options.heartbeat.message, at: Date.now() }, parentId)
    },

    publish(session, event) {
      const parentId = event.metadata?.event?.id
      if (!requireAuth(session, parentId))
        return 0
      const refused = typeRefusal(event.type)
      if (refused) {
        reject(session, refused, parentId)
        return 0
      }
      // The registry is authoritative: the hub stamps the sender's source, whatever it claimed.
      const source = session.module ? wireOf(session.module.identity) : { plugin: 'anonymous', instanceId: session.id }
      event.metadata = { ...event.metadata, source, event: { ...event.metadata?.event, id: parentId ?? nanoid() } }
      if (!observers.has('routed'))
        return router.route(session, event)
      const started = performance.now()
      const observe = (delivered: number): number => {
        observers.emit('routed', event.type, delivered, (performance.now() - started) / 1000)
        return delivered
      }
      const delivered = router.route(session, event)
      return delivered instanceof Promise ? delivered.then(observe) : observe(delivered)
    },

    async close() {
      heartbeat.stop()
      feed.stop()
      // Goodbye first: the other nodes drop this node's modules at once, not one by one.
      const leaving = cluster?.close()
      for (const session of [...peers.values()])
        closeSession(session, SHUTDOWN_CODE, 'server shutdown', 'server shutdown')
      await leaving
    },
  }
}
