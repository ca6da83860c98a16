import type { Connection, ModuleEntry, PeerInfo } from '../types.ts'

export type SessionState = 'pending' | 'authenticated' | 'closed'

/** One peer on the hub side: pending → authenticated → (announced) → closed. */
export class Session implements PeerInfo {
  state: SessionState = 'pending'
  /** The module this peer announced; one per peer. */
  module?: ModuleEntry
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
}
