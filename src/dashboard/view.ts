import type { Hub } from '../hub.ts'
import type { ModuleEntry } from '../types.ts'

/** One module as the page lists it. */
export interface ModuleRow {
  /** Stable key: node, peer, name and index. */
  k: string
  name: string
  index?: number
  plugin: string
  instance: string
  labels: Record<string, string>
  healthy: boolean
  /** When this node learned of it (ms since the epoch). */
  since?: number
  node: string
  peer: string
  protocol?: string
}

/** One hub node: its authenticated peers by protocol (gateway name), its pending sessions (this node only) and modules. */
export interface NodeRow {
  id: string
  self: boolean
  peers: Record<string, number>
  pending: number
  modules: number
}

export interface Topology {
  /** This node's id. */
  node: string
  nodes: NodeRow[]
  /** Required modules (the `modules` option) announced on no node. */
  missing: string[]
}

/** Module changes since the last batch. */
export interface ModuleChanges {
  upsert: ModuleRow[]
  remove: string[]
}

export interface TopologyView {
  /** The nodes and required modules now (O(peers)). */
  topology: () => Topology
  /** The module rows changed since the last call (O(modules)); the first call returns them all. */
  changes: () => ModuleChanges
  /** Every module row as of the last `changes()`: what a page joining now starts from. */
  rows: () => ModuleRow[]
  /** Forgets the rows (no page is open). */
  reset: () => void
}

const SELF = 'this node'
const UNKNOWN = 'unknown'

/**
 * A read-only view of the hub for the dashboard: nodes with their peers by protocol, and the
 * module table as rows, diffed so that pages get only what changed. It reads the hub's own
 * tables (registry, sessions, remote peers) when asked, and keeps nothing else.
 */
export function createTopologyView(hub: Hub): TopologyView {
  let sent = new Map<string, { row: ModuleRow, fingerprint: string }>()
  const self = (): string => hub.cluster?.nodeId ?? SELF

  function rowOf(entry: ModuleEntry, selfId: string): ModuleRow {
    const owner = entry.node === undefined ? hub.peers.get(entry.peerId) : hub.remotePeers.get(entry.peerId)
    const node = entry.node ?? selfId
    const row: ModuleRow = {
      k: `${node}\u0000${entry.peerId}\u0000${entry.name}\u0000${entry.index ?? ''}`,
      name: entry.name,
      plugin: entry.identity.pluginId,
      instance: entry.identity.instanceId,
      labels: entry.identity.labels,
      healthy: !owner?.unhealthy,
      since: hub.registry.since(entry),
      node,
      peer: entry.peerId,
      protocol: owner?.protocol,
    }
    if (entry.index !== undefined)
      row.index = entry.index
    return row
  }

  return {
    topology() {
      const id = self()
      const nodes = new Map<string, NodeRow>()
      const nodeRow = (node: string): NodeRow => {
        let row = nodes.get(node)
        if (!row)
          nodes.set(node, row = { id: node, self: node === id, peers: {}, pending: 0, modules: 0 })
        return row
      }
      const local = nodeRow(id)
      for (const node of hub.cluster?.nodes() ?? [])
        nodeRow(node)
      for (const session of hub.peers.values()) {
        if (!session.authenticated)
          local.pending++
        else
          local.peers[session.protocol ?? UNKNOWN] = (local.peers[session.protocol ?? UNKNOWN] ?? 0) + 1
      }
      for (const peer of hub.remotePeers.values()) {
        const row = nodeRow(peer.node)
        row.peers[peer.protocol ?? UNKNOWN] = (row.peers[peer.protocol ?? UNKNOWN] ?? 0) + 1
      }
      for (const entry of hub.registry.entries())
        nodeRow(entry.node ?? id).modules++
      return {
        node: id,
        nodes: [...nodes.values()],
        missing: hub.catalog.missing(),
      }
    },
    changes() {
      const id = self()
      const next = new Map<string, { row: ModuleRow, fingerprint: string }>()
      const upsert: ModuleRow[] = []
      for (const entry of hub.registry.entries()) {
        const row = rowOf(entry, id)
        const fingerprint = JSON.stringify(row)
        if (sent.get(row.k)?.fingerprint !== fingerprint)
          upsert.push(row)
        next.set(row.k, { row, fingerprint })
      }
      const remove = [...sent.keys()].filter(key => !next.has(key))
      sent = next
      return { upsert, remove }
    },
    rows: () => [...sent.values()].map(({ row }) => row),
    reset() {
      sent = new Map()
    },
  }
}
