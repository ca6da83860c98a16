import type { Hub } from './hub.ts'
import { clientAddress, logRefusal } from './protocol/limits.ts'

/**
 * Which requests the hub answers at all, so that no web page can use a browser as its proxy:
 * a page from a foreign origin must not open the hub's WebSockets or read its endpoints (403),
 * and a DNS-rebinding page, which reaches a hub on 127.0.0.1 under its own name, must not be
 * answered either (421 Misdirected Request: the hub does not serve that host).
 */
export interface RequestGuard {
  /** The answer refusing `request`, or undefined when it may go on (to a gateway or endpoint). */
  check: (request: Request) => Response | undefined
  /**
   * Tells the guard an address the hub listens on (`listenHub` does). Bound to a loopback
   * address with auth off, the hub answers loopback and `http.allowedHosts` names only.
   */
  listeningOn: (address: string) => void
}

const ORIGIN_REFUSED = 'origin_refused'
const HOST_REFUSED = 'host_refused'

export const isWebSocketUpgrade = (request: Request): boolean => request.headers.get('upgrade')?.toLowerCase() === 'websocket'

/** Loopback names and addresses, as `URL.hostname` writes them: the browser reaches them only on this machine. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)
}

/**
 * An origin as browsers send it in `Origin`: lowercase, no default port, no path. Other schemes
 * (a desktop shell's `tauri://localhost`) are kept as written, lowercased.
 */
export function normalizeOrigin(origin: string): string | undefined {
  if (!/^[a-z][\w+.-]*:\/\/[^/?#\s]+$/i.test(origin))
    return undefined
  if (!/^https?:/i.test(origin))
    return origin.toLowerCase()
  try {
    return new URL(origin).origin
  }
  catch {
    return undefined
  }
}

/** `host[:port]` of a `Host` header as a URL of `protocol` writes it (its default port dropped), if valid. */
function parseHost(host: string, protocol = 'http:'): URL | undefined {
  if (!/^(?:[\w.-]+|\[[\da-f:.]+\])(?::\d{1,5})?$/i.test(host))
    return undefined
  try {
    return new URL(`${protocol}//${host}`)
  }
  catch {
    return undefined
  }
}

/** Header values in log lines: quoted, and cut short (they are the sender's to choose). */
function quote(value: string): string {
  return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value)
}

/** `createServer()`'s `http` options, normalized: origins as `scheme://host[:port]` without a default port, hosts lowercase. */
export interface GuardOptions {
  /** Take the client's address from `X-Forwarded-For` (behind a proxy). */
  trustProxy: boolean
  allowedOrigins: readonly string[]
  allowedHosts: readonly string[]
}

export function createRequestGuard(hub: Hub, { allowedOrigins, allowedHosts, trustProxy }: GuardOptions): RequestGuard {
  const anyOrigin = allowedOrigins.includes('*')
  const origins = new Set(allowedOrigins)
  const anyHost = allowedHosts.includes('*')
  let checkHosts = allowedHosts.length > 0 && !anyHost

  function hostAllowed(hostname: string): boolean {
    return isLoopbackHost(hostname) || allowedHosts.some(entry => entry === hostname || (entry.startsWith('.') && (hostname.endsWith(entry) || hostname === entry.slice(1))))
  }

  /** Same origin (its host:port is the request's `Host`), a localhost page, or an allowed one. */
  function originAllowed(origin: string, host: string | null): boolean {
    if (anyOrigin)
      return true
    const normalized = normalizeOrigin(origin)
    if (normalized === undefined)
      return false // `null` (sandboxed frames, data: URLs) and garbage
    if (origins.has(normalized))
      return true
    if (!/^https?:/.test(normalized))
      return false
    const url = new URL(normalized)
    return isLoopbackHost(url.hostname) || (host !== null && parseHost(host, url.protocol)?.host === url.host)
  }

  function refuse(request: Request, status: number, reason: string, why: string): Response {
    hub.observers.emit('error', reason)
    // The path only: a query may carry a token.
    const path = new URL(request.url).pathname
    const what = isWebSocketUpgrade(request) ? `a WebSocket upgrade to ${path}` : `${request.method} ${path}`
    logRefusal(hub, `refused ${what} from ${clientAddress(request, trustProxy)}: ${why}`)
    return new Response(status === 421 ? 'Misdirected Request: this hub does not serve that host' : 'Forbidden: origin not allowed', { status })
  }

  return {
    check(request) {
      const host = request.headers.get('host')
      if (checkHosts) {
        const hostname = host === null ? undefined : parseHost(host)?.hostname
        if (hostname === undefined || !hostAllowed(hostname))
          return refuse(request, 421, HOST_REFUSED, `host ${quote(host ?? '')} is not allowed (ALLOWED_HOSTS)`)
      }
      const origin = request.headers.get('origin')
      if (origin !== null && !originAllowed(origin, host))
        return refuse(request, 403, ORIGIN_REFUSED, `origin ${quote(origin)} is not allowed (ALLOWED_ORIGINS)`)
      return undefined
    },
    listeningOn(address) {
      const hostname = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address
      if (!hub.authRequired && !anyHost && isLoopbackHost(parseHost(hostname)?.hostname ?? ''))
        checkHosts = true
    },
  }
}
