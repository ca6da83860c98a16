import type { Env, EnvOption } from '../env-options.ts'
import type { Hub } from '../hub.ts'
import { invalid } from '../env-options.ts'

// Modules a gateway admits without a key, by name (Atomemo plugins in release mode send none).
// Safe because the operator lists each name for one path; a listed name is one module across
// the hub (an impostor cannot join beside it, and the real module fails loudly if one did
// first); a name the catalog gives its own token always needs it; everything else is refused.

/** Atomemo's release topic name: `<plugin>__release__<version>`. */
const RELEASE_NAME = '__release__'

/**
 * `explicit` (path → names), else the env variable's `/path:a,b;/other:c`: every path one of
 * `paths`, every list of non-empty names. Throws `HubError('invalid_option')`.
 */
export function keylessOf(setting: EnvOption, explicit: Record<string, string[]> | undefined, paths: readonly string[], env: Env): Map<string, Set<string>> {
  const groups = explicit ?? Object.fromEntries((env[setting.env] ?? '').split(';').map(group => group.trim()).filter(group => group !== '').map((group) => {
    const colon = group.indexOf(':')
    return [colon === -1 ? group : group.slice(0, colon), colon === -1 ? [] : group.slice(colon + 1).split(',').map(name => name.trim())]
  }))
  const option = setting.option!
  const keyless = new Map<string, Set<string>>()
  for (const [path, names] of Object.entries(groups)) {
    if (!paths.includes(path))
      invalid(explicit ? option : setting, path, `one of the paths (${paths.join(', ')})`)
    if (!Array.isArray(names) || names.length === 0 || names.some(name => typeof name !== 'string' || name === ''))
      invalid(explicit ? `${option}.${path}` : setting, names, 'a list of module names')
    keyless.set(path, new Set(names))
  }
  return keyless
}

/** The listed entry that admits module `name`: itself, or for `<entry>__release__<version>`, its entry. */
function keylessEntryOf(names: ReadonlySet<string>, name: string): string | undefined {
  if (names.has(name))
    return name
  const at = name.lastIndexOf(RELEASE_NAME)
  const entry = name.slice(0, at)
  return at > 0 && at + RELEASE_NAME.length < name.length && names.has(entry) ? entry : undefined
}

/**
 * Why a socket without a key on `path` may not open module `name`: not listed there, a name
 * with a token of its own (that module must present it), or a listed entry some module on any
 * node holds already (versions included). The registry scan is bounded by the gateway: refused
 * joins close the socket after `auth.maxFailures`, admitted ones are one per listed name.
 */
export function keylessRefusal(hub: Hub, path: string, names: ReadonlySet<string>, name: string): string | undefined {
  const entry = keylessEntryOf(names, name)
  if (entry === undefined)
    return `${name} is not admitted without a key on ${path}`
  // A peer bound to no module: refused exactly the names with a token of their own.
  if (hub.catalog.refusal({}, name))
    return `${name} has a token of its own`
  for (const module of hub.registry.entries()) {
    if (keylessEntryOf(names, module.name) === entry)
      return `${entry} is connected already (as ${module.name})`
  }
}
