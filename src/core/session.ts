import type { Connection, DeannounceReason, Identity, ModuleEntry, PeerInfo } from '../types.ts'

export type SessionState = 'pending' | 'authenticated' | 'closed'

const NO_MODULES: readonly ModuleEntry[] = []

/** One peer on the hub side: pending → authenticated → (announced) → closed. */
export class Session implements PeerInfo {
  state: SessionState = 'pending'
  /** The modules this peer announced, oldest first (its registry entries); an AIRI extension peer holds several. */
  modules: readonly ModuleEntry[] = NO_MODULES
  /** Ids it also answers to (`peer:authenticate {peerId}`). */
  aliases?: Set<string>
  /** Its own identity, apart from its modules (AIRI extension peers; see `PeerInfo.identity`). */
  identity?: Identity
  /** Last time any frame arrived (ms). */
  lastSeen: number
  /** Declared unhealthy after one read timeout of silence. */
  unhealthy = false
  /** Authenticated with a devtools token: may ask for `route.bypass`. */
  trusted = false
  failedAuths = 0
  readonly connectedAt: number

  constructor(readonly id: string, readonly connection: Connection, now: number) {
    this.lastSeen = now
    this.connectedAt = now
  }

  get authenticated(): boolean {
    return this.state === 'authenticated'
  }

  get protocol(): string | undefined {
    return this.connection.protocol
  }

  /** The first module still announced: policy judges the peer by it. */
  get module(): ModuleEntry | undefined {
    return this.modules[0]
  }
}

/** What the other hub nodes learn of this node's peers (the cluster, when the hub is clustered). */
export interface ClusterLink {
  /** A local peer authenticated, or its modules, identity or consumers changed (those gone left for `reason`). */
  update: (peer: Session, reason?: DeannounceReason) => void
  /** An authenticated local peer is gone. */
  left: (id: string) => void
  /** A local peer's modules went silent or came back. */
  health: (id: string, healthy: boolean) => void
}
