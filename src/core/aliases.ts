import type { PeerInfo } from '../types.ts'

/** Peers, local and remote, by the other ids they answer to (AIRI `peer:authenticate {peerId}`); several may share one. */
export interface AliasIndex {
  readonly peers: ReadonlyMap<string, ReadonlySet<PeerInfo>>
  add: (peer: PeerInfo, alias: string) => void
  /** Forgets every alias of `peer` (its `aliases`). */
  remove: (peer: PeerInfo) => void
}

export function createAliasIndex(): AliasIndex {
  const peers = new Map<string, Set<PeerInfo>>()
  return {
    peers,
    add(peer, alias) {
      let set = peers.get(alias)
      if (!set)
        peers.set(alias, set = new Set())
      set.add(peer)
    },
    remove(peer) {
      for (const alias of peer.aliases ?? []) {
        const set = peers.get(alias)
        if (set?.delete(peer) && set.size === 0)
          peers.delete(alias)
      }
    },
  }
}

/** Authenticated peers, local and remote, without modules but with an identity of their own (`PeerInfo.identity`). */
export interface SelfNamedIndex {
  readonly peers: ReadonlySet<PeerInfo>
  /** Routing finds an authenticated peer by its own identity while it has no modules. */
  update: (peer: PeerInfo) => void
  remove: (peer: PeerInfo) => void
}

export function createSelfNamedIndex(): SelfNamedIndex {
  const peers = new Set<PeerInfo>()
  return {
    peers,
    update(peer) {
      if (peer.identity && peer.authenticated && !peer.modules?.length)
        peers.add(peer)
      else
        peers.delete(peer)
    },
    remove: peer => void peers.delete(peer),
  }
}
