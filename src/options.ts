import type { ConsolaInstance } from 'consola'
import type { RoutingMiddleware } from './core/middleware.ts'
import type { RoutingPolicy } from './core/policy.ts'
import type { ErrorStage } from './errors.ts'
import process from 'node:process'
import { nanoid } from 'nanoid'
import { HubError } from './errors.ts'
import { createLogger } from './observability/logger.ts'

export type LogLevel = 'silent' | 'error' | 'warn' | 'log' | 'info' | 'debug' | 'trace'
export type LogFormat = 'pretty' | 'json'
export type Env = Record<string, string | undefined>

export interface HubOptions {
  /**
   * Names this hub in `metadata.source` of the events it sends.
   * @default env `SERVER_INSTANCE_ID`, else a generated nanoid
   */
  instanceId?: string
  auth?: {
    /**
     * Token(s) peers must present; none = authentication off.
     * @default env `AUTHENTICATION_TOKEN`
     */
    token?: string | string[]
    /**
     * A peer that has not authenticated after this long is closed with 4001 (0 = never).
     * @default 30000
     */
    timeoutMs?: number
    /**
     * Bad tokens a peer may present before it is closed with 4001.
     * @default 3
     */
    maxFailures?: number
  }
  heartbeat?: {
    /**
     * Silence after which a peer is unhealthy; after twice this it is closed with 4000.
     * @default env `HEARTBEAT_TIMEOUT_MS`, else 60000
     */
    readTimeout?: number
    /**
     * The `message` of the hub's heartbeat pongs.
     * @default '💛'
     */
    message?: string
  }
  routing?: {
    policy?: RoutingPolicy
    middleware?: RoutingMiddleware[]
    /**
     * Lets trusted devtools peers skip policy and middleware with `route.bypass: true`.
     * @default true
     */
    allowBypass?: boolean
    /** Tokens that authenticate a peer as trusted devtools (they also authenticate as usual). */
    devtoolsTokens?: string[]
  }
  limits?: {
    /**
     * Largest inbound frame; larger ones close the peer with 1009/4009.
     * @default env `MAX_PAYLOAD_BYTES`, else 1 MiB
     */
    maxPayloadBytes?: number
    /**
     * Outbound bytes a peer may leave unread; past this it is a slow consumer, closed with
     * 1013 and de-announced, so one stuck reader never grows the hub's memory or slows others.
     * @default env `MAX_BUFFERED_BYTES`, else 4 MiB
     */
    maxBufferedBytes?: number
  }
  logger?: {
    /** @default env `LOG_LEVEL`, else 'log' */
    level?: LogLevel
    /** @default env `LOG_FORMAT`, else 'pretty' */
    format?: LogFormat
  }
  /** Receives every error the hub handles itself instead of crashing. @default logs it */
  onError?: (error: unknown, context: { stage: ErrorStage, peerId?: string }) => void
  /** Where environment variables are read from. @default process.env */
  env?: Env
}

export interface ResolvedHubOptions {
  instanceId: string
  auth: { tokens: string[], timeoutMs: number, maxFailures: number }
  heartbeat: { readTimeout: number, message: string }
  routing: { policy?: RoutingPolicy, middleware: RoutingMiddleware[], allowBypass: boolean, devtoolsTokens: string[] }
  limits: { maxPayloadBytes: number, maxBufferedBytes: number }
  logger: ConsolaInstance
  onError: (error: unknown, context: { stage: ErrorStage, peerId?: string }) => void
}

export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 60_000
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
export const DEFAULT_MAX_BUFFERED_BYTES = 4 * 1024 * 1024
export const DEFAULT_AUTH_TIMEOUT_MS = 30_000
export const DEFAULT_AUTH_MAX_FAILURES = 3
export const DEFAULT_PORT = 6121
export const DEFAULT_HOST = '127.0.0.1'
const LOG_LEVELS: readonly LogLevel[] = ['silent', 'error', 'warn', 'log', 'info', 'debug', 'trace']
const LOG_FORMATS: readonly LogFormat[] = ['pretty', 'json']

function invalid(name: string, value: unknown, expected: string): never {
  throw new HubError('invalid_option', `Invalid ${name}: ${JSON.stringify(value)} (expected ${expected})`)
}

/** An explicit option wins; else the env variable, parsed strictly; else the default. */
function positiveInt(name: string, explicit: number | undefined, raw: string | undefined, fallback: number, min = 1): number {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < min)
      invalid(name, explicit, `an integer >= ${min}`)
    return explicit
  }
  if (raw === undefined || raw === '')
    return fallback
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min)
    invalid(name, raw, `an integer >= ${min}`)
  return Number(raw)
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined || value === '')
    return fallback
  if (!allowed.includes(value as T))
    invalid(name, value, allowed.join(' | '))
  return value as T
}

function tokensOf(token: string | string[] | undefined, raw: string | undefined): string[] {
  const tokens = token === undefined ? (raw ? [raw] : []) : [token].flat()
  return tokens.filter(t => t !== '')
}

/** Resolves hub options once: explicit options, then env, then defaults. Throws `HubError('invalid_option')`. */
export function resolveHubOptions(options: HubOptions = {}): ResolvedHubOptions {
  const env = options.env ?? process.env
  const logger = createLogger({
    level: oneOf('LOG_LEVEL', options.logger?.level ?? env.LOG_LEVEL, LOG_LEVELS, 'log'),
    format: oneOf('LOG_FORMAT', options.logger?.format ?? env.LOG_FORMAT, LOG_FORMATS, 'pretty'),
  })
  return {
    instanceId: options.instanceId || env.SERVER_INSTANCE_ID || nanoid(),
    auth: {
      tokens: tokensOf(options.auth?.token, env.AUTHENTICATION_TOKEN),
      timeoutMs: positiveInt('auth.timeoutMs', options.auth?.timeoutMs, undefined, DEFAULT_AUTH_TIMEOUT_MS, 0),
      maxFailures: positiveInt('auth.maxFailures', options.auth?.maxFailures, undefined, DEFAULT_AUTH_MAX_FAILURES),
    },
    heartbeat: {
      readTimeout: positiveInt('HEARTBEAT_TIMEOUT_MS', options.heartbeat?.readTimeout, env.HEARTBEAT_TIMEOUT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS),
      message: options.heartbeat?.message ?? '💛',
    },
    routing: {
      policy: options.routing?.policy,
      middleware: options.routing?.middleware ?? [],
      allowBypass: options.routing?.allowBypass ?? true,
      devtoolsTokens: options.routing?.devtoolsTokens ?? [],
    },
    limits: {
      maxPayloadBytes: positiveInt('MAX_PAYLOAD_BYTES', options.limits?.maxPayloadBytes, env.MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_BYTES),
      maxBufferedBytes: positiveInt('MAX_BUFFERED_BYTES', options.limits?.maxBufferedBytes, env.MAX_BUFFERED_BYTES, DEFAULT_MAX_BUFFERED_BYTES),
    },
    logger,
    onError: options.onError ?? ((error, { stage, peerId }) => logger.error(`[${stage}]${peerId ? ` peer ${peerId}:` : ''}`, error)),
  }
}

export interface ListenOptions {
  /** @default env `PORT`, else 6121 */
  port?: number
  /** @default env `HOST`, else 127.0.0.1 */
  host?: string
  env?: Env
}

export function resolveListenOptions(options: ListenOptions = {}): { port: number, host: string } {
  const env = options.env ?? process.env
  return {
    port: positiveInt('PORT', options.port, env.PORT, DEFAULT_PORT, 0),
    host: options.host || env.HOST || DEFAULT_HOST,
  }
}
