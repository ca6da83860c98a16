import type { Hub } from '../hub.ts'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

export interface Metrics {
  /** The Prometheus text exposition of this hub's metrics. */
  render: () => Promise<string>
  readonly contentType: string
}

/** Longer type names are labelled `other`: a label is kept for good, so it must stay small. */
const MAX_TYPE_LABEL_LENGTH = 64

/**
 * Bounds the `type` label: built-in types, then the first `max` other types seen from
 * authenticated peers; every later, longer or unauthenticated type is `other`, so no client
 * can grow the series without limit or take the names before anyone has logged in.
 */
function createTypeLabeler(max: number, builtIn: readonly string[] = []): (type: string, authenticated?: boolean) => string {
  const known = new Set(builtIn)
  let others = 0
  return (type, authenticated = true) => {
    if (known.has(type))
      return type
    if (others >= max || !authenticated || type.length > MAX_TYPE_LABEL_LENGTH)
      return 'other'
    others++
    known.add(type)
    return type
  }
}

/**
 * Prometheus metrics of one hub, in a registry of their own, fed by the hub's observers. The
 * event types the gateways speak themselves (`builtInTypes`) are labelled by name, then the
 * first `maxEventTypes` others (and consumer groups); the rest as `other`.
 */
export function createMetrics(hub: Hub, maxEventTypes: number, builtInTypes: readonly string[] = []): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const label = createTypeLabeler(maxEventTypes, builtInTypes)
  const groupLabel = createTypeLabeler(maxEventTypes)

  // Gauges are read from the hub on each scrape.
  const gauge = (name: string, help: string, read: () => number): Gauge => new Gauge({
    name,
    help,
    registers,
    collect() {
      this.set(read())
    },
  })
  gauge('hub_peers_connected', 'Connected peers (any protocol, authenticated or not)', () => hub.peers.size)
  gauge('hub_modules_announced', 'Modules in the registry', () => hub.registry.size)
  gauge('hub_required_modules_missing', 'Required modules (the modules option) announced on no node: /readyz is 503 while above 0', () => hub.catalog.missing().length)
  gauge('hub_requests_pending', 'Requests (route.reply) of this node\'s peers waiting for their reply', () => hub.requests.pending)
  gauge('hub_sockets_open', 'Open WebSockets (any protocol; a Phoenix socket counts once, whatever its channels)', () => hub.admission.sockets)
  const received = new Counter({ name: 'hub_events_received_total', help: 'Events received from peers, by type', labelNames: ['type'], registers })
  const delivered = new Counter({ name: 'hub_events_delivered_total', help: 'Routed event deliveries to peers, by type', labelNames: ['type'], registers })
  const errors = new Counter({ name: 'hub_errors_total', help: 'Errors sent to peers (by code) or handled by the hub (by stage)', labelNames: ['reason'], registers })
  const expired = new Counter({ name: 'hub_heartbeat_expired_total', help: 'Peers closed for silence (4000 heartbeat expired)', registers })
  const refused = new Counter({ name: 'hub_connections_refused_total', help: 'Upgrades refused by admission: max_peers (503), pending_per_address (429)', labelNames: ['reason'], registers })
  const rateLimited = new Counter({ name: 'hub_rate_limited_total', help: 'Frames dropped over a socket\'s rate limit (dropped), sockets closed for it (closed, 4029)', labelNames: ['action'], registers })
  const skipped = new Counter({ name: 'hub_registry_deltas_skipped_total', help: 'Registry deltas and syncs not sent to peers that fell behind (coalesced into one sync)', registers })
  const repaired = new Counter({ name: 'hub_registry_repairs_total', help: 'Full registry syncs sent to peers that fell behind, once their backlog drained', registers })
  const deltaSyncs = new Counter({ name: 'hub_registry_delta_syncs_total', help: 'First syncs of registry delta peers: only what changed since the revision they held (kind=delta), or the full registry (kind=full)', labelNames: ['kind'], registers })
  const consumerDeliveries = new Counter({ name: 'hub_consumer_deliveries_total', help: 'Consumer deliveries (route.delivery, input:* defaults) by event, group and outcome: delivered, or missed (no candidate)', labelNames: ['event', 'group', 'outcome'], registers })
  const requests = new Counter({ name: 'hub_requests_total', help: 'Requests (route.reply) of this node\'s peers by type and outcome: replied, timeout, no_responder, responder_gone', labelNames: ['type', 'outcome'], registers })
  const repliesDropped = new Counter({ name: 'hub_request_replies_dropped_total', help: 'Replies dropped by type: a second answer, one after the timeout, or one from a peer that is not the responder', labelNames: ['type'], registers })
  const routing = new Histogram({
    name: 'hub_routing_duration_seconds',
    help: 'Time to route one event: select recipients, policy, middleware, encode and send',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
    registers,
  })

  hub.observers.on('received', (type, authenticated) => received.inc({ type: label(type, authenticated) }))
  hub.observers.on('routed', (type, count, seconds) => {
    if (count > 0)
      delivered.inc({ type: label(type) }, count)
    routing.observe(seconds)
  })
  hub.observers.on('consumerDelivery', (event, group, outcome) => consumerDeliveries.inc({ event: label(event), group: groupLabel(group), outcome }))
  hub.observers.on('request', (type, outcome) => requests.inc({ type: label(type), outcome }))
  hub.observers.on('replyDropped', type => repliesDropped.inc({ type: label(type) }))
  hub.observers.on('error', reason => errors.inc({ reason }))
  hub.observers.on('heartbeatExpired', () => expired.inc())
  hub.observers.on('refused', reason => refused.inc({ reason }))
  hub.observers.on('rateLimited', action => rateLimited.inc({ action }))
  hub.observers.on('registryDeltasSkipped', count => skipped.inc(count))
  hub.observers.on('registryRepaired', count => repaired.inc(count))
  hub.observers.on('registryDeltaSync', (kind, count) => deltaSyncs.inc({ kind }, count))

  return { render: () => registry.metrics(), contentType: registry.contentType }
}
