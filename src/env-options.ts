import { HubError } from './errors.ts'

export type Env = Record<string, string | undefined>

/** One setting of the `hub-server` command: its env variable, its flag and its help line. */
export interface EnvOption {
  env: string
  /** The `createServer()` option it sets (a dotted path), when it sets one: a config file's value gives way to it. */
  option?: string
  flag: string
  /** Placeholder of the flag's value in `--help`. */
  value: string
  /** The default, as `--help` and `.env.example` show it. */
  default: string
  description: string
}

/**
 * The env-configurable settings of one owner (hub, server, listener), keyed by variable; the
 * command line lists them all (`ENV_OPTIONS` in `cli.ts`).
 */
export function envOptions<K extends string>(spec: Record<K, Omit<EnvOption, 'env'>>): Record<K, EnvOption> {
  return Object.fromEntries(Object.entries<Omit<EnvOption, 'env'>>(spec).map(([env, option]) => [env, { env, ...option }])) as Record<K, EnvOption>
}

/** An env-configurable setting, or the path of an option that only code sets (e.g. `auth.timeoutMs`). */
export type Setting = EnvOption | string

const nameOf = (setting: Setting): string => typeof setting === 'string' ? setting : setting.env

/** The setting's raw env value; none for an option only code sets. */
export const envValue = (setting: Setting, env: Env): string | undefined => typeof setting === 'string' ? undefined : env[setting.env]

export function invalid(setting: Setting, value: unknown, expected: string): never {
  const flag = typeof setting === 'string' ? undefined : setting.flag
  throw new HubError('invalid_option', `Invalid ${nameOf(setting)}: ${JSON.stringify(value)} (expected ${expected}${flag ? `; flag --${flag}` : ''})`)
}

// Each parser: an explicit option wins; else the env variable, parsed strictly; else the default.

export function positiveInt(setting: Setting, explicit: number | undefined, env: Env, fallback: number, min = 1): number {
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < min)
      invalid(setting, explicit, `an integer >= ${min}`)
    return explicit
  }
  const raw = envValue(setting, env)
  if (raw === undefined || raw === '')
    return fallback
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min)
    invalid(setting, raw, `an integer >= ${min}`)
  return Number(raw)
}

export function oneOf<T extends string>(setting: Setting, explicit: T | undefined, env: Env, allowed: readonly T[], fallback: T): T {
  const value = explicit ?? envValue(setting, env)
  if (value === undefined || value === '')
    return fallback
  if (!allowed.includes(value as T))
    invalid(setting, value, allowed.join(' | '))
  return value as T
}

export function bool(setting: Setting, explicit: boolean | undefined, env: Env, fallback: boolean): boolean {
  if (explicit !== undefined)
    return explicit
  const raw = envValue(setting, env)
  if (raw === undefined || raw === '')
    return fallback
  if (!/^(?:true|false|1|0)$/.test(raw))
    invalid(setting, raw, 'true | false')
  return raw === 'true' || raw === '1'
}

/** The list's entries, each checked. */
export function listOf(setting: Setting, values: readonly string[], valid: (value: string) => boolean, expected: string): string[] {
  for (const value of values) {
    if (typeof value !== 'string' || !valid(value))
      invalid(setting, value, expected)
  }
  return [...values]
}

/** An explicit list wins; else the env variable's comma-separated entries (unchecked). */
export function commaList(setting: Setting, explicit: readonly string[] | undefined, env: Env): readonly unknown[] {
  return explicit ?? (envValue(setting, env) ?? '').split(',').map(entry => entry.trim()).filter(entry => entry !== '')
}
