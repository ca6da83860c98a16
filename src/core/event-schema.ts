import type { RouteExpression } from '../types.ts'
import * as v from 'valibot'

// Schemas of a routed event's parts as peers send them (data, route, consumer registrations):
// every gateway, and `hub.explain`, validate with these same ones.

const Strings = v.array(v.string())
const inverted = { inverted: v.optional(v.boolean()) }

/** A routing expression (`route.destinations` items that are not strings). */
const Expression: v.GenericSchema<RouteExpression> = v.variant('type', [
  v.object({ type: v.literal('and'), all: v.array(v.lazy(() => Expression)) }),
  v.object({ type: v.literal('or'), any: v.array(v.lazy(() => Expression)) }),
  v.object({ type: v.literal('glob'), glob: v.string(), ...inverted }),
  v.object({ type: v.literal('ids'), ids: Strings, ...inverted }),
  v.object({ type: v.literal('plugin'), plugins: Strings, ...inverted }),
  v.object({ type: v.literal('instance'), instances: Strings, ...inverted }),
  v.object({ type: v.literal('label'), selectors: Strings, ...inverted }),
  v.object({ type: v.literal('module'), modules: Strings, ...inverted }),
  v.object({ type: v.literal('source'), sources: Strings, ...inverted }),
]) as v.GenericSchema<RouteExpression>

export const Data = v.custom<Record<string, unknown>>(
  value => typeof value === 'object' && value !== null && !Array.isArray(value),
)

/** Consumer event and group names; the hub holds them to `limits.maxNameLength` as well. */
const ConsumerName = v.pipe(v.string(), v.minLength(1), v.maxLength(1024))
const ConsumerMode = v.picklist(['consumer', 'consumer-group'])

const Delivery = v.object({
  mode: v.optional(ConsumerMode),
  group: v.optional(ConsumerName),
  selection: v.optional(v.picklist(['first', 'priority', 'round-robin', 'sticky'])),
  stickyKey: v.optional(v.pipe(v.string(), v.maxLength(1024))),
  required: v.optional(v.boolean()),
})

/** `route.reply`: `true`, or `{timeoutMs}` (the Phoenix gateway takes the same as `payload.reply`). */
export const Reply = v.union([
  v.literal(true),
  v.object({ timeoutMs: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(1))) }),
])

/** `module:consumer:register` / `unregister` data (the Phoenix gateway takes the same). */
export const ConsumerRegistration = v.object({
  event: ConsumerName,
  mode: v.optional(ConsumerMode),
  group: v.optional(ConsumerName),
  priority: v.optional(v.pipe(v.number(), v.finite())),
})

/** Destinations, in `route.destinations` or `data.destinations`: valid in either place. */
export const DataDestinations = v.optional(v.array(v.union([v.string(), Expression])))

/** `route`: destinations, delivery, reply, ack, bypass; other fields are let through. */
export const Route = v.looseObject({
  destinations: DataDestinations,
  bypass: v.optional(v.boolean()),
  delivery: v.optional(Delivery),
  reply: v.optional(Reply),
  ack: v.optional(v.boolean()),
})
