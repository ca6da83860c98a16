import type { Env, EnvOption } from './env-options.ts'
import type { HubListener, ListenOptions } from './listen.ts'
import type { HubServer } from './server.ts'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import process from 'node:process'
import { parseEnv } from 'node:util'
import { CONFIG_ENV_OPTIONS, loadConfigFile, underEnv } from './config-file.ts'
import { DASHBOARD_ENV_OPTIONS } from './dashboard/options.ts'
import { HubError } from './errors.ts'
import { LISTEN_ENV_OPTIONS, listenHub, resolveListenOptions } from './listen.ts'
import { HUB_ENV_OPTIONS } from './options.ts'
import { MAKAIO_ENV_OPTIONS } from './protocol/makaio.ts'
import { PHOENIX_ENV_OPTIONS } from './protocol/phoenix.ts'
import { THYMIAN_ENV_OPTIONS } from './protocol/thymian.ts'
import { createServer, SERVER_ENV_OPTIONS } from './server.ts'

/**
 * Every variable the hub reads (each declared by its owner), in the order `--help` and
 * `.env.example` list them: the single spec behind the command's flags, its `--help` and `.env.example`.
 */
export const ENV_OPTIONS: readonly EnvOption[] = [
  CONFIG_ENV_OPTIONS.HUB_SERVER_CONFIG,
  LISTEN_ENV_OPTIONS.PORT,
  LISTEN_ENV_OPTIONS.HOST,
  HUB_ENV_OPTIONS.AUTHENTICATION_TOKEN,
  HUB_ENV_OPTIONS.SERVER_INSTANCE_ID,
  HUB_ENV_OPTIONS.LOG_LEVEL,
  HUB_ENV_OPTIONS.LOG_FORMAT,
  HUB_ENV_OPTIONS.HEARTBEAT_TIMEOUT_MS,
  HUB_ENV_OPTIONS.MAX_PAYLOAD_BYTES,
  HUB_ENV_OPTIONS.MAX_BUFFERED_BYTES,
  HUB_ENV_OPTIONS.MAX_PEERS,
  HUB_ENV_OPTIONS.MAX_PENDING_PER_ADDRESS,
  HUB_ENV_OPTIONS.MAX_PENDING_PAYLOAD_BYTES,
  HUB_ENV_OPTIONS.RATE_LIMIT_EVENTS_PER_SEC,
  HUB_ENV_OPTIONS.RATE_LIMIT_BURST,
  HUB_ENV_OPTIONS.RATE_LIMIT_BYTES_PER_SEC,
  SERVER_ENV_OPTIONS.TRUST_PROXY,
  LISTEN_ENV_OPTIONS.HEADERS_TIMEOUT_MS,
  PHOENIX_ENV_OPTIONS.PHOENIX_MAX_CHANNELS,
  PHOENIX_ENV_OPTIONS.PHOENIX_KEYLESS,
  THYMIAN_ENV_OPTIONS.THYMIAN_PORT,
  THYMIAN_ENV_OPTIONS.THYMIAN_MAX_EVENTS,
  MAKAIO_ENV_OPTIONS.MAKAIO_MAX_SUBSCRIPTIONS,
  SERVER_ENV_OPTIONS.REDIS_URL,
  HUB_ENV_OPTIONS.CLUSTER_NODE_TIMEOUT_MS,
  HUB_ENV_OPTIONS.CLUSTER_MAX_NODES,
  HUB_ENV_OPTIONS.CLUSTER_MAX_PEERS_PER_NODE,
  HUB_ENV_OPTIONS.REQUIRED_TIMEOUT_MS,
  SERVER_ENV_OPTIONS.ALLOWED_ORIGINS,
  SERVER_ENV_OPTIONS.ALLOWED_HOSTS,
  SERVER_ENV_OPTIONS.METRICS_ENABLED,
  SERVER_ENV_OPTIONS.METRICS_TOKEN,
  DASHBOARD_ENV_OPTIONS.DASHBOARD_ENABLED,
  DASHBOARD_ENV_OPTIONS.DASHBOARD_PATH,
  DASHBOARD_ENV_OPTIONS.DASHBOARD_TOKEN,
  LISTEN_ENV_OPTIONS.SHUTDOWN_TIMEOUT_MS,
]

export interface CommandLine {
  help: boolean
  version: boolean
  /** What the hub resolves its options from: flags over the environment over `.env` (over the config file). */
  env: Env
}

/** The variables of `<cwd>/.env`, if there is one. */
function readDotEnv(cwd: string): Env {
  const file = join(cwd, '.env')
  return existsSync(file) ? parseEnv(readFileSync(file, 'utf8')) : {}
}

/**
 * Parses `hub-server` arguments (`--flag value` or `--flag=value`) onto the environment and
 * `<cwd>/.env`, so every source goes through the same resolution and validation:
 * flags > env > `.env` > defaults.
 */
export function parseCommandLine(argv: readonly string[], env: Env = process.env, cwd = process.cwd()): CommandLine {
  const result: CommandLine = { help: false, version: false, env: { ...readDotEnv(cwd), ...env } }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') {
      result.help = true
      continue
    }
    if (arg === '--version' || arg === '-v') {
      result.version = true
      continue
    }
    const match = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg)
    const option = match && ENV_OPTIONS.find(o => o.flag === match[1])
    if (!option)
      throw new HubError('invalid_option', `Unknown argument: ${arg} (see --help)`)
    const value = match[2] ?? argv[++i]
    if (value === undefined)
      throw new HubError('invalid_option', `Missing value for --${option.flag} ${option.value}`)
    result.env[option.env] = value
  }
  return result
}

/** Exit codes: 0 after a clean shutdown, 1 when the hub cannot start, 2 for bad arguments. */
const EXIT_USAGE = 2
const EXIT_FAILURE = 1

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

function help(): string {
  const flag = (o: EnvOption): string => `--${o.flag} ${o.value}`
  const width = Math.max(...ENV_OPTIONS.map(o => flag(o).length))
  const lines = ENV_OPTIONS.map(o => `  ${flag(o).padEnd(width)}  ${o.env}: ${o.description}${o.default ? ` (default ${o.default})` : ''}`)
  return [
    'Usage: hub-server [options]',
    '',
    'Serves the hub: WebSocket /ws (AIRI), Phoenix /socket, GET /healthz, /readyz and /metrics.',
    'Each option is a flag or an environment variable (also read from ./.env); flags win.',
    'A config file (hub-server.config.{ts,js,mjs,json,yaml}, or --config) may set any createServer',
    'option, modules included; flags, env and .env win over it.',
    '',
    ...lines,
    `  ${'--help, --version'.padEnd(width)}  this help, the version`,
    '',
  ].join('\n')
}

/**
 * `hub-server`: serves the hub until SIGINT/SIGTERM. Resolves to the exit code when it cannot
 * start (or only prints help), to undefined once serving; a signal then ends the process.
 */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number | undefined> {
  let server: HubServer
  let listen: ListenOptions
  try {
    const commandLine = parseCommandLine(argv)
    if (commandLine.help || commandLine.version) {
      process.stdout.write(commandLine.help ? help() : `${version()}\n`)
      return 0
    }
    const config = await loadConfigFile(commandLine.env.HUB_SERVER_CONFIG, process.cwd())
    listen = resolveListenOptions({ env: commandLine.env })
    server = createServer({ ...underEnv(config.options, commandLine.env, ENV_OPTIONS), env: commandLine.env })
    if (config.file)
      server.hub.options.logger.log(`config loaded from ${config.file}`)
  }
  catch (error) {
    if (!(error instanceof HubError))
      throw error
    process.stderr.write(`hub-server: ${error.message}\n`)
    return EXIT_USAGE
  }

  const { logger } = server.hub.options
  let listener: HubListener
  try {
    listener = await listenHub(server, listen)
  }
  catch (error) {
    await server.closeAllPeers()
    logger.error(error instanceof HubError ? error.message : error)
    return EXIT_FAILURE
  }
  for (const url of listener.urls)
    logger.log(`hub-server listening on ${url.replace(/^http/, 'ws')}ws`)
  if (server.dashboardPath)
    logger.log(`dashboard on ${listener.urls[0]?.replace(/\/$/, '')}${server.dashboardPath}`)
  // Missing required modules are logged, and the hub keeps serving: they may come later.
  const required = server.hub.options.modules.filter(module => module.required).map(module => module.name)
  if (required.length > 0) {
    server.hub.ready().then(
      () => logger.log(`required modules announced: ${required.join(', ')}`),
      (error: Error) => logger.warn(`${error.message}; serving anyway (/readyz is 503 until they are announced)`),
    )
  }

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn(`${signal} again: exiting without waiting for peers`)
      process.exit(EXIT_FAILURE)
    }
    stopping = true
    logger.log(`${signal}: shutting down`)
    listener.close().then(() => process.exit(0), (error) => {
      logger.error(error)
      process.exit(EXIT_FAILURE)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  return undefined
}
