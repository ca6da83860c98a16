import type { Env } from '../env-options.ts'
import { bool, envOptions, invalid } from '../env-options.ts'

/** `createServer({ dashboard })`: the live dashboard page and its data endpoints. */
export interface DashboardOptions {
  /**
   * Serve the dashboard.
   * @default env `DASHBOARD_ENABLED`, else true
   */
  enabled?: boolean
  /**
   * Where: the page at `<path>`, its live stream at `<path>/api/stream`, explain at `<path>/api/explain`.
   * @default env `DASHBOARD_PATH`, else '/dashboard'
   */
  path?: string
  /**
   * Bearer token its data requests need. Unset: the metrics token, else the (first)
   * authentication token; with none of them, it answers on a loopback host only.
   * @default env `DASHBOARD_TOKEN`, else `metrics.token`, else `auth.token`
   */
  token?: string
}

export interface ResolvedDashboardOptions {
  enabled: boolean
  path: string
  /** The token data requests need; none = loopback only. */
  token?: string
}

export const DEFAULT_DASHBOARD_PATH = '/dashboard'

export const DASHBOARD_ENV_OPTIONS = envOptions({
  DASHBOARD_ENABLED: { option: 'dashboard.enabled', flag: 'dashboard', value: '<bool>', default: 'true', description: 'serve the live dashboard page' },
  DASHBOARD_PATH: { option: 'dashboard.path', flag: 'dashboard-path', value: '<path>', default: DEFAULT_DASHBOARD_PATH, description: 'path of the dashboard page (its API under <path>/api)' },
  DASHBOARD_TOKEN: { option: 'dashboard.token', flag: 'dashboard-token', value: '<token>', default: '', description: 'bearer token the dashboard asks for (empty = the metrics token, else the authentication token, else loopback only)' },
})
const ENV = DASHBOARD_ENV_OPTIONS

const PATH = /^(?:\/[\w.~-]+)+$/

/**
 * Resolves the dashboard's options; `fallbackTokens` are the metrics token then the
 * authentication tokens, the first one set is used when no dashboard token is.
 */
export function resolveDashboardOptions(options: DashboardOptions = {}, env: Env, fallbackTokens: ReadonlyArray<string | undefined> = []): ResolvedDashboardOptions {
  const path = options.path ?? (env.DASHBOARD_PATH || DEFAULT_DASHBOARD_PATH)
  if (typeof path !== 'string' || !PATH.test(path))
    invalid(ENV.DASHBOARD_PATH, path, 'a path like /dashboard (letters, digits, . _ ~ -; no trailing slash)')
  const token = [options.token, env.DASHBOARD_TOKEN, ...fallbackTokens].find(candidate => typeof candidate === 'string' && candidate !== '')
  return { enabled: bool(ENV.DASHBOARD_ENABLED, options.enabled, env, true), path, token }
}
