import type { Hub } from '../hub.ts'
import { createTokenVerifier } from '../core/auth.ts'
import { clientAddress, logRefusal } from '../protocol/limits.ts'
import { isLoopbackHost } from '../request-guard.ts'

/** The answer refusing a dashboard data request, or undefined when it may go on. */
export type DashboardAuth = (request: Request) => Response | undefined

function refused(status: number, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ error: message }, { status, headers: { 'cache-control': 'no-store', ...headers } })
}

const isLoopbackAddress = (address: string): boolean => /^(?:127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/.test(address)

/**
 * Checks every data request (stream, explain): `Authorization: Bearer <token>` against the
 * dashboard's token in constant time (missing 401, wrong 403). Without a token it answers only
 * a request made on this machine to a loopback name (else 403), so that a hub exposed with
 * auth off does not show its topology to the network.
 */
export function createDashboardAuth(hub: Hub, token: string | undefined, trustProxy: boolean): DashboardAuth {
  const verify = token === undefined ? undefined : createTokenVerifier([token])
  const refuse = (request: Request, status: number, message: string, why: string): Response => {
    hub.observers.emit('error', 'dashboard_refused')
    logRefusal(hub, `refused dashboard ${request.method} ${new URL(request.url).pathname} from ${clientAddress(request, trustProxy)}: ${why}`)
    return refused(status, message)
  }
  return (request) => {
    if (!verify) {
      const host = new URL(request.url).hostname
      return isLoopbackAddress(clientAddress(request, trustProxy)) && isLoopbackHost(host)
        ? undefined
        : refuse(request, 403, 'No dashboard token is configured (DASHBOARD_TOKEN, METRICS_TOKEN or AUTHENTICATION_TOKEN): the dashboard answers on a loopback host only', 'no token configured, not loopback')
    }
    const header = request.headers.get('authorization')
    // The page's first request asks without a token: a challenge, not an error worth counting.
    if (!header?.startsWith('Bearer '))
      return refused(401, 'A dashboard token is required (Authorization: Bearer <token>)', { 'www-authenticate': 'Bearer' })
    return verify(header.slice(7)) ? undefined : refuse(request, 403, 'Wrong dashboard token', 'wrong token')
  }
}
