import type { Destination, Identity, ModuleEntry, PeerInfo, RouteExpression } from '../types.ts'

/**
 * Whether a destination names `peer` by one of its modules (`entry`), or, for a peer without
 * modules, by the identity of its own (AIRI `extension:authenticate`) or its id and aliases alone.
 */
export type TargetPredicate = (peer: PeerInfo, entry?: ModuleEntry) => boolean

export type LabelSelector
  = | { op: 'has' | 'absent', key: string }
    | { op: 'eq' | 'ne', key: string, value: string }

/** Registry indexes a destination can be answered from without a scan. */
export type IndexName = 'plugin' | 'instance' | 'module'

/** How the router finds the recipients of one destination. */
export type Lookup
  = | { by: 'all' }
    | { by: 'peer', id: string }
    | { by: 'index', keys: ReadonlyArray<readonly [IndexName, string]> }
    | { by: 'label', key: string, value: string }
    /** Every module and every peer without modules is tested. */
    | { by: 'scan', test: TargetPredicate }

/** `key`, `!key`, `key=value` (split on the first `=`), `key!=value`; keys and values trimmed (`" env = prod "` is `env=prod`). */
export function parseLabelSelector(input: string): LabelSelector {
  const selector = input.trim()
  if (selector.startsWith('!'))
    return { op: 'absent', key: selector.slice(1).trim() }
  const eq = selector.indexOf('=')
  if (eq === -1)
    return { op: 'has', key: selector }
  const value = selector.slice(eq + 1).trim()
  if (eq > 0 && selector[eq - 1] === '!')
    return { op: 'ne', key: selector.slice(0, eq - 1).trim(), value }
  return { op: 'eq', key: selector.slice(0, eq).trim(), value }
}

/** Kubernetes semantics: `key!=value` also matches modules without the key. */
export function matchesLabel(labels: Record<string, string>, selector: LabelSelector): boolean {
  const has = Object.hasOwn(labels, selector.key)
  switch (selector.op) {
    case 'has': return has
    case 'absent': return !has
    case 'eq': return has && labels[selector.key] === selector.value
    case 'ne': return !has || labels[selector.key] !== selector.value
  }
}

export function isLiteralGlob(glob: string): boolean {
  return !glob.includes('*') && !glob.includes('?')
}

// A value holding surrogate pairs is matched by code points, so that `?` is one character.
const SURROGATE = /[\uD800-\uDFFF]/

type Units = ArrayLike<string>

const unitsOf = (value: string): Units => SURROGATE.test(value) ? Array.from(value) : value

/** Whether `segment` (code points, `?` any one) matches `value` at `at`. */
function matchesAt(segment: readonly string[], value: Units, at: number): boolean {
  for (let i = 0; i < segment.length; i++) {
    if (segment[i] !== '?' && segment[i] !== value[at + i])
      return false
  }
  return true
}

/**
 * `*` any run, `?` one character, everything else literal; anchored. No regular expression:
 * the glob is split at its stars, the first and last pieces must sit at the ends, and each
 * piece between is found leftmost after the one before (greedy leftmost is exact for globs).
 * A piece without `?` is found with `indexOf` (linear in practice); one with `?` is tried at
 * each position, at worst O(piece × value): never the exponential backtracking of a regexp.
 */
export function compileGlob(glob: string): (value: string) => boolean {
  if (isLiteralGlob(glob))
    return value => value === glob
  const pieces = glob.split('*').map(piece => ({ text: piece, units: Array.from(piece), literal: !piece.includes('?') }))
  const first = pieces[0]!
  if (pieces.length === 1) {
    return (input) => {
      const value = unitsOf(input)
      return value.length === first.units.length && matchesAt(first.units, value, 0)
    }
  }
  const last = pieces.at(-1)!
  const middle = pieces.slice(1, -1).filter(piece => piece.units.length > 0)
  return (input) => {
    const value = unitsOf(input)
    const end = value.length - last.units.length
    if (end < first.units.length || !matchesAt(first.units, value, 0) || !matchesAt(last.units, value, end))
      return false
    let at = first.units.length
    for (const piece of middle) {
      const limit = end - piece.units.length
      if (piece.literal && typeof value === 'string') {
        at = value.indexOf(piece.text, at)
        if (at === -1 || at > limit)
          return false
      }
      else {
        while (at <= limit && !matchesAt(piece.units, value, at))
          at++
        if (at > limit)
          return false
      }
      at += piece.units.length
    }
    return true
  }
}

type IdentityTest = (identity: Identity, name?: string) => boolean

/** A leaf on what the target is called: false for a peer without modules or an identity of its own, before `inverted`. */
function leaf(test: IdentityTest, inverted: boolean | undefined): TargetPredicate {
  const named: TargetPredicate = (peer, entry) => {
    const identity = (entry ?? peer).identity
    return identity !== undefined && test(identity, entry?.name)
  }
  return inverted ? (peer, entry) => !named(peer, entry) : named
}

/** Whether any of `ids` is the peer's id, one of its aliases, or the instance id of the module. */
function idsLeaf(ids: ReadonlySet<string>, inverted: boolean | undefined): TargetPredicate {
  const named: TargetPredicate = (peer, entry) => {
    const instanceId = (entry ?? peer).identity?.instanceId
    if (ids.has(peer.id) || (instanceId !== undefined && ids.has(instanceId)))
      return true
    for (const alias of peer.aliases ?? []) {
      if (ids.has(alias))
        return true
    }
    return false
  }
  return inverted ? (peer, entry) => !named(peer, entry) : named
}

/** Compiles a routing expression once into a predicate over peers and their modules. */
export function compileExpression(expression: RouteExpression): TargetPredicate {
  switch (expression.type) {
    case 'and': {
      const parts = expression.all.map(compileExpression)
      return (peer, entry) => parts.every(part => part(peer, entry))
    }
    case 'or': {
      const parts = expression.any.map(compileExpression)
      return (peer, entry) => parts.some(part => part(peer, entry))
    }
    case 'glob': {
      const test = compileGlob(expression.glob)
      return leaf((identity, name) => (name !== undefined && test(name)) || test(identity.pluginId) || test(identity.instanceId), expression.inverted)
    }
    case 'ids':
      return idsLeaf(new Set(expression.ids), expression.inverted)
    case 'plugin': {
      const plugins = new Set(expression.plugins)
      return leaf(identity => plugins.has(identity.pluginId), expression.inverted)
    }
    case 'instance': {
      const instances = new Set(expression.instances)
      return leaf(identity => instances.has(identity.instanceId), expression.inverted)
    }
    case 'label': {
      const selectors = expression.selectors.map(parseLabelSelector)
      return leaf(identity => selectors.every(s => matchesLabel(identity.labels, s)), expression.inverted)
    }
    case 'module': {
      const modules = new Set(expression.modules)
      return leaf((_, name) => name !== undefined && modules.has(name), expression.inverted)
    }
    case 'source': {
      const sources = new Set(expression.sources)
      return leaf((identity, name) => (name !== undefined && sources.has(name)) || sources.has(identity.pluginId), expression.inverted)
    }
  }
}

function compileLabelLookup(selector: LabelSelector): Lookup {
  if (selector.op === 'eq')
    return { by: 'label', key: selector.key, value: selector.value }
  return { by: 'scan', test: leaf(identity => matchesLabel(identity.labels, selector), false) }
}

function compileString(destination: string): Lookup {
  if (destination === '*')
    return { by: 'all' }
  const colon = destination.indexOf(':')
  const prefix = colon === -1 ? '' : destination.slice(0, colon)
  const value = destination.slice(colon + 1)
  switch (prefix) {
    case 'plugin': return { by: 'index', keys: [['plugin', value]] }
    case 'instance': return { by: 'index', keys: [['instance', value]] }
    case 'module': return { by: 'index', keys: [['module', value]] }
    case 'source': return { by: 'index', keys: [['module', value], ['plugin', value]] }
    case 'peer': return { by: 'peer', id: value }
    case 'label': return compileLabelLookup(parseLabelSelector(value))
  }
  if (isLiteralGlob(destination))
    return { by: 'index', keys: [['module', destination], ['plugin', destination], ['instance', destination]] }
  return { by: 'scan', test: compileExpression({ type: 'glob', glob: destination }) }
}

// Destination strings repeat from event to event: compile each once. Bounded so that
// hostile senders can't grow it without limit.
const STRING_CACHE_LIMIT = 4096
const stringCache = new Map<string, Lookup>()

/** Compiles one destination into the cheapest way to find its recipients. */
export function compileDestination(destination: Destination): Lookup {
  if (typeof destination !== 'string')
    return { by: 'scan', test: compileExpression(destination) }
  let lookup = stringCache.get(destination)
  if (!lookup) {
    if (stringCache.size >= STRING_CACHE_LIMIT)
      stringCache.clear()
    lookup = compileString(destination)
    stringCache.set(destination, lookup)
  }
  return lookup
}
