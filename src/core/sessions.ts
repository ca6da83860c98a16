import type { ResolvedHubOptions } from '../options.ts'
import type { Close, Connection, DeannounceReason, Identity } from '../types.ts'
import type { AliasIndex, SelfNamedIndex } from './aliases.ts'
import type { Announcements } from './announcements.ts'
import type { Consumers } from './consumers.ts'
import type { ModuleCatalog } from './module-catalog.ts'
import type { Refusals } from './refusals.ts'
import type { RegistryFeed, RegistryRequest } from './registry-feed.ts'
import type { Requests } from './requests.ts'
import type { ClusterLink } from './session.ts'
import { nanoid } from 'nanoid'
import { HubError } from '../errors.ts'
import { createTokenVerifier } from './auth.ts'
import { CLOSE } from './close.ts'
import { Session } from './session.ts'

/** How a peer authenticates: the reply it waits for, and what it asks for besides. */
export interface Handshake {
  /** Type of the reply (default `module:authenticated`); its data is `{authenticated: true, ...data}`. */
  reply?: string
  data?: Record<string, unknown>
  /** Another id the peer answers to in `peer:<id>` and `ids` destinations (AIRI `peer:authenticate {peerId}`). */
  alias?: string
  /** The peer's own identity (AIRI `extension:authenticate {identity}`): see `PeerInfo.identity`. */
  identity?: Identity
  /** How it wants to hear the registry: deltas, or nothing (default: as asked at the upgrade, else every change as its own event). */
  registry?: RegistryRequest
}

export interface SessionsOptions extends Pick<ResolvedHubOptions, 'auth' | 'onError'> {
  devtoolsTokens: readonly string[]
  maxNameLength: number
  /** Every session by id, and the authenticated ones: the tables routing reads. */
  peers: Map<string, Session>
  authenticated: Map<string, Session>
  /** Peers of other nodes by id: an alias may not take one's id. */
  remote: ReadonlyMap<string, unknown>
  refusals: Refusals
  announcements: Announcements
  feed: RegistryFeed
  aliases: AliasIndex
  selfNamed: SelfNamedIndex
  consumers: Consumers
  /** Requests: a peer that leaves drops its own and fails those it was to answer. */
  requests: Pick<Requests, 'leave'>
  /** Known modules: their own tokens authenticate too, and bind the peer to the module names they open. */
  catalog: Pick<ModuleCatalog, 'tokens' | 'bind' | 'restrict'>
  cluster?: ClusterLink
  /** Sends a hub-originated event to one peer. */
  send: (session: Session, type: string, data: Record<string, unknown>, parentId?: string) => void
}

/** What a peer brings to its connection: the token, and how it hears the registry, given at the upgrade. */
export interface ConnectInit {
  token?: string
  /** The default of its authentications that do not say (AIRI `?registry=none`). */
  registry?: RegistryRequest
  /**
   * A gateway admits the peer without a token for that one module name, which its configuration
   * lists; never a name the catalog gives a token of its own (such a peer stays pending).
   */
  admittedAs?: string
}

export interface Sessions {
  /** Whether peers must authenticate at all. */
  readonly authRequired: boolean
  /** Whether a token would authenticate (for gateways that check it before the upgrade). */
  verifyToken: (token: unknown) => boolean
  /** A new peer, admitted at once when its token is good, none is needed, or `admittedAs` holds. */
  connect: (connection: Connection, init?: ConnectInit) => Session
  authenticate: (session: Session, token: unknown, parentId?: string, handshake?: Handshake) => HubError | undefined
  /** The peer's connection is gone: its modules, aliases and consumers go with it. */
  disconnect: (session: Session, reason?: DeannounceReason) => void
  /** Disconnects the peer and closes its connection with `close`. */
  close: (session: Session, close: Close) => void
}

/** Sessions and admission: a peer connects, authenticates (or is admitted at once) and leaves. */
export function createSessions(options: SessionsOptions): Sessions {
  const { auth, onError, peers, authenticated, remote, refusals, announcements, feed, aliases, selfNamed, consumers, requests, catalog, cluster, send } = options
  const authRequired = auth.tokens.length > 0
  const verifyToken = createTokenVerifier([...auth.tokens, ...options.devtoolsTokens, ...catalog.tokens])
  const isDevtoolsToken = createTokenVerifier(options.devtoolsTokens)
  const registryAtUpgrade = new WeakMap<Session, RegistryRequest>()

  function admit(session: Session, token: unknown, parentId?: string, handshake: Handshake = {}): void {
    session.state = 'authenticated'
    session.trusted = authRequired && isDevtoolsToken(token)
    authenticated.set(session.id, session)
    if (handshake.alias !== undefined && !session.aliases?.has(handshake.alias)) {
      (session.aliases ??= new Set()).add(handshake.alias)
      aliases.add(session, handshake.alias)
    }
    if (handshake.identity)
      session.identity = handshake.identity
    selfNamed.update(session)
    cluster?.update(session)
    // A peer that asked how it hears the registry (in the handshake or at the upgrade) is told the mode it got.
    const registry = handshake.registry ?? registryAtUpgrade.get(session)
    send(session, handshake.reply ?? 'module:authenticated', { authenticated: true, ...handshake.data, ...(registry && { registry: { mode: registry.mode } }) }, parentId)
    feed.admit(session, registry)
  }

  function disconnect(session: Session, reason: DeannounceReason = 'connection closed'): void {
    if (session.state === 'closed')
      return
    announcements.deannounce(session, reason)
    feed.leave(session)
    session.state = 'closed'
    peers.delete(session.id)
    aliases.remove(session)
    selfNamed.remove(session)
    consumers.removePeer(session)
    requests.leave(session)
    if (authenticated.delete(session.id))
      cluster?.left(session.id)
  }

  function close(session: Session, close: Close): void {
    // The connection first, while the peer still has its modules (a gateway reports who it
    // closed); a gateway's close disconnects the session itself, this is for other ports.
    try {
      session.connection.close(close)
    }
    catch (error) {
      onError(error, { stage: 'close', peerId: session.id })
    }
    disconnect(session, close.deannounce)
  }

  /** Why this handshake may not be taken, whatever the token: a reserved identity, or an alias that is too long or taken. */
  function handshakeRefusal(session: Session, handshake: Handshake | undefined): HubError | undefined {
    const identityRefused = handshake?.identity && refusals.ofAnnouncement(handshake.identity.pluginId, handshake.identity)
    if (identityRefused)
      return identityRefused
    const alias = handshake?.alias
    if (alias === undefined)
      return
    if (alias.length > options.maxNameLength)
      return refusals.limitExceeded('peer id')
    // An alias may not take over another peer's own id.
    if ((peers.has(alias) || remote.has(alias)) && alias !== session.id)
      return new HubError('reserved_identity', 'reserved identity')
  }

  return {
    authRequired,
    verifyToken,
    disconnect,
    close,

    connect(connection, init) {
      const session = new Session(nanoid(), connection, Date.now())
      peers.set(session.id, session)
      catalog.bind(session, init?.token)
      if (init?.registry)
        registryAtUpgrade.set(session, init.registry)
      const admittedAs = init?.admittedAs !== undefined && catalog.restrict(session, init.admittedAs)
      if (!authRequired || admittedAs || (init?.token !== undefined && verifyToken(init.token)))
        admit(session, init?.token)
      return session
    },

    authenticate(session, token, parentId, handshake) {
      const refused = handshakeRefusal(session, handshake)
      if (refused)
        return refusals.refuse(session, refused)
      if (!authRequired || verifyToken(token)) {
        catalog.bind(session, token)
        admit(session, token, parentId, handshake)
        return
      }
      session.failedAuths++
      const invalid = new HubError('invalid_token', 'invalid token')
      if (session.failedAuths < auth.maxFailures)
        return refusals.refuse(session, invalid)
      // The peer hears why before its socket closes.
      refusals.fail(session, invalid, parentId)
      close(session, CLOSE.authFailed)
      return invalid
    },
  }
}
