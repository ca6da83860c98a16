import type { Identity } from '../types.ts'
import type { Registry } from './registry.ts'
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers'
import * as v from 'valibot'
import { HubError } from '../errors.ts'
import { createTokenVerifier } from './auth.ts'

/** A module the hub knows by name (the `modules` option). */
export interface KnownModule {
  /** The module name it announces (AIRI `module:announce {name}`, Phoenix `<prefix>:<name>`). */
  name: string
  /**
   * Its own credential: only a peer that authenticated with it may announce this name, and
   * such a peer may announce nothing else. The shared token never admits this name.
   */
  token?: string
  /** It gates readiness: `/readyz` is 503 and `hub.ready()` waits until it is announced (on any node). */
  required?: boolean
  /** Sent to it as `module:configure {config: options}` after each announce (and in a Phoenix join reply). */
  options?: Record<string, unknown>
  /** Merged into its announced identity's labels, over what it announced. */
  labels?: Record<string, string>
}

const NonEmpty = v.pipe(v.string('a string'), v.minLength(1, 'a non-empty string'))
const KnownModuleSchema = v.strictObject({
  name: NonEmpty,
  token: v.optional(NonEmpty),
  required: v.optional(v.boolean('true | false')),
  options: v.optional(v.record(v.string(), v.unknown(), 'an object')),
  labels: v.optional(v.record(v.string(), v.string('a string'), 'an object of strings')),
}, 'an object { name, token?, required?, options?, labels? }')
const KnownModulesSchema = v.array(KnownModuleSchema, 'an array of modules')

function fieldOf(issue: v.BaseIssue<unknown>): string {
  return `modules${(issue.path ?? []).map(item => typeof item.key === 'number' ? `[${item.key}]` : `.${String(item.key)}`).join('')}`
}

function invalidModules(field: string, value: unknown, expected: string): HubError {
  return new HubError('invalid_option', `Invalid ${field}: ${JSON.stringify(value)} (expected ${expected})`)
}

/**
 * Checks the `modules` option: shapes, and that a name and a token each belong to one module
 * (a token of two modules, or also the shared one, would not say which name it admits).
 * Throws `HubError('invalid_option')` naming the field.
 */
export function resolveKnownModules(input: unknown, sharedTokens: readonly string[]): readonly KnownModule[] {
  const parsed = v.safeParse(KnownModulesSchema, input ?? [])
  if (!parsed.success) {
    const issue = parsed.issues[0]
    throw invalidModules(fieldOf(issue), issue.input, issue.message)
  }
  const names = new Set<string>()
  const tokens = new Set(sharedTokens)
  parsed.output.forEach(({ name, token }, i) => {
    if (names.has(name))
      throw invalidModules(`modules[${i}].name`, name, 'a name no other module has')
    names.add(name)
    if (token !== undefined && tokens.has(token))
      throw invalidModules(`modules[${i}].token`, '<redacted>', 'a token no other module nor auth.token has')
    if (token !== undefined)
      tokens.add(token)
  })
  return parsed.output
}

export interface ModuleCatalogOptions {
  modules: readonly KnownModule[]
  registry: Registry
  /** How long `ready()` waits for the required modules. */
  requiredTimeoutMs: number
}

/** What the hub asks of its known modules; sessions are keyed by identity only. */
export interface ModuleCatalog {
  /** Every module token, for the hub's token check (a module token authenticates like the shared one). */
  readonly tokens: readonly string[]
  /** The peer authenticated with `token`: it is bound to that token's module, or to none (no token: unchanged). */
  bind: (peer: object, token: unknown) => void
  /**
   * Binds a peer that brings no token to module `name` alone (a gateway's keyless admission),
   * so it may announce nothing else; false, and nothing bound, when `name` has a token of its own.
   */
  restrict: (peer: object, name: string) => boolean
  /** Why the peer may not announce `name`: a protected name without its token, or another name with one. */
  refusal: (peer: object, name: string) => HubError | undefined
  /** The identity with the configured labels of `name` merged over its own. */
  labelled: (name: string, identity: Identity) => Identity
  /** The configured options of `name`, if any. */
  optionsOf: (name: string) => Record<string, unknown> | undefined
  /** The `modules` readiness check, when some module is required (so `/readyz` says why it is 503). */
  readonly readiness: ReadonlyArray<readonly [string, () => boolean]>
  /** Required modules not announced on any node, in configuration order. */
  missing: () => string[]
  /** Resolves once no required module is missing; rejects after `requiredTimeoutMs` naming those still missing. */
  ready: () => Promise<void>
}

/** How often `ready()` looks at the registry's revision while it waits (the registry emits no change events). */
const READY_CHECK_MS = 25

export function createModuleCatalog({ modules, registry, requiredTimeoutMs }: ModuleCatalogOptions): ModuleCatalog {
  const byName = new Map(modules.map(module => [module.name, module]))
  const protectedNames = modules.filter(module => module.token !== undefined)
  // One verifier per token: the check stays constant-time, and says which module it admits.
  const verifiers = protectedNames.map(module => ({ name: module.name, verify: createTokenVerifier([module.token!]) }))
  const required = modules.filter(module => module.required).map(module => module.name)
  const bound = new WeakMap<object, string>()

  const missing = (): string[] => required.filter(name => registry.find(name) === undefined)

  return {
    tokens: protectedNames.map(module => module.token!),
    bind(peer, token) {
      // A peer that presents no token keeps the binding it has (an AIRI client that was given
      // its token at the upgrade may still send `module:authenticate` without one).
      if (token === undefined)
        return
      // Every verifier runs, so the time taken does not tell which module a token belongs to.
      let name: string | undefined
      for (const verifier of verifiers) {
        if (verifier.verify(token))
          name = verifier.name
      }
      if (name === undefined)
        bound.delete(peer)
      else
        bound.set(peer, name)
    },
    restrict(peer, name) {
      if (byName.get(name)?.token !== undefined)
        return false
      bound.set(peer, name)
      return true
    },
    refusal(peer, name) {
      const own = bound.get(peer)
      if (own === undefined ? byName.get(name)?.token === undefined : own === name)
        return undefined
      return new HubError('module_forbidden', `token not valid for module ${name}`)
    },
    labelled(name, identity) {
      const labels = byName.get(name)?.labels
      return labels ? { ...identity, labels: { ...identity.labels, ...labels } } : identity
    },
    readiness: required.length > 0 ? [['modules', () => missing().length === 0]] : [],
    optionsOf: name => byName.get(name)?.options,
    missing,
    ready() {
      if (missing().length === 0)
        return Promise.resolve()
      return new Promise((resolve, reject) => {
        let revision = registry.revision
        const check = setInterval(() => {
          if (registry.revision === revision)
            return
          revision = registry.revision
          if (missing().length === 0)
            done(resolve)
        }, READY_CHECK_MS).unref()
        const timeout = setTimeout(() => done(() => reject(new HubError('module_not_found', `required modules missing after ${requiredTimeoutMs} ms: ${missing().join(', ')}`))), requiredTimeoutMs).unref()
        function done(settle: () => void): void {
          clearInterval(check)
          clearTimeout(timeout)
          settle()
        }
      })
    },
  }
}
