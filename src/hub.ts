import type { Cluster } from './backplane/cluster.ts'
import type { RemoteModule } from './backplane/types.ts'
import type { Admission } from './core/admission.ts'
import type { ConsumerRegistration, TimedRegistration } from './core/consumers.ts'
import type { ModuleCatalog } from './core/module-catalog.ts'
import type { Observers } from './core/observers.ts'
import type { Registry } from './core/registry.ts'
import type { RemotePeer } from './core/router.ts'
import type { HubOptions, ResolvedHubOptions } from './options.ts'
import type { AnnouncedIdentity, Connection, DeannounceReason, HubEvent, Identity, ModuleEntry, PeerInfo, StampedSource, WireIdentity } from './types.ts'
import { nanoid } from 'nanoid'
import { createCluster } from './backplane/cluster.ts'
import { createAdmission } from './core/admission.ts'
import { createAliasIndex } from './core/aliases.ts'
import { createTokenVerifier } from './core/auth.ts'
import { checkAnnouncement, checkData, checkRoutes } from './core/bounds.ts'
import { createConsumers } from './core/consumers.ts'
import { announcedIdentity, isReservedEventType, markPlainJson, stampedSource } from './core/event.ts'
import { createHeartbeat } from './core/heartbeat.ts'
import { createModuleCatalog } from './core/module-catalog.ts'
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
  /**
   * The peer may hold several modules (an AIRI extension peer): its others stay, and only one
   * of the same name and index is replaced. Otherwise the peer has one module, this one.
   */
  alongside?: boolean
}

/** How a peer authenticates: the reply it waits for, and what it asks for besides. */
export interface Handshake {
  /** Type of the reply (default `module:authenticated`); its data is `{authenticated: true, ...data}`. */
  reply?: string
  data?: Record<string, unknown>
  /** Another id the peer answers to in `peer:<id>` and `ids` destinations (AIRI `peer:authenticate {peerId}`). */
  alias?: string
  /** The peer's own identity (AIRI `extension:authenticate {identity}`): see `PeerInfo.identity`. */
  identity?: Identity
}

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
  authenticate: (session: Session, token: unknown, parentId?: string, handshake?: Handshake) => boolean
  /** Registers a module of the peer; false (and an error event sent) when it may not. */
  announce: (session: Session, announcement: Announcement, parentId?: string) => boolean
  /** Names the peer itself, apart from its modules (AIRI `extension:announce`); false (and an error event sent) when it may not. */
  identify: (session: Session, identity: Identity, parentId?: string) => boolean
  /** Registers the peer as a consumer of an event (no ack); the refusal (also sent as an error event) when it may not. */
  registerConsumer: (session: Session, registration: ConsumerRegistration, parentId?: string) => HubError | undefined
  unregisterConsumer: (session: Session, registration: ConsumerRegistration, parentId?: string) => void
  /** Delivers `module:configure` to a module found by name (and index), or by its instance id. */
  configure: (session: Session, target: { moduleName?: string, moduleIndex?: number, instanceId?: string, config: unknown }, parentId?: string) => void
  /** Sends a hub event with peer-given `data` to the sender (answering `parentId`), then to every other authenticated peer. */
  echo: (session: Session, type: string, data: Record<string, unknown>, parentId?: string) => void
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
  /** Sends the peer the whole registry (`registry:modules:sync`) at the end of this turn. */
  sync: (session: Session) => void
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
  /** The known modules (`modules` option): their tokens, options, labels and which are required. */
  readonly catalog: ModuleCatalog
  /** Resolves once every required module is announced (on any node); rejects after `requiredTimeoutMs` naming the missing ones. */
  ready: () => Promise<void>
}

const SHUTDOWN_CODE = 1001
const SLOW_CONSUMER_CODE = 1013

/** The hub core: sessions, registry, routing and liveness; it knows nothing of sockets. */
export function createHub(input: HubOptions = {}): Hub {
  const resolved = resolveHubOptions(input)
  const observers = createObservers()
  // Every swallowed error, from the core or an edge (through `hub.options`), is also counted.
  const onError: ResolvedHubOptions['onError'] = (error, context) => {
    observers.emit('error', context.stage)
    resolved.onError(error, context)
  }
  const options: ResolvedHubOptions = { ...resolved, onError }
  const { logger } = options
  const registry = createRegistry()
  const catalog = createModuleCatalog({ modules: options.modules, registry, requiredTimeoutMs: options.requiredTimeoutMs })
  const peers = new Map<string, Session>()
  const authenticated = new Map<string, Session>()
  const authRequired = options.auth.tokens.length > 0
  const verifyToken = createTokenVerifier([...options.auth.tokens, ...options.routing.devtoolsTokens, ...catalog.tokens])
  const isDevtoolsToken = createTokenVerifier(options.routing.devtoolsTokens)
  const hubSource: WireIdentity = { plugin: 'hub-server', instanceId: options.instanceId }
  // Identities are immutable (a re-announce makes a new one): each wire form is built once.
  const announcedForms = new WeakMap<Identity, AnnouncedIdentity>()
  const sources = new WeakMap<Identity, StampedSource>()
  let cluster: Cluster | undefined
  const remotePeers = new Map<string, RemotePeer>()
  const aliases = createAliasIndex()
  const selfNamed = new Set<PeerInfo>()
  const consumers = createConsumers({ maxPerPeer: options.limits.maxConsumersPerPeer })

  const router = createRouter({
    registry,
    authenticated,
    remote: remotePeers,
    aliases: aliases.peers,
    selfNamed,
    policy: compilePolicy(options.routing.policy),
    middleware: options.routing.middleware,
    allowBypass: options.routing.allowBypass,
    onMiddlewareError: error => onError(error, { stage: 'middleware' }),
    consumers,
    onConsumerDelivery: (sender, event, delivery, group, peer) => {
      observers.emit('consumerDelivery', event.type, group, peer ? 'delivered' : 'missed')
      if (!peer && delivery.required)
        reject(sender, new HubError('no_consumer', 'no consumer registered for requested event delivery'), event.metadata?.event?.id)
    },
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

  /** Sends one hub event to every authenticated peer but `except`, encoded once. */
  function broadcast(type: string, data: Record<string, unknown>, except?: Session): void {
    const event = markPlainJson(createEvent(type, data))
    const recipients = [...authenticated.values()].filter(session => session !== except)
    router.deliver(event, recipients)
  }

  function announcedOf(identity: Identity): AnnouncedIdentity {
    let wire = announcedForms.get(identity)
    if (!wire)
      announcedForms.set(identity, wire = announcedIdentity(identity))
    return wire
  }

  function sourceOf(identity: Identity): StampedSource {
    let source = sources.get(identity)
    if (!source)
      sources.set(identity, source = stampedSource(identity))
    return source
  }

  /** Routing finds an authenticated peer by its own identity while it has no modules. */
  function updateSelfNamed(peer: PeerInfo): void {
    if (peer.identity && peer.authenticated && !peer.modules?.length)
      selfNamed.add(peer)
    else
      selfNamed.delete(peer)
  }

  /** The registry changed under `session`: its own list follows, and so do the other nodes. */
  function modulesChanged(session: Session, reason?: DeannounceReason): void {
    session.modules = registry.ofPeer(session.id)
    updateSelfNamed(session)
    cluster?.update(session, reason)
  }

  const feed = createRegistryFeed({
    registry,
    recipients: () => authenticated.values(),
    deliver: router.deliver,
    createEvent,
    announcedOf,
    laggingBytes: options.limits.maxBufferedBytes / 2,
    observers,
    onLagging: (session, waiting) => logger.debug(`peer ${session.id} is behind on the registry (${waiting} bytes unsent): its deltas wait for one sync`),
  })

  function admit(session: Session, trusted: boolean, parentId?: string, handshake: Handshake = {}): void {
    session.state = 'authenticated'
    session.trusted = trusted
    authenticated.set(session.id, session)
    if (handshake.alias !== undefined && !session.aliases?.has(handshake.alias)) {
      (session.aliases ??= new Set()).add(handshake.alias)
      aliases.add(session, handshake.alias)
    }
    if (handshake.identity)
      session.identity = handshake.identity
    updateSelfNamed(session)
    cluster?.update(session)
    send(session, handshake.reply ?? 'module:authenticated', { authenticated: true, ...handshake.data }, parentId)
    feed.sync(session)
  }

  /** Takes modules of `session` out of the registry (all of them by default) and tells the others. */
  function deannounce(session: Session, reason: DeannounceReason, entries: readonly ModuleEntry[] = session.modules): void {
    if (entries.length === 0)
      return
    for (const entry of entries) {
      registry.delete(entry)
      logger.debug(`module ${entry.name} of peer ${session.id} de-announced (${reason})`)
    }
    modulesChanged(session, reason)
    for (const entry of entries)
      feed.deannounced(entry, reason, session)
  }

  function disconnect(session: Session, reason: DeannounceReason = 'connection closed'): void {
    if (session.state === 'closed')
      return
    deannounce(session, reason)
    session.state = 'closed'
    peers.delete(session.id)
    aliases.remove(session)
    selfNamed.delete(session)
    consumers.removePeer(session)
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
      for (const entry of session.modules)
        feed.health(entry, false, session)
      if (session.modules.length > 0 || consumers.of(session))
        cluster?.health(session.id, false)
    },
    onHealthy: (session) => {
      for (const entry of session.modules)
        feed.health(entry, true, session)
      if (session.modules.length > 0 || consumers.of(session))
        cluster?.health(session.id, true)
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
    if ((error.code === 'limit_exceeded' || error.code === 'reserved_event' || error.code === 'reserved_identity' || error.code === 'module_forbidden') && !refusalLogged.has(session)) {
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

  function sourceOfSender(session: Session, claimed: unknown): StampedSource {
    const { modules } = session
    // A peer without modules (an AIRI extension peer between its handshake and its modules) is
    // named by its own identity, else anonymous by its alias or id.
    if (modules.length === 0)
      return session.identity ? sourceOf(session.identity) : stampedSource({ pluginId: 'anonymous', instanceId: session.aliases?.values().next().value ?? session.id, labels: {} })
    const claimedId = modules.length > 1 ? (claimed as { id?: unknown } | undefined)?.id : undefined
    const named = typeof claimedId === 'string' ? modules.find(entry => entry.identity.instanceId === claimedId) : undefined
    return sourceOf((named ?? modules[0]!).identity)
  }

  /** Why a peer may not register this consumer; registers it when it may. */
  function consumerRefusal(session: Session, registration: ConsumerRegistration): HubError | undefined {
    const { maxNameLength } = options.limits
    if (!session.authenticated)
      return new HubError('not_authenticated', 'not authenticated')
    if (registration.event.length > maxNameLength || (registration.group?.length ?? 0) > maxNameLength)
      return limitExceeded('consumer event or group')
    if (!consumers.register(session, registration))
      return limitExceeded('consumer registrations')
  }

  /** Why a peer may not announce this: too big, or the hub's own identity. */
  function announceRefusal(name: string, identity: Identity): HubError | undefined {
    const exceeded = checkAnnouncement(name, identity, options.limits)
    if (exceeded)
      return limitExceeded(exceeded)
    if (identity.pluginId === hubSource.plugin || identity.instanceId === options.instanceId)
      return new HubError('reserved_identity', 'reserved identity')
  }

  /**
   * A remote peer's registrations move to its new entry as its node sent them (their times kept,
   * so their order holds); past this node's per-peer bound the rest are dropped, and counted.
   */
  function replaceRemoteConsumers(previous: RemotePeer | undefined, peer: RemotePeer, registrations: readonly TimedRegistration[] = []): void {
    if (previous)
      consumers.removePeer(previous)
    let refused = 0
    for (const registration of registrations) {
      if (!consumers.register(peer, registration, registration.at))
        refused++
    }
    if (refused > 0) {
      logger.warn(`peer ${peer.id} of node ${peer.node}: ${refused} consumer registration(s) past limits.maxConsumersPerPeer (${options.limits.maxConsumersPerPeer}) dropped`)
      for (let i = 0; i < refused; i++)
        observers.emit('error', 'backplane_invalid')
    }
  }

  if (options.backplane) {
    cluster = createCluster({
      backplane: options.backplane,
      nodeId: `${options.instanceId}-${nanoid(8)}`,
      ...options.cluster,
      logger,
      onError,
      port: {
        localPeers: () => authenticated.values(),
        consumersOf: consumers.of,
        upsert(node, state, reason) {
          const { id } = state
          // Peer ids are unique per session: one already owned here or by another node is forged.
          if (peers.has(id) || (remotePeers.get(id)?.node ?? node) !== node)
            return
          const fingerprint = (module: RemoteModule): string => JSON.stringify({ name: module.name, index: module.index, identity: module.identity })
          const incoming = new Map((state.modules ?? []).map(module => [fingerprint(module), module]))
          const previous = registry.ofPeer(id)
          const gone = previous.filter(entry => !incoming.delete(fingerprint(entry)))
          const previousPeer = remotePeers.get(id)
          if (previousPeer) {
            aliases.remove(previousPeer)
            selfNamed.delete(previousPeer)
          }
          for (const entry of gone)
            registry.delete(entry)
          const added = [...incoming.values()].map(module => ({ ...module, peerId: id, node }))
          for (const entry of added)
            registry.set(entry)
          const modules = registry.ofPeer(id)
          const peer: RemotePeer = { id, authenticated: true, node, modules, module: modules[0], aliases: state.aliases && new Set(state.aliases), identity: state.identity, unhealthy: state.unhealthy }
          updateSelfNamed(peer)
          for (const alias of state.aliases ?? [])
            aliases.add(peer, alias)
          remotePeers.set(id, peer)
          replaceRemoteConsumers(previousPeer, peer, state.consumers)
          for (const entry of gone)
            feed.deannounced(entry, reason)
          for (const entry of added)
            feed.announced(entry)
        },
        remove(node, id, reason) {
          const peer = remotePeers.get(id)
          if (peer?.node !== node)
            return
          remotePeers.delete(id)
          aliases.remove(peer)
          selfNamed.delete(peer)
          consumers.removePeer(peer)
          for (const entry of registry.deletePeer(id))
            feed.deannounced(entry, reason)
        },
        health(node, peerId, healthy) {
          const peer = remotePeers.get(peerId)
          if (peer?.node === node)
            peer.unhealthy = !healthy
          for (const entry of registry.ofPeer(peerId)) {
            if (entry.node === node)
              feed.health(entry, healthy)
          }
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
    sync: feed.sync,
    reject,
    requireAuth,
    refusal,
    disconnect,
    observers,
    // A clustered hub serves its own peers while the backplane is down, but is not ready.
    readiness: new Map([...(cluster ? [['backplane', () => cluster.ready] as const] : []), ...catalog.readiness]),
    catalog,
    ready: catalog.ready,

    connect(connection, init) {
      const session = new Session(nanoid(), connection, Date.now())
      peers.set(session.id, session)
      catalog.bind(session, init?.token)
      if (!authRequired)
        admit(session, false)
      else if (init?.token !== undefined && verifyToken(init.token))
        admit(session, isDevtoolsToken(init.token))
      return session
    },

    authenticate(session, token, parentId, handshake) {
      const identityRefused = handshake?.identity && announceRefusal(handshake.identity.pluginId, handshake.identity)
      if (identityRefused) {
        reject(session, identityRefused, parentId)
        return false
      }
      if (handshake?.alias !== undefined) {
        // An alias may not take over another peer's own id.
        const alias = handshake.alias
        if (alias.length > options.limits.maxNameLength) {
          reject(session, limitExceeded('peer id'), parentId)
          return false
        }
        if ((peers.has(alias) || remotePeers.has(alias)) && alias !== session.id) {
          reject(session, new HubError('reserved_identity', 'reserved identity'), parentId)
          return false
        }
      }
      if (!authRequired) {
        catalog.bind(session, token)
        admit(session, false, parentId, handshake)
        return true
      }
      if (verifyToken(token)) {
        catalog.bind(session, token)
        admit(session, isDevtoolsToken(token), parentId, handshake)
        return true
      }
      session.failedAuths++
      reject(session, new HubError('invalid_token', 'invalid token'), parentId)
      if (session.failedAuths >= options.auth.maxFailures)
        closeSession(session, 4001, 'authentication failed')
      return false
    },

    announce(session, { name, index, identity, alongside }, parentId) {
      if (!requireAuth(session, parentId))
        return false
      const refused = announceRefusal(name, identity) ?? catalog.refusal(session, name)
      if (refused) {
        reject(session, refused, parentId)
        return false
      }
      identity = catalog.labelled(name, identity)
      const current = session.modules.find(entry => entry.name === name && entry.index === index)
      const same = current !== undefined && JSON.stringify(current.identity) === JSON.stringify(identity)
      // A peer of one module replaces it; a peer of several replaces only the one of this name and index.
      const replaced = alongside ? (current ? [current] : []) : session.modules
      if (!same && session.modules.length - replaced.length >= options.limits.maxModulesPerPeer) {
        reject(session, limitExceeded('modules per peer'), parentId)
        return false
      }
      let entry: ModuleEntry | undefined
      if (!same) {
        deannounce(session, 're-announcing', replaced)
        entry = { name, index, identity, peerId: session.id }
        registry.set(entry)
        modulesChanged(session)
        logger.debug(`module ${name} announced by peer ${session.id}`)
      }
      feed.sync(session)
      if (entry)
        feed.announced(entry, session)
      const config = catalog.optionsOf(name)
      if (config)
        send(session, 'module:configure', { config })
      return true
    },

    identify(session, identity, parentId) {
      if (!requireAuth(session, parentId))
        return false
      const refused = announceRefusal(identity.pluginId, identity)
      if (refused) {
        reject(session, refused, parentId)
        return false
      }
      session.identity = identity
      updateSelfNamed(session)
      cluster?.update(session)
      return true
    },

    registerConsumer(session, registration, parentId) {
      const refused = consumerRefusal(session, registration)
      if (refused) {
        reject(session, refused, parentId)
        return refused
      }
      logger.debug(`peer ${session.id} consumes ${registration.event} (group ${registration.group ?? 'default'})`)
      cluster?.update(session)
    },

    unregisterConsumer(session, registration, parentId) {
      if (requireAuth(session, parentId) && consumers.unregister(session, registration))
        cluster?.update(session)
    },

    configure(session, { moduleName, moduleIndex, instanceId, config }, parentId) {
      if (!requireAuth(session, parentId))
        return
      const target = instanceId === undefined
        ? registry.find(moduleName!, moduleIndex)
        : [...registry.lookup('instance', instanceId)].find(entry => (moduleName === undefined || entry.name === moduleName) && (moduleIndex === undefined || entry.index === moduleIndex))
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

    echo(session, type, data, parentId) {
      send(session, type, data, parentId)
      broadcast(type, data, session)
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
      // The registry is authoritative: the hub stamps the sender's source, whatever it claimed;
      // a peer of several modules may name which of its own sends (by the claimed source's id).
      const source = sourceOfSender(session, event.metadata?.source)
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
