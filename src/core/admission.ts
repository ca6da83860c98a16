import type { ResolvedLimits } from '../options.ts'

/** Why a new socket is refused before its upgrade. */
export type Refusal = 'max_peers' | 'pending_per_address'

/** One open socket as admission counts it. */
export interface Ticket {
  /** It has authenticated: it no longer counts against its address's pending sockets. */
  authenticated: () => void
  /** It is gone (idempotent). */
  close: () => void
}

/**
 * Counts open sockets, in all and unauthenticated per client address, so that upgrades past
 * `maxPeers`, or past `maxPendingPerAddress` for a socket that brings no token, are refused
 * before they cost a socket. Sockets are counted from their open, not their upgrade: an
 * upgrade that fails afterwards (a bad handshake) would otherwise hold its slot for ever.
 */
export interface Admission {
  readonly sockets: number
  /** Why a socket from `address` would be refused now; `pending` when it brings no valid token. */
  refusal: (address: string, pending: boolean) => Refusal | undefined
  open: (address: string, pending: boolean) => Ticket
}

export function createAdmission({ maxPeers, maxPendingPerAddress }: Pick<ResolvedLimits, 'maxPeers' | 'maxPendingPerAddress'>): Admission {
  let sockets = 0
  const pendingByAddress = new Map<string, number>()

  function release(address: string): void {
    const left = (pendingByAddress.get(address) ?? 1) - 1
    if (left > 0)
      pendingByAddress.set(address, left)
    else
      pendingByAddress.delete(address)
  }

  return {
    get sockets() {
      return sockets
    },
    refusal(address, pending) {
      if (sockets >= maxPeers)
        return 'max_peers'
      if (pending && maxPendingPerAddress > 0 && (pendingByAddress.get(address) ?? 0) >= maxPendingPerAddress)
        return 'pending_per_address'
      return undefined
    },
    open(address, pending) {
      sockets++
      if (pending)
        pendingByAddress.set(address, (pendingByAddress.get(address) ?? 0) + 1)
      let open = true
      const authenticated = (): void => {
        if (pending) {
          pending = false
          release(address)
        }
      }
      return {
        authenticated,
        close() {
          if (!open)
            return
          open = false
          authenticated()
          sockets--
        },
      }
    },
  }
}
