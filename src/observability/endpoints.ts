import type { H3 } from 'h3'
import type { Hub } from '../hub.ts'
import { createTokenVerifier } from '../core/auth.ts'
import { createMetrics } from './metrics.ts'

const json = (body: unknown, status = 200): Response => Response.json(body, { status, headers: { 'cache-control': 'no-store' } })

/** `createServer()`'s `metrics` options, resolved. */
export interface MetricsOptions {
  enabled: boolean
  token?: string
  maxEventTypes: number
}

/**
 * The operator endpoints, on the hub's own port: `GET /healthz` (the process answers),
 * `GET /readyz` (every readiness check passes, else 503 with the required modules missing, if
 * any) and `GET /metrics` (Prometheus, unless disabled; behind `Authorization: Bearer
 * <METRICS_TOKEN>` when one is set). Like the WebSocket endpoints, they answer no foreign
 * origin and no unserved host (`createServer`'s guard).
 */
export function addOpsEndpoints(app: H3, hub: Hub, { enabled, token, maxEventTypes }: MetricsOptions, builtInTypes: readonly string[] = []): void {
  app.get('/healthz', () => json({ status: 'ok' }))

  app.get('/readyz', () => {
    const checks = Object.fromEntries([...hub.readiness].map(([name, check]) => [name, check()]))
    const ready = Object.values(checks).every(Boolean)
    const missing = hub.catalog.missing()
    return json({ status: ready ? 'ready' : 'not ready', checks, ...(missing.length > 0 && { missing }) }, ready ? 200 : 503)
  })

  if (!enabled)
    return
  const metrics = createMetrics(hub, maxEventTypes, builtInTypes)
  const authorized = token ? createTokenVerifier([token]) : undefined
  app.get('/metrics', async (event) => {
    const header = event.req.headers.get('authorization')
    if (authorized && !(header?.startsWith('Bearer ') && authorized(header.slice(7))))
      return new Response('Unauthorized', { status: 401, headers: { 'www-authenticate': 'Bearer' } })
    return new Response(await metrics.render(), { headers: { 'content-type': metrics.contentType, 'cache-control': 'no-store' } })
  })
}
