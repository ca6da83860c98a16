import type { ConsolaInstance } from 'consola'
import type { RemoteModule, RemotePeerState } from '../backplane/types.ts'
import type { DeannounceReason } from '../types.ts'
import type { AliasIndex, SelfNamedIndex } from './aliases.ts'
import type { Consumers, TimedRegistration } from './consumers.ts'
import type { Observers } from './observers.ts'
import type { RegistryFeed } from './registry-feed.ts'
import type { Registry } from './registry.ts'
import type { Requests } from './requests.ts'
import type { RemotePeer } from './router.ts'

export interface RemotePeersOptions {
  /** The table routing reads: filled here, from what the other nodes say. */
  peers: Map<string, RemotePeer>
  /** Whether a peer id belongs to a local session. */
  isLocal: (id: string) => boolean
  registry: Registry
  feed: RegistryFeed
  aliases: AliasIndex
  selfNamed: SelfNamedIndex
  consumers: Consumers
  /** Requests: those a peer that left was to answer fail (its node died, or it disconnected there). */
  requests: Pick<Requests, 'leave'>
  maxConsumersPerPeer: number
  observers: Observers
  logger: ConsolaInstance
}

/** The peers of other nodes, applied as their nodes report them (the cluster port's remote half). */
export interface RemotePeers {
  /** A peer of `node` authenticated or changed; modules it no longer has left for `reason`. */
  upsert: (node: string, state: RemotePeerState, reason: DeannounceReason) => void
  remove: (node: string, id: string, reason: DeannounceReason) => void
  health: (node: string, id: string, healthy: boolean) => void
}

const fingerprint = (module: RemoteModule): string => JSON.stringify({ name: module.name, index: module.index, identity: module.identity })

export function createRemotePeers(options: RemotePeersOptions): RemotePeers {
  const { peers, isLocal, registry, feed, aliases, selfNamed, consumers, requests, maxConsumersPerPeer, observers, logger } = options

  /**
   * A remote peer's registrations move to its new entry as its node sent them (their times kept,
   * so their order holds); past this node's per-peer bound the rest are dropped, and counted.
   */
  function replaceConsumers(previous: RemotePeer | undefined, peer: RemotePeer, registrations: readonly TimedRegistration[] = []): void {
    if (previous)
      consumers.removePeer(previous)
    let refused = 0
    for (const registration of registrations) {
      if (!consumers.register(peer, registration, registration.at))
        refused++
    }
    if (refused > 0) {
      logger.warn(`peer ${peer.id} of node ${peer.node}: ${refused} consumer registration(s) past limits.maxConsumersPerPeer (${maxConsumersPerPeer}) dropped`)
      for (let i = 0; i < refused; i++)
        observers.emit('error', 'backplane_invalid')
    }
  }

  return {
    upsert(node, state, reason) {
      const { id } = state
      // Peer ids are unique per session: one already owned here or by another node is forged.
      if (isLocal(id) || (peers.get(id)?.node ?? node) !== node)
        return
      const incoming = new Map((state.modules ?? []).map(module => [fingerprint(module), module]))
      const gone = registry.ofPeer(id).filter(entry => !incoming.delete(fingerprint(entry)))
      const previous = peers.get(id)
      if (previous) {
        aliases.remove(previous)
        selfNamed.remove(previous)
      }
      for (const entry of gone)
        registry.delete(entry)
      const added = [...incoming.values()].map(module => ({ ...module, peerId: id, node }))
      for (const entry of added)
        registry.set(entry)
      const modules = registry.ofPeer(id)
      const peer: RemotePeer = { id, authenticated: true, node, modules, module: modules[0], aliases: state.aliases && new Set(state.aliases), identity: state.identity, protocol: state.protocol, unhealthy: state.unhealthy }
      selfNamed.update(peer)
      for (const alias of state.aliases ?? [])
        aliases.add(peer, alias)
      peers.set(id, peer)
      replaceConsumers(previous, peer, state.consumers)
      for (const entry of gone)
        feed.deannounced(entry, reason)
      for (const entry of added)
        feed.announced(entry)
      observers.emit('topology')
    },

    remove(node, id, reason) {
      const peer = peers.get(id)
      if (peer?.node !== node)
        return
      peers.delete(id)
      aliases.remove(peer)
      selfNamed.remove(peer)
      consumers.removePeer(peer)
      requests.leave(peer)
      for (const entry of registry.deletePeer(id))
        feed.deannounced(entry, reason)
      observers.emit('topology')
    },

    health(node, id, healthy) {
      const peer = peers.get(id)
      if (peer?.node === node)
        peer.unhealthy = !healthy
      observers.emit('topology')
      for (const entry of registry.ofPeer(id)) {
        if (entry.node === node)
          feed.health(entry, healthy)
      }
    },
  }
}
