import type { ConsolaInstance, ConsolaReporter } from 'consola'
import process from 'node:process'
import { createConsola, LogLevels } from 'consola'

export type LogLevel = 'silent' | 'error' | 'warn' | 'log' | 'info' | 'debug' | 'trace'
export type LogFormat = 'pretty' | 'json'

export const LOG_LEVELS: readonly LogLevel[] = ['silent', 'error', 'warn', 'log', 'info', 'debug', 'trace']
export const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json']

const LEVEL_NUMBERS: Record<LogLevel, number> = {
  silent: LogLevels.silent,
  error: LogLevels.error,
  warn: LogLevels.warn,
  log: LogLevels.log,
  info: LogLevels.info,
  debug: LogLevels.debug,
  trace: LogLevels.trace,
}

/** One JSON object per line on stderr, for log collectors. */
const jsonReporter: ConsolaReporter = {
  log(entry) {
    const [message, ...rest] = entry.args
    const line: Record<string, unknown> = {
      time: entry.date.toISOString(),
      level: entry.type,
      tag: entry.tag || undefined,
      message: message instanceof Error ? message.message : String(message),
    }
    const extra = rest.map(arg => arg instanceof Error ? { error: arg.message, stack: arg.stack } : arg)
    if (extra.length > 0)
      line.args = extra
    process.stderr.write(`${JSON.stringify(line)}\n`)
  },
}

export function createLogger(options: { level: LogLevel, format: LogFormat }): ConsolaInstance {
  return createConsola({
    level: LEVEL_NUMBERS[options.level],
    ...(options.format === 'json' ? { reporters: [jsonReporter] } : {}),
  }).withTag('hub')
}
