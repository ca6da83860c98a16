import type { ConsolaInstance } from 'consola'
import type { TimedRegistration } from '../core/consumers.ts'
import type { ErrorStage } from '../errors.ts'
import type { DeannounceReason, HubEvent, PeerInfo } from '../types.ts'
import type { Backplane, ClusterMessage, RemotePeerState } from './types.ts'
import { createTurnQueue } from '../core/turn.ts'
import { decodeClusterBatch, encodeClusterMessage, MAX_MESSAGE_CHARS } from './messages.ts'

/** A peer of this node as the cluster reads it: a silent one (`unhealthy`) is no consumer candidate elsewhere either. */
export type LocalPeer = PeerInfo & { readonly unhealthy?: boolean }

/** What the cluster asks of the hub core it serves. */
export interface ClusterPort {
  /** This node's own authenticated peers. */
  localPeers: () => Iterable<LocalPeer>
  /** The consumer registrations of a local peer (none: undefined). */
  consumersOf: (peer: LocalPeer) => TimedRegistration[] | undefined
  /**
   * A peer of another node is authenticated, with these modules and consumer registrations
   * (maybe none); modules it had before and has no more left for `reason`. An id that belongs to a local peer or to another
   * node's is forged: ignored.
   */
  upsert: (node: string, peer: RemotePeerState, reason: DeannounceReason) => void
  /** A peer of `node` is gone (its modules, if any, left for `reason`). */
  remove: (node: string, id: string, reason: DeannounceReason) => void
  /** The modules of a peer of `node` went silent (`healthy: false`) or came back. */
  health: (node: string, id: string, healthy: boolean) => void
  /** Delivers an event routed on `node` to some of this node's peers; how many it reached. */
  deliver: (event: HubEvent, peerIds: readonly string[], node: string) => number
  /** The reply of `responder`, a peer of `node`, to a request of a local peer. */
  reply: (node: string, responder: string, event: HubEvent) => void
  /** `node` delivered the event of receipt `token` to `delivered` of its peers. */
  ack: (node: string, token: string, delivered: number) => void
  /** Counts what the cluster dropped (a metric): received messages, or routed events it could not forward. */
  discard: (reason: DiscardReason, count: number) => void
}

/** Why the cluster dropped something: an invalid received message, or a routed event it could not forward. */
export type DiscardReason = 'backplane_invalid' | 'backplane_dropped' | 'backplane_limit'

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
  /** Most other nodes known at once: messages of any node past it are ignored until one leaves. */
  maxNodes: number
  /** Most peers of one other node known at once: past it, that node's new peers are ignored. */
  maxPeersPerNode: number
  logger: ConsolaInstance
  onError: (error: unknown, context: { stage: ErrorStage }) => void
}

export interface Cluster {
  readonly nodeId: string
  /**
   * Joins: subscribes, starts the heartbeat timer, and from then on applies what the other
   * nodes say through `port` (idempotent). Nothing is sent or received before it.
   */
  start: (port: ClusterPort) => void
  /** Joined, and the backplane is connected. */
  readonly ready: boolean
  /** The other nodes this one currently knows. */
  nodes: () => string[]
  /**
   * Tells the other nodes a local peer's state: it authenticated, its modules changed (those
   * gone left for `reason`), or its consumer registrations did.
   */
  update: (peer: LocalPeer, reason?: DeannounceReason) => void
  /** Tells the other nodes that an authenticated local peer is gone. */
  left: (id: string) => void
  /** Tells the other nodes that a local peer's modules went silent or came back. */
  health: (id: string, healthy: boolean) => void
  /** Sends an event to some peers of one other node (to that node only); with `ack`, that node answers how many it reached. */
  forward: (node: string, event: HubEvent, peerIds: readonly string[], ack?: string) => void
  /** Sends the reply of local `responder` to a requester on `node`. */
  reply: (node: string, responder: string, event: HubEvent) => void
  /** Says goodbye (the others de-announce this node's modules at once) and disconnects. */
  close: () => Promise<void>
}

/** What this node knows of another one. */
interface NodeView {
  /** The last change of that node applied here; -1 until its state arrived. */
  seq: number
  lastSeen: number
  /** Its authenticated peers, with a fingerprint of their modules, aliases, consumers and health to tell changes from repeats. */
  peers: Map<string, string>
  /** The fingerprints' length together: about the size of its state. */
  chars: number
  syncRequestedAt: number
  /** When this node last sent it its state; one asked for sooner is owed until the next tick. */
  stateSentAt: number
  stateOwed: boolean
}

/** A local peer as the other nodes learn it, with its consumer registrations. */
export function toPeerState({ id, modules = [], aliases, identity, protocol, unhealthy }: LocalPeer, consumers?: TimedRegistration[]): RemotePeerState {
  const state: RemotePeerState = protocol ? { id, protocol } : { id }
  if (modules.length > 0)
    state.modules = modules.map(({ name, index, identity }) => index === undefined ? { name, identity } : { name, index, identity })
  if (aliases?.size)
    state.aliases = [...aliases]
  if (identity)
    state.identity = identity
  if (consumers?.length)
    state.consumers = consumers
  if (unhealthy)
    state.unhealthy = true
  return state
}

/** Marks a fingerprint stale (no state's starts with it), its length kept for the node's size. */
const STALE = '\0'

/** A batch is cut after this many characters, so one busy turn does not become one huge message. */
const MAX_BATCH_CHARS = 1 << 20

/** What the cluster drops is logged at most once per this (and always counted). */
const DISCARD_LOG_INTERVAL_MS = 10_000

/** A message waiting for the turn's end; `to` is the node a routed event is for. */
interface Outgoing {
  channel: string
  text: string
  to?: string
}

/** Counts what is dropped for `reason` and says so in the log, at most once per `DISCARD_LOG_INTERVAL_MS`. */
function createDiscard(discard: ClusterPort['discard'], logger: ConsolaInstance, reason: DiscardReason, what: string): (count: number, why: string) => void {
  let loggedAt = -Infinity
  let unlogged = 0
  return (count, why) => {
    discard(reason, count)
    unlogged += count
    const now = Date.now()
    if (now - loggedAt < DISCARD_LOG_INTERVAL_MS)
      return
    logger.warn(`cluster: dropped ${unlogged} ${what} (latest: ${why}); counted in hub_errors_total{reason="${reason}"}, logged at most every ${DISCARD_LOG_INTERVAL_MS / 1000} s`)
    loggedAt = now
    unlogged = 0
  }
}

/**
 * The cluster logic, written once for every backplane. Each node owns its peers' entries and
 * numbers its changes; the others apply them in order, notice gaps (a delta or heartbeat
 * ahead of what they applied) and repair them with a full state transfer. A node silent for
 * `nodeTimeoutMs` is dropped with its peers. Every received message is checked first
 * (`messages.ts`); no timer or handler here lets an error escape: each goes to `onError`.
 */
export function createCluster(options: ClusterOptions): Cluster {
  const { backplane, nodeId, logger, onError, heartbeatMs, nodeTimeoutMs, maxNodes, maxPeersPerNode } = options
  // Given at start: the hub's side of the cluster, which exists once the hub serves.
  let port: ClusterPort = { localPeers: () => [], consumersOf: () => undefined, upsert() {}, remove() {}, health() {}, deliver: () => 0, reply() {}, ack() {}, discard() {} }
  const allChannel = `${options.prefix}:all`
  const nodeChannel = (node: string): string => `${options.prefix}:node:${node}`
  const views = new Map<string, NodeView>()
  const dropInvalid = createDiscard((reason, count) => port.discard(reason, count), logger, 'backplane_invalid', 'invalid backplane message(s)')
  const dropEvents = createDiscard((reason, count) => port.discard(reason, count), logger, 'backplane_dropped', 'event(s) for other nodes')
  const dropPastLimit = createDiscard((reason, count) => port.discard(reason, count), logger, 'backplane_limit', 'backplane message(s) past the cluster\'s limits')
  // A tick this much later than due means this node did not run meanwhile: half the margin a
  // live node's heartbeats have before they would be taken for silence.
  const stallMs = (nodeTimeoutMs - heartbeatMs) / 2
  let seq = 0
  let subscribed = false
  let joined = false
  let closed = false
  let lastTick = Date.now()
  let timer: ReturnType<typeof setInterval> | undefined

  /** `fn`, with whatever it throws reported instead of escaping into a timer or an engine's callback. */
  function guarded<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        fn(...args)
      }
      catch (error) {
        onError(error, { stage: 'backplane' })
      }
    }
  }

  const routesIn = (items: readonly Outgoing[]): number => items.reduce((count, item) => count + (item.to === undefined ? 0 : 1), 0)

  // The messages of one event-loop turn leave together, in order, one publish per run of
  // messages to the same channel: a burst of routed events costs the backplane one command.
  const outbox = createTurnQueue<Outgoing>(guarded((queued) => {
    if (!backplane.ready) {
      const routes = routesIn(queued)
      if (routes > 0)
        dropEvents(routes, 'the backplane is down')
      return
    }
    let i = 0
    while (i < queued.length) {
      const { channel, to } = queued[i]!
      const texts: string[] = []
      let chars = 0
      let routes = 0
      while (i < queued.length && queued[i]!.channel === channel && chars < MAX_BATCH_CHARS) {
        const item = queued[i++]!
        texts.push(item.text)
        chars += item.text.length
        if (item.to !== undefined)
          routes++
      }
      backplane.publish(channel, `[${texts.join(',')}]`).then((receivers) => {
        // Nobody listens on a node's channel: that node is gone (its timeout has not passed yet).
        if (receivers === 0 && routes > 0)
          dropEvents(routes, `node ${to} is not listening`)
      }, (error) => {
        if (routes > 0)
          dropEvents(routes, 'the backplane failed to publish')
        onError(error, { stage: 'backplane' })
      })
    }
  }))

  /** Queues `message` for the turn's end; `to` is the node a routed event is for. */
  function publish(channel: string, message: ClusterMessage, to?: string): void {
    if (closed || !backplane.ready) {
      if (to !== undefined)
        dropEvents(1, closed ? 'this node is leaving' : 'the backplane is down')
      return
    }
    let text: string
    try {
      text = encodeClusterMessage(message)
    }
    catch (error) {
      if (to !== undefined)
        dropEvents(1, 'the event could not be encoded')
      onError(error, { stage: 'backplane' })
      return
    }
    outbox.push({ channel, text, to })
  }

  function state(hello: boolean): ClusterMessage {
    const peers: RemotePeerState[] = []
    for (const peer of port.localPeers())
      peers.push(toPeerState(peer, port.consumersOf(peer)))
    return { type: 'state', node: nodeId, seq, peers, hello }
  }

  /**
   * Sends `node` this node's full state, at most once per heartbeat: a state is the costliest
   * thing a node sends, and a tiny `sync` or `hello` asks for it. One asked for sooner is sent
   * at the next tick, so nothing asked is lost.
   */
  function sendState(node: string, view: NodeView, now: number, owed = false): void {
    if (!owed && now - view.stateSentAt < heartbeatMs) {
      view.stateOwed = true
      return
    }
    view.stateSentAt = now
    view.stateOwed = false
    publish(nodeChannel(node), state(false))
  }

  function requestSync(node: string, view: NodeView, now: number): void {
    if (now - view.syncRequestedAt < heartbeatMs)
      return
    view.syncRequestedAt = now
    publish(nodeChannel(node), { type: 'sync', node: nodeId })
  }

  function record(view: NodeView, id: string, fingerprint: string): void {
    view.chars += fingerprint.length - (view.peers.get(id)?.length ?? 0)
    view.peers.set(id, fingerprint)
  }

  function apply(node: string, view: NodeView, peer: RemotePeerState, reason: DeannounceReason): void {
    const fingerprint = peer.modules || peer.aliases || peer.identity || peer.consumers || peer.unhealthy ? JSON.stringify([peer.modules, peer.aliases, peer.identity, peer.consumers, peer.unhealthy]) : ''
    const known = view.peers.get(peer.id)
    if (known === fingerprint)
      return
    if (known === undefined && view.peers.size >= maxPeersPerNode) {
      dropPastLimit(1, `peer ${peer.id.slice(0, 100)} of node ${node}: the node has ${maxPeersPerNode} peers already (cluster.maxPeersPerNode)`)
      return
    }
    // A node's whole state travels in one message when asked: one that could not is not held either.
    if (view.chars + fingerprint.length - (known?.length ?? 0) > MAX_MESSAGE_CHARS) {
      dropPastLimit(1, `peer ${peer.id.slice(0, 100)} of node ${node}: the node's state would pass ${MAX_MESSAGE_CHARS} characters`)
      return
    }
    record(view, peer.id, fingerprint)
    port.upsert(node, peer, reason)
  }

  function remove(node: string, view: NodeView, id: string, reason: DeannounceReason): void {
    const known = view.peers.get(id)
    if (known === undefined)
      return
    view.chars -= known.length
    view.peers.delete(id)
    port.remove(node, id, reason)
  }

  function drop(node: string, reason: DeannounceReason): void {
    const view = views.get(node)
    if (!view)
      return
    views.delete(node)
    logger.info(`cluster: node ${node} left (${reason}) with ${view.peers.size} peer(s)`)
    for (const id of [...view.peers.keys()])
      remove(node, view, id, reason)
  }

  /** Replaces what this node knows of `node` by its full state: only differences are announced. */
  function replace(node: string, view: NodeView, message: Extract<ClusterMessage, { type: 'state' }>): void {
    const present = new Set(message.peers.map(peer => peer.id))
    for (const id of [...view.peers.keys()]) {
      if (!present.has(id))
        remove(node, view, id, 'connection closed')
    }
    for (const peer of message.peers)
      apply(node, view, peer, 're-announcing')
    view.seq = message.seq
    view.syncRequestedAt = 0
  }

  function receive(text: string): void {
    const { messages, invalid, reason } = decodeClusterBatch(text)
    if (invalid > 0)
      dropInvalid(invalid, reason!)
    for (const message of messages) {
      try {
        handle(message)
      }
      catch (error) {
        onError(error, { stage: 'backplane' })
      }
    }
  }

  function handle(message: ClusterMessage): void {
    if (message.node === nodeId || closed)
      return
    switch (message.type) {
      case 'route': {
        const delivered = port.deliver(message.event, message.to, message.node)
        if (message.ack !== undefined)
          publish(nodeChannel(message.node), { type: 'ack', node: nodeId, token: message.ack, delivered })
        return
      }
      case 'reply':
        port.reply(message.node, message.responder, message.event)
        return
      case 'ack':
        port.ack(message.node, message.token, message.delivered)
        return
      case 'health': {
        // The health in the fingerprint is stale now: the peer's next state is applied whatever it says.
        const view = views.get(message.node)
        const known = view?.peers.get(message.id)
        if (known !== undefined && !known.startsWith(STALE))
          record(view!, message.id, STALE + known)
        port.health(message.node, message.id, message.healthy)
        return
      }
      case 'bye':
        drop(message.node, 'server shutdown')
        return
      case 'sync': {
        // A node asks for a state only once it is known here (its own state or heartbeat came first).
        const view = views.get(message.node)
        if (view)
          sendState(message.node, view, Date.now())
        return
      }
    }
    const now = Date.now()
    let view = views.get(message.node)
    if (!view) {
      if (views.size >= maxNodes) {
        dropPastLimit(1, `node ${message.node}: ${maxNodes} nodes are known already (cluster.maxNodes)`)
        return
      }
      views.set(message.node, view = { seq: -1, lastSeen: now, peers: new Map(), chars: 0, syncRequestedAt: 0, stateSentAt: -Infinity, stateOwed: false })
      logger.info(`cluster: node ${message.node} joined`)
    }
    view.lastSeen = now
    switch (message.type) {
      case 'state':
        if (message.seq >= view.seq)
          replace(message.node, view, message)
        if (message.hello)
          sendState(message.node, view, now)
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
          apply(message.node, view, message.peer, message.reason ?? 're-announcing')
        else
          remove(message.node, view, message.id, 'connection closed')
    }
  }

  /**
   * This node did not run for `stalled` ms (paused, suspended, its event loop blocked): the
   * others' silence over that time was its own deafness, so it is not held against them. They
   * may have given up on this node meanwhile: it rejoins, and every node answers with its state.
   */
  function wake(now: number, stalled: number): void {
    logger.warn(`cluster: this node stalled for ${stalled} ms; resyncing instead of expiring the other nodes`)
    for (const view of views.values())
      view.lastSeen = Math.min(now, view.lastSeen + stalled)
    if (joined)
      publish(allChannel, state(true))
  }

  function tick(): void {
    const now = Date.now()
    const stalled = now - lastTick - heartbeatMs
    lastTick = now
    if (stalled > stallMs)
      wake(now, stalled)
    publish(allChannel, { type: 'heartbeat', node: nodeId, seq })
    for (const [node, view] of views) {
      if (now - view.lastSeen > nodeTimeoutMs)
        drop(node, 'heartbeat expired')
      else if (view.stateOwed)
        sendState(node, view, now, true)
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

  function start(given: ClusterPort): void {
    if (timer || closed)
      return
    port = given
    backplane.onReadyChange(guarded((ready) => {
      if (ready)
        join()
      else if (joined && !closed)
        logger.warn('cluster: backplane lost; serving local peers only until it is back')
    }))
    const onMessage = guarded(receive)
    Promise.all([
      backplane.subscribe(allChannel, onMessage),
      backplane.subscribe(nodeChannel(nodeId), onMessage),
    ]).then(guarded(() => {
      subscribed = true
      join()
    }), error => onError(error, { stage: 'backplane' }))
    lastTick = Date.now()
    timer = setInterval(guarded(tick), heartbeatMs)
    timer.unref()
  }

  return {
    nodeId,
    start,
    get ready() { return joined && backplane.ready },
    nodes: () => [...views.keys()],
    update(peer, reason) {
      seq++
      publish(allChannel, { type: 'peer', node: nodeId, seq, peer: toPeerState(peer, port.consumersOf(peer)), reason })
    },
    left(id) {
      seq++
      publish(allChannel, { type: 'left', node: nodeId, seq, id })
    },
    health(id, healthy) {
      publish(allChannel, { type: 'health', node: nodeId, id, healthy })
    },
    forward(node, event, peerIds, ack) {
      const message: ClusterMessage = { type: 'route', node: nodeId, to: [...peerIds], event }
      if (ack !== undefined)
        message.ack = ack
      publish(nodeChannel(node), message, node)
    },
    reply(node, responder, event) {
      publish(nodeChannel(node), { type: 'reply', node: nodeId, responder, event }, node)
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
