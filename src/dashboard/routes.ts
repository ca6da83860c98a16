import type { H3 } from 'h3'
import type { Hub } from '../hub.ts'
import type { GuardOptions } from '../request-guard.ts'
import type { ResolvedDashboardOptions } from './options.ts'
import type { DashboardStreams } from './stream.ts'
import { clientAddress } from '../protocol/limits.ts'
import { createDashboardAuth } from './auth.ts'
import { createExplainHandler } from './explain-route.ts'
import { createDashboardPage } from './page.ts'
import { createDashboardStats } from './stats.ts'
import { createDashboardStreams } from './stream.ts'
import { createTopologyView } from './view.ts'

/**
 * Mounts the dashboard: `GET <path>` (the page, no data in it), `GET <path>/api/stream` (the
 * live stream) and `POST <path>/api/explain`; the data endpoints check the token on every
 * request. Like every endpoint, they answer no foreign origin and no unserved host. Returns
 * the pages' streams (the server ends them on close).
 */
export function addDashboard(app: H3, hub: Hub, { path, token }: ResolvedDashboardOptions, { trustProxy }: Pick<GuardOptions, 'trustProxy'>): DashboardStreams {
  const page = createDashboardPage()
  const authorize = createDashboardAuth(hub, token, trustProxy)
  const streams = createDashboardStreams(hub, createTopologyView(hub), createDashboardStats(hub.observers))
  const explain = createExplainHandler(hub)

  app.get(path, page)
  app.get(`${path}/api/stream`, event => authorize(event.req) ?? streams.open(clientAddress(event.req, trustProxy)))
  app.post(`${path}/api/explain`, event => authorize(event.req) ?? explain(event.req))
  return streams
}
