// The servers compared side by side: how to start each and which peers speak to it.
import { fileURLToPath } from 'node:url'
import { peerFactories } from './peers.mjs'

const here = path => fileURLToPath(new URL(path, import.meta.url))

export const TOKEN = 'bench-token'

// The bench measures the relay: every peer connects from 127.0.0.1 (past the default pending
// sockets per address) and senders go flat out (past the default rate limit), so both are off.
const HUB_ENV = { LOG_LEVEL: 'warn', MAX_PENDING_PER_ADDRESS: '0', RATE_LIMIT_EVENTS_PER_SEC: '0', RATE_LIMIT_BYTES_PER_SEC: '0' }

export const targets = {
  // Neither has requests with replies: the request scenario is the hub's alone.
  ws: { label: 'raw ws relay', script: here('../servers/ws-relay.mjs'), path: '/', peer: peerFactories.airi, scenarios: ['fanout', 'routed', 'slow'] },
  socketio: { label: 'Socket.IO 4.8', script: here('../servers/socketio.mjs'), path: '/', peer: peerFactories.socketio, scenarios: ['fanout', 'routed', 'slow'] },
  hub: { label: 'hub-server', script: here('../../bin/hub-server.mjs'), path: '/ws', peer: peerFactories.airi, env: HUB_ENV },
  // Two hub nodes over one redis-server; peers alternate between them, so every routed pair
  // and half of the fan-out receivers cross nodes. Run where the cross-node cost shows.
  hub2: { label: 'hub-server, 2 nodes (Redis)', script: here('../../bin/hub-server.mjs'), path: '/ws', peer: peerFactories.airi, env: HUB_ENV, nodes: 2, scenarios: ['fanout', 'routed', 'requests'], maxN: 500 },
}

/** Whether a target takes part in a scenario (at this size). */
export const runsIn = (target, scenario, n = 0) => (!target.scenarios || target.scenarios.includes(scenario)) && (!target.maxN || n <= target.maxN)

export function urlOf(target, port) {
  const scheme = target.peer === peerFactories.socketio ? 'http' : 'ws'
  return `${scheme}://127.0.0.1:${port}${target.path}`
}
