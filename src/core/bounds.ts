import type { Identity } from '../types.ts'

/**
 * What one frame may cost. Every check here walks with an explicit stack and stops at the
 * first bound broken, so it runs before anything recursive (schema validation, superjson,
 * compiling routes, encoding for recipients) and a hostile frame costs at most its own size.
 */
export interface ShapeLimits {
  maxPayloadBytes: number
  maxNameLength: number
  maxLabels: number
  maxDestinations: number
  maxExpressionDepth: number
  maxRouteItems: number
  maxDataDepth: number
}

/** Keys that would reach an object's prototype if anything ever assigned through them. */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/** The list field of each expression leaf. */
const LEAF_LISTS: Record<string, string> = {
  ids: 'ids',
  plugin: 'plugins',
  instance: 'instances',
  label: 'selectors',
  module: 'modules',
  source: 'sources',
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * Checks that a value nests at most `maxDepth` objects or arrays deep and is, fully expanded,
 * about the size of a frame: strings and keys count their length, other values 1, so plain
 * JSON never counts more than its own text. superjson references can share an object or close
 * a cycle: a cycle is infinitely deep and sharing counts once per reference, so neither gets
 * past this. With `strictKeys`, prototype keys are refused too (superjson cannot encode them).
 * Returns what was exceeded, or undefined.
 */
export function checkData(value: unknown, maxDepth: number, maxSize: number, strictKeys = false): 'nesting depth' | 'data size' | 'prototype key' | undefined {
  const values: unknown[] = [value]
  const depths: number[] = [0]
  let size = 1
  while (values.length > 0) {
    const current = values.pop()
    const depth = depths.pop()!
    if (typeof current !== 'object' || current === null)
      continue
    if (depth >= maxDepth)
      return 'nesting depth'
    const push = (child: unknown): void => {
      values.push(child)
      depths.push(depth + 1)
      size += typeof child === 'string' ? child.length + 2 : 1
    }
    if (Array.isArray(current)) {
      for (const child of current)
        push(child)
    }
    else if (current instanceof Map) {
      for (const [key, child] of current) {
        push(key)
        push(child)
      }
    }
    else if (current instanceof Set) {
      for (const child of current)
        push(child)
    }
    else if (isPlainObject(current)) {
      for (const key of Object.keys(current)) {
        if (strictKeys && PROTOTYPE_KEYS.has(key))
          return 'prototype key'
        size += key.length + 3
        push(current[key])
      }
    }
    // Anything else (Date, RegExp, Error, URL, …) is a leaf.
    if (size > maxSize)
      return 'data size'
  }
  return undefined
}

/**
 * Bounds the routing work one event asks for: the number of destinations, how deep `and`/`or`
 * nest, and the route items (expression nodes and list entries count 1, globs their length,
 * since each is matched against every module). Shapes it does not know are left to the schema.
 */
export function checkRoute(destinations: unknown, limits: ShapeLimits): 'destinations' | 'destination length' | 'expression depth' | 'route items' | undefined {
  if (!Array.isArray(destinations))
    return undefined
  if (destinations.length > limits.maxDestinations)
    return 'destinations'
  const nodes: unknown[] = [...destinations]
  const depths: number[] = destinations.map(() => 1)
  let items = destinations.length
  const tooLong = (value: unknown): boolean => typeof value === 'string' && value.length > limits.maxNameLength
  const globCost = (value: string): number => value.includes('*') || value.includes('?') ? value.length : 0
  while (nodes.length > 0) {
    const node = nodes.pop()
    const depth = depths.pop()!
    if (typeof node === 'string') {
      if (tooLong(node))
        return 'destination length'
      items += globCost(node)
    }
    else if (typeof node === 'object' && node !== null) {
      const { type } = node as { type?: unknown }
      const children = type === 'and' ? (node as { all?: unknown }).all : type === 'or' ? (node as { any?: unknown }).any : undefined
      if (Array.isArray(children)) {
        if (children.length > 0 && depth >= limits.maxExpressionDepth)
          return 'expression depth'
        items += children.length
        if (items > limits.maxRouteItems)
          return 'route items'
        for (const child of children) {
          nodes.push(child)
          depths.push(depth + 1)
        }
      }
      const { glob } = node as { glob?: unknown }
      if (type === 'glob' && typeof glob === 'string') {
        if (tooLong(glob))
          return 'destination length'
        items += globCost(glob)
      }
      const list = typeof type === 'string' && Object.hasOwn(LEAF_LISTS, type) ? (node as Record<string, unknown>)[LEAF_LISTS[type]!] : undefined
      if (Array.isArray(list)) {
        items += list.length
        if (items <= limits.maxRouteItems && list.some(tooLong))
          return 'destination length'
      }
    }
    if (items > limits.maxRouteItems)
      return 'route items'
  }
  return undefined
}

const destinationsOf = (value: unknown): unknown => typeof value === 'object' && value !== null ? (value as { destinations?: unknown }).destinations : undefined

/** An event's id and parentId: held while its request is pending and remembered after, so bounded like a name. */
export function checkEventIds(event: unknown, limits: ShapeLimits): 'event id' | undefined {
  const ids = (event as { metadata?: { event?: { id?: unknown, parentId?: unknown } } } | null)?.metadata?.event
  if ([ids?.id, ids?.parentId].some(id => typeof id === 'string' && id.length > limits.maxNameLength))
    return 'event id'
}

/** `checkRoute` of both places an event's destinations may ride in (`route`, `data`). */
export function checkRoutes(event: unknown, limits: ShapeLimits): ReturnType<typeof checkRoute> {
  if (typeof event !== 'object' || event === null)
    return undefined
  const { route, data } = event as { route?: unknown, data?: unknown }
  return checkRoute(destinationsOf(route), limits) ?? checkRoute(destinationsOf(data), limits)
}

/** Bounds an announced module: its name, identity strings and labels. */
function checkLabels(labels: Record<string, string> | undefined, limits: ShapeLimits): boolean {
  const entries = Object.entries(labels ?? {})
  return entries.length <= limits.maxLabels && entries.every(([key, value]) => key.length <= limits.maxNameLength && value.length <= limits.maxNameLength)
}

/** Whether a module's name and identity (as normalised, and as announced) are within the bounds. */
export function checkAnnouncement(name: string, identity: Identity, limits: ShapeLimits): 'module name' | 'identity' | 'labels' | undefined {
  const { maxNameLength } = limits
  if (name.length > maxNameLength)
    return 'module name'
  if (identity.pluginId.length > maxNameLength || identity.instanceId.length > maxNameLength || (identity.version?.length ?? 0) > maxNameLength)
    return 'identity'
  // The announced shape keeps plugin and instance labels apart: each side is held to the bound.
  const announced = identity.announced
  const owner = announced && ('extension' in announced ? announced.extension : announced.plugin)
  if (!checkLabels(identity.labels, limits) || !checkLabels(announced?.labels, limits) || !checkLabels(owner?.labels, limits))
    return 'labels'
  return undefined
}
