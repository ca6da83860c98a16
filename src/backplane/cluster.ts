import type { ConsolaInstance } from 'consola'
import type { ErrorStage } from '../errors.ts'
import type { DeannounceReason } from '../hub.ts'
import type { HubEvent, ModuleEntry } from '../types.ts'
import type { Backplane, ClusterMessage, RemotePeerState } from './types.ts'
import { fromSuperjson, isPlainJson, markPlainJson, toSuperjson } from '../core/event.ts'
import { createTurnQueue } from '../core/turn.ts'

/** What the cluster asks of the hub core it serves. */
export interface ClusterPort {
  /** This node's own authenticated peers, with their modules. */
  localPeers: () => Iterable<RemotePeerState>
  /**
   * A peer of another node is authenticated, with this module or none; when it had another,
   * that one left for `reason`.
   */
  upsert: (node: string, peer: RemotePeerState, reason: DeannounceReason) => void
  /** A peer of another node is gone (its module, if any, left for `reason`). */
  remove: (id: string, reason: DeannounceReason) => void
  /** A module of another node went silent (`healthy: false`) or came back. */
  health: (id: string, healthy: boolean) => void
  /** Delivers an event routed on another node to some of this node's peers. */
  deliver: (event: HubEvent, peerIds: readonly string[]) => void
}

export interface ClusterOptions {
  backplane: Backplane
  /** Unique per process start, so a restarted node never inherits a dead one's entries. */
  nodeId: string
  /** Prefix of every channel, so several clusters may share one Redis. */
  prefix: string
  /** How often this node says it is alive (and how often it checks the others). */
  heartbeatMs: number
  /** A node not heard from for this long is gone: its modules are de-announced. */
  nodeTimeoutMs: number
  port: ClusterPort
  logger: ConsolaInstance
  onError: (error: unknown, context: { stage: ErrorStage }) => void
}

export interface Cluster {
  readonly nodeId: string
  /** Joined, and the backplane is connected. */
  readonly ready: boolean
  /** The other nodes this one currently knows. */
  nodes: () => string[]
  /** Tells the other nodes that a local peer authenticated, announced `module`, or lost its module for `reason`. */
  update: (id: string, module: ModuleEntry | undefined, reason?: DeannounceReason) => void
  /** Tells the other nodes that an authenticated local peer is gone. */
  left: (id: string) => void
  /** Tells the other nodes that a local module went silent or came back. */
  health: (id: string, healthy: boolean) => void
  /** Sends an event to some peers of one other node (to that node only). */
  forward: (node: string, event: HubEvent, peerIds: readonly string[]) => void
  /** Says goodbye (the others de-announce this node's modules at once) and disconnects. */
  close: () => Promise<void>
}

/** What this node knows of another one. */
interface NodeView {
  /** The last change of that node applied here; -1 until its state arrived. */
  seq: number
  lastSeen: number
  /** Its authenticated peers, with a fingerprint of their module to tell changes from repeats. */
  peers: Map<string, string>
  syncRequestedAt: number
}

/** A local peer as the other nodes learn it. */
export function toPeerState(id: string, module: ModuleEntry | undefined): RemotePeerState {
  if (!module)
    return { id }
  const { name, index, identity } = module
  return { id, module: index === undefined ? { name, identity } : { name, index, identity } }
}

/** A batch is cut after this many characters, so one busy turn does not become one huge message. */
const MAX_BATCH_CHARS = 1 << 20

/** Only a routed event may hold values that need superjson (a Date, a Map); the rest is plain JSON. */
function encode(message: ClusterMessage): string {
  return toSuperjson(message, message.type !== 'route' || isPlainJson(message.event))
}

function decode(payload: { json: unknown, meta?: unknown }): ClusterMessage {
  const { value, plain } = fromSuperjson(payload)
  const message = value as ClusterMessage
  // Keeps the fast path on the receiving node: its peers' frames are encoded without a walk too.
  if (plain && message.type === 'route')
    markPlainJson(message.event)
  return message
}

/**
 * The cluster logic, written once for every backplane. Each node owns its peers' entries and
 * numbers its changes; the others apply them in order, notice gaps (a delta or heartbeat
 * ahead of what they applied) and repair them with a full state transfer. A node silent for
 * `nodeTimeoutMs` is dropped with its peers.
 */
export function createCluster(options: ClusterOptions): Cluster {
  const { backplane, nodeId, port, logger, onError, heartbeatMs, nodeTimeoutMs } = options
  const allChannel = `${options.prefix}:all`
  const nodeChannel = (node: string): string => `${options.prefix}:node:${node}`
  const views = new Map<string, NodeView>()
  let seq = 0
  let subscribed = false
  let joined = false
  let closed = false

  // The messages of one event-loop turn leave together, in order, one publish per run of
  // messages to the same channel: a burst of routed events costs the backplane one command.
  const outbox = createTurnQueue<[channel: string, text: string]>((queued) => {
    if (!backplane.ready)
      return
    let i = 0
    while (i < queued.length) {
      const channel = queued[i]![0]
      const texts: string[] = []
      let chars = 0
      while (i < queued.length && queued[i]![0] === channel && chars < MAX_BATCH_CHARS) {
        texts.push(queued[i]![1])
        chars += queued[i++]![1].length
      }
      backplane.publish(channel, `[${texts.join(',')}]`).catch(error => onError(error, { stage: 'backplane' }))
    }
  })

  function publish(channel: string, message: ClusterMessage): void {
    if (closed || !backplane.ready)
      return
    outbox.push([channel, encode(message)])
  }

  function state(hello: boolean): ClusterMessage {
    return { type: 'state', node: nodeId, seq, peers: [...port.localPeers()], hello }
  }

  function requestSync(node: string, view: NodeView, now: number): void {
    if (now - view.syncRequestedAt < heartbeatMs)
      return
    view.syncRequestedAt = now
    publish(nodeChannel(node), { type: 'sync', node: nodeId })
  }

  function apply(node: string, view: NodeView, peer: RemotePeerState, reason: DeannounceReason): void {
    const fingerprint = peer.module ? JSON.stringify(peer.module) : ''
    if (view.peers.get(peer.id) === fingerprint)
      return
    view.peers.set(peer.id, fingerprint)
    port.upsert(node, peer, reason)
  }

  function remove(view: NodeView, id: string, reason: DeannounceReason): void {
    if (view.peers.delete(id))
      port.remove(id, reason)
  }

  function drop(node: string, reason: DeannounceReason): void {
    const view = views.get(node)
    if (!view)
      return
    views.delete(node)
    logger.info(`cluster: node ${node} left (${reason}) with ${view.peers.size} peer(s)`)
    for (const id of [...view.peers.keys()])
      remove(view, id, reason)
  }

  /** Replaces what this node knows of `node` by its full state: only differences are announced. */
  function replace(node: string, view: NodeView, message: Extract<ClusterMessage, { type: 'state' }>): void {
    const present = new Set(message.peers.map(peer => peer.id))
    for (const id of [...view.peers.keys()]) {
      if (!present.has(id))
        remove(view, id, 'connection closed')
    }
    for (const peer of message.peers)
      apply(node, view, peer, 're-announcing')
    view.seq = message.seq
    view.syncRequestedAt = 0
  }

  function receive(text: string): void {
    let batch: unknown
    try {
      batch = JSON.parse(text)
      if (!Array.isArray(batch))
        throw new TypeError('a backplane message is not a batch')
    }
    catch (error) {
      onError(error, { stage: 'backplane' })
      return
    }
    for (const payload of batch) {
      try {
        handle(decode(payload))
      }
      catch (error) {
        onError(error, { stage: 'backplane' })
      }
    }
  }

  function handle(message: ClusterMessage | undefined): void {
    if (!message || message.node === nodeId || closed)
      return
    switch (message.type) {
      case 'route':
        port.deliver(message.event, message.to)
        return
      case 'health':
        port.health(message.id, message.healthy)
        return
      case 'bye':
        drop(message.node, 'server shutdown')
        return
      case 'sync':
        publish(nodeChannel(message.node), state(false))
        return
    }
    const now = Date.now()
    let view = views.get(message.node)
    if (!view) {
      views.set(message.node, view = { seq: -1, lastSeen: now, peers: new Map(), syncRequestedAt: 0 })
      logger.info(`cluster: node ${message.node} joined`)
    }
    view.lastSeen = now
    switch (message.type) {
      case 'state':
        if (message.seq >= view.seq)
          replace(message.node, view, message)
        if (message.hello)
          publish(nodeChannel(message.node), state(false))
        return
      case 'heartbeat':
        if (message.seq > view.seq)
          requestSync(message.node, view, now)
        return
      case 'peer':
      case 'left':
        if (message.seq <= view.seq)
          return
        if (view.seq === -1 || message.seq > view.seq + 1) {
          requestSync(message.node, view, now)
          return
        }
        view.seq = message.seq
        if (message.type === 'peer')
          apply(message.node, view, message.peer, (message.reason ?? 're-announcing') as DeannounceReason)
        else
          remove(view, message.id, 'connection closed')
    }
  }

  function tick(): void {
    publish(allChannel, { type: 'heartbeat', node: nodeId, seq })
    const now = Date.now()
    for (const [node, view] of views) {
      if (now - view.lastSeen > nodeTimeoutMs)
        drop(node, 'heartbeat expired')
    }
  }

  /** (Re)joins: tells every node this node's state and asks for theirs. */
  function join(): void {
    if (closed || !subscribed || !backplane.ready)
      return
    logger.info(joined ? 'cluster: backplane back, rejoining' : `cluster: joined as node ${nodeId}`)
    joined = true
    publish(allChannel, state(true))
  }

  backplane.onReadyChange((ready) => {
    if (ready)
      join()
    else if (joined && !closed)
      logger.warn('cluster: backplane lost; serving local peers only until it is back')
  })

  Promise.all([
    backplane.subscribe(allChannel, receive),
    backplane.subscribe(nodeChannel(nodeId), receive),
  ]).then(() => {
    subscribed = true
    join()
  }, error => onError(error, { stage: 'backplane' }))

  const timer = setInterval(tick, heartbeatMs)
  timer.unref()

  return {
    nodeId,
    get ready() { return joined && backplane.ready },
    nodes: () => [...views.keys()],
    update(id, module, reason) {
      seq++
      publish(allChannel, { type: 'peer', node: nodeId, seq, peer: toPeerState(id, module), reason })
    },
    left(id) {
      seq++
      publish(allChannel, { type: 'left', node: nodeId, seq, id })
    },
    health(id, healthy) {
      publish(allChannel, { type: 'health', node: nodeId, id, healthy })
    },
    forward(node, event, peerIds) {
      publish(nodeChannel(node), { type: 'route', node: nodeId, to: [...peerIds], event })
    },
    async close() {
      clearInterval(timer)
      publish(allChannel, { type: 'bye', node: nodeId })
      outbox.flush()
      closed = true
      await backplane.close()
    },
  }
}
