import type { EnvOption } from './env-options.ts'
import type { ServerOptions } from './server.ts'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadConfig } from 'c12'
import { envOptions } from './env-options.ts'
import { HubError } from './errors.ts'
import { resolveHubOptions } from './options.ts'
import { resolveServerOptions } from './server.ts'

/** The command's own env-configurable option: where its config file is. */
export const CONFIG_ENV_OPTIONS = envOptions({
  HUB_SERVER_CONFIG: { flag: 'config', value: '<path>', default: '', description: 'config file with any createServer option, modules included (empty = hub-server.config.{ts,js,mjs,json,yaml} in the working directory, if there is one); env and flags win over it' },
})

// Every top-level option a config file may set; typed so that a new option must be listed.
const CONFIG_KEYS: Record<Exclude<keyof ServerOptions, 'env'>, true> = {
  instanceId: true,
  auth: true,
  heartbeat: true,
  routing: true,
  limits: true,
  trustProxy: true,
  phoenix: true,
  logger: true,
  modules: true,
  requiredTimeoutMs: true,
  backplane: true,
  cluster: true,
  onError: true,
  path: true,
  http: true,
  metrics: true,
  redisUrl: true,
  gateways: true,
  dashboard: true,
}

export interface ConfigFile {
  /** The file loaded, if any. */
  file?: string
  options: ServerOptions
}

const fileError = (file: string, message: string): HubError => new HubError('invalid_option', `${file}: ${message}`)

/**
 * Loads the config file (`path`, else `hub-server.config.*` in `cwd`) with c12 and checks it
 * as `createServer()` would, so a bad field is reported with the file's name before anything
 * starts. Throws `HubError('invalid_option')`.
 */
export async function loadConfigFile(path: string | undefined, cwd: string): Promise<ConfigFile> {
  const configFile = path ? resolve(cwd, path) : undefined
  if (configFile && !existsSync(configFile))
    throw new HubError('invalid_option', `Config file not found: ${configFile}`)
  let loaded: Awaited<ReturnType<typeof loadConfig<ServerOptions>>>
  try {
    loaded = await loadConfig<ServerOptions>({ name: 'hub-server', cwd, configFile, dotenv: false, rcFile: false, globalRc: false, packageJson: false })
  }
  catch (error) {
    throw fileError(configFile ?? `hub-server.config.* in ${cwd}`, `cannot be loaded (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`)
  }
  const file = loaded.configFile && existsSync(loaded.configFile) ? loaded.configFile : undefined
  const options = loaded.config ?? {}
  if (!file)
    return { options: {} }
  if (typeof options !== 'object' || Array.isArray(options))
    throw fileError(file, 'expected an object of createServer() options')
  for (const key of Object.keys(options)) {
    if (!Object.hasOwn(CONFIG_KEYS, key))
      throw fileError(file, `Unknown option ${key} (expected one of ${Object.keys(CONFIG_KEYS).join(', ')})`)
  }
  try {
    // With no env: what is wrong is the file's own.
    resolveHubOptions({ ...options, env: {} })
    resolveServerOptions({ ...options, env: {} })
  }
  catch (error) {
    throw error instanceof HubError ? fileError(file, error.message) : error
  }
  return { file, options }
}

/**
 * The file's options without those an env variable (or flag, or `.env`) sets, so that every
 * other source wins over the file: flags > env > `.env` > config file > defaults.
 */
export function underEnv(options: ServerOptions, env: Record<string, string | undefined>, settings: readonly EnvOption[]): ServerOptions {
  const result: Record<string, unknown> = { ...options }
  for (const { env: name, option } of settings) {
    if (option === undefined || env[name] === undefined || env[name] === '')
      continue
    // Option paths are one or two deep (`redisUrl`, `limits.maxPeers`).
    const [first, second] = option.split('.') as [string, string?]
    const group = result[first]
    if (second === undefined)
      delete result[first]
    else if (typeof group === 'object' && group !== null)
      result[first] = Object.fromEntries(Object.entries(group).filter(([key]) => key !== second))
  }
  return result as ServerOptions
}
