import type { HubListener } from './listen.ts'
import type { EnvOption, ListenOptions } from './options.ts'
import type { HubServer } from './server.ts'
import { readFileSync } from 'node:fs'
import process from 'node:process'
import { HubError } from './errors.ts'
import { listenHub } from './listen.ts'
import { ENV_OPTIONS, parseCommandLine, resolveListenOptions } from './options.ts'
import { createServer } from './server.ts'

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
    listen = resolveListenOptions({ env: commandLine.env })
    server = createServer({ env: commandLine.env })
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
