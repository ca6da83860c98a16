import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import type { RedisServer } from '../helpers/redis.ts'
import { beforeEach, describe, expect, it } from 'vitest'
import { startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'

// Consumers on two hub nodes over a real redis-server, registered with the frames AIRI HEAD's
// stage-ui and plugins send: `module:consumer:register {event, mode, group, priority?}`, no ack.

let redis: RedisServer

/** A HEAD extension peer with one module, confirmed by its announce echoed. */
async function headPeer(hub: RunningHub, name: string, options: { autoPong?: boolean, labels?: Record<string, string> } = {}): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url(), { autoPong: options.autoPong ?? true })
  const identity = { id: `${name}-1`, extension: { id: `proj-airi:${name}` }, labels: options.labels }
  peer.send({ type: 'extension:module:announce', data: { name, identity, possibleEvents: ['input:text'], dependencies: [] } })
  await peer.waitFor(e => e.type === 'extension:module:announced' && e.data.name === name)
  return peer
}

let markers = 0

/**
 * Sends `frame` from `peer`, then a broadcast marker, and waits until `witness` (on another
 * node) got the marker: a node's backplane messages arrive in the order it sent them, so the
 * witness's node has applied the registration change by then. The marker is sent again until
 * it arrives: a broadcast reaches only the remote peers the sender's node has heard of yet.
 */
async function viaCluster(peer: RawPeer, frame: Omit<WireEvent, 'metadata'>, witness: RawPeer): Promise<void> {
  peer.send(frame)
  const marker = ++markers
  const arrived = (): boolean => witness.received.some(e => e.type === 'test:marker' && e.data.marker === marker)
  const deadline = Date.now() + 5000
  while (!arrived()) {
    if (Date.now() > deadline)
      throw new Error(`marker ${marker} never reached the witness`)
    peer.send({ type: 'test:marker', data: { marker } })
    await until(() => arrived() || undefined, 'the marker', 250).catch(() => undefined)
  }
}

function register(event: string, group: string, priority?: number): Omit<WireEvent, 'metadata'> {
  return { type: 'module:consumer:register', data: { event, mode: 'consumer-group', group, ...priority === undefined ? {} : { priority } } }
}

const got = (peers: RawPeer[], type: string): number[] => peers.map(peer => peer.ofType(type).length)

/** Sends `count` events and waits until one consumer got each; returns which, in order. */
async function deliveries(sender: RawPeer, consumers: RawPeer[], count: number, event: Omit<WireEvent, 'metadata'>): Promise<number[]> {
  const total = (): number => got(consumers, event.type).reduce((sum, n) => sum + n, 0)
  const start = total()
  const order: number[] = []
  for (let i = 0; i < count; i++) {
    const before = got(consumers, event.type)
    sender.send({ ...event, data: { ...event.data, i } })
    await until(() => got(consumers, event.type).some((n, at) => n > before[at]!), 'a consumer to get the event')
    order.push(got(consumers, event.type).findIndex((n, at) => n > before[at]!))
  }
  await settle(100)
  expect(total() - start).toBe(count)
  return order
}

describe('consumer delivery across hub nodes over one real Redis', () => {
  beforeEach(async () => {
    redis = await startRedis()
    onCleanup(() => redis.kill())
  })

  it('delivers input:text from a sender on one node to the chat-ingestion consumer on the other, exactly once', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000)
    const [sender, bystander] = await Promise.all([headPeer(a!, 'discord'), headPeer(a!, 'bystander')])
    const stage = await headPeer(b!, 'stage-web')
    // stage-ui registers each input event in the chat-ingestion group.
    for (const event of ['input:text', 'input:text:voice'])
      stage.send(register(event, 'chat-ingestion'))
    await viaCluster(stage, register('input:voice', 'chat-ingestion'), sender)

    const id = sender.send({ type: 'input:text', data: { text: 'hello' } })
    const delivered = await stage.waitFor(e => e.type === 'input:text')
    expect(delivered.metadata?.event?.id).toBe(id)
    expect(delivered.data).toEqual({ text: 'hello' })
    // The consumer on node b answers: routed back across the nodes to everyone, as any event.
    stage.send({ type: 'output:gen-ai:chat:message', data: { message: 'hi' } })
    await sender.waitForType('output:gen-ai:chat:message')
    await settle(150)
    expect(got([sender, bystander, stage], 'input:text')).toEqual([0, 0, 1])
    // The registration went to the hubs alone, on both nodes.
    for (const peer of [sender, bystander, stage])
      expect(peer.ofType('module:consumer:register')).toEqual([])
  })

  it('round-robin alternates between consumers on both nodes; priority picks the remote one when it ranks higher', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000)
    const [sender, local] = await Promise.all([headPeer(a!, 'sender'), headPeer(a!, 'local-worker')])
    const remote = await headPeer(b!, 'remote-worker')
    await viaCluster(local, register('job:run', 'workers'), remote)
    await viaCluster(remote, register('job:run', 'workers'), sender)

    const job = { type: 'job:run', data: {}, route: { delivery: { mode: 'consumer-group', group: 'workers', selection: 'round-robin' } } }
    const order = await deliveries(sender, [local, remote], 4, job)
    expect(new Set(order).size).toBe(2)
    expect(order[0]).not.toBe(order[1])
    expect([order[0], order[1]]).toEqual([order[2], order[3]])

    // `first`: registration time decides between equals (the local one registered first)...
    const first = { ...job, route: { delivery: { ...job.route.delivery, selection: 'first' } } }
    expect(await deliveries(sender, [local, remote], 2, first)).toEqual([0, 0])
    // ...and priority before it: the remote consumer re-registers higher.
    await viaCluster(remote, register('job:run', 'workers', 10), sender)
    expect(await deliveries(sender, [local, remote], 2, first)).toEqual([1, 1])
    const priority = { ...job, route: { delivery: { ...job.route.delivery, selection: 'priority' } } }
    expect(await deliveries(sender, [local, remote], 1, priority)).toEqual([1])
  })

  it('falls back to the local consumer when the remote one unregisters or closes; sticky keys follow', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000)
    const [sender, local] = await Promise.all([headPeer(a!, 'sender'), headPeer(a!, 'local-stage')])
    const remote = await headPeer(b!, 'remote-stage')
    await viaCluster(local, register('input:text', 'chat-ingestion'), remote)
    await viaCluster(remote, register('input:text', 'chat-ingestion', 5), sender)
    const sticky = { type: 'input:text', data: { text: 'hi' }, route: { delivery: { selection: 'sticky', stickyKey: 'user-1' } } }
    expect(await deliveries(sender, [local, remote], 2, sticky)).toEqual([1, 1])

    await viaCluster(remote, { type: 'module:consumer:unregister', data: { event: 'input:text', mode: 'consumer-group', group: 'chat-ingestion' } }, sender)
    expect(await deliveries(sender, [local, remote], 2, sticky)).toEqual([0, 0])
    // Registered again (behind the local consumer on priority 0), the key stays where it is.
    await viaCluster(remote, register('input:text', 'chat-ingestion'), sender)
    expect(await deliveries(sender, [local, remote], 1, sticky)).toEqual([0])
    // A round-robin turn counts the remote consumer again; then it closes, and only the local one is left.
    const turn = { type: 'input:text', data: {}, route: { delivery: { selection: 'round-robin' } } }
    expect(await deliveries(sender, [local, remote], 2, turn)).toEqual([0, 1])
    await viaCluster(remote, register('input:text', 'chat-ingestion', 5), sender)
    await remote.close()
    await sender.waitFor(e => e.type === 'extension:module:de-announced' && e.data.name === 'remote-stage')
    await settle(100)
    expect(await deliveries(sender, [local, remote], 2, { type: 'input:text', data: { text: 'again' } })).toEqual([0, 0])
  })

  it('skips a remote consumer its node declared unhealthy until it speaks again, and one this node\'s policy denies', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000, { heartbeat: { readTimeout: 1000 }, routing: { policy: { denyLabels: ['blocked=yes'] } } })
    const [sender, local] = await Promise.all([headPeer(a!, 'sender'), headPeer(a!, 'local-stage')])
    const quiet = await headPeer(b!, 'quiet-stage', { autoPong: false })
    const blocked = await headPeer(b!, 'blocked-stage', { labels: { blocked: 'yes' } })
    await viaCluster(local, register('input:text', 'chat-ingestion'), quiet)
    await viaCluster(blocked, register('input:text', 'chat-ingestion', 100), sender)
    await viaCluster(quiet, register('input:text', 'chat-ingestion', 50), sender)
    const consumers = [local, quiet, blocked]
    expect(await deliveries(sender, consumers, 1, { type: 'input:text', data: { text: 'a' } })).toEqual([1])

    // The quiet peer stops answering pings: node b declares it unhealthy, and tells node a.
    await sender.waitFor(e => e.type === 'registry:modules:health:unhealthy' && e.data.name === 'quiet-stage')
    expect(await deliveries(sender, consumers, 1, { type: 'input:text', data: { text: 'b' } })).toEqual([0])
    // Any frame from it and it is a candidate again.
    quiet.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
    await sender.waitFor(e => e.type === 'registry:modules:health:healthy' && e.data.name === 'quiet-stage')
    expect(await deliveries(sender, consumers, 1, { type: 'input:text', data: { text: 'c' } })).toEqual([1])
  })

  it('tells a node that joins later which consumers are silent', async () => {
    const [a] = await startNodes(redis.url, 1, 2000, { heartbeat: { readTimeout: 1500 } })
    const quiet = await headPeer(a!, 'quiet-stage', { autoPong: false })
    quiet.send(register('job:run', 'workers'))
    const watcher = await headPeer(a!, 'watcher')
    await watcher.waitFor(e => e.type === 'registry:modules:health:unhealthy' && e.data.name === 'quiet-stage')
    // Node b starts now: it learns the quiet consumer from node a's state, silent as it is.
    const b = await startHub({ redisUrl: redis.url, cluster: { nodeTimeoutMs: 2000 } })
    await until(() => b.server.hub.cluster!.nodes().length === 1, 'node b to join')
    const sender = await headPeer(b, 'sender')
    await sender.waitFor(e => e.type === 'registry:modules:sync' && e.data.modules.some((m: { name: string }) => m.name === 'quiet-stage'))
    const id = sender.send({ type: 'job:run', data: {}, route: { delivery: { group: 'workers', required: true } } })
    const error = await sender.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === id)
    expect(error.data).toEqual({ message: 'no consumer registered for requested event delivery' })
    expect(quiet.closed).toBeUndefined()
    expect(quiet.ofType('job:run')).toEqual([])
  })

  it('drops the registrations of a node that went silent, then answers a required delivery with no consumer left with an error', async () => {
    const nodeTimeoutMs = 1000
    const [a, b] = await startNodes(redis.url, 2, nodeTimeoutMs)
    const [sender, local] = await Promise.all([headPeer(a!, 'sender'), headPeer(a!, 'local-worker')])
    const remote = await headPeer(b!, 'remote-worker')
    await viaCluster(local, register('job:run', 'workers'), remote)
    await viaCluster(remote, register('job:run', 'workers', 1), sender)
    const required = { type: 'job:run', data: {}, route: { delivery: { mode: 'consumer-group', group: 'workers', required: true } } }
    expect(await deliveries(sender, [local, remote], 1, required)).toEqual([1])

    // Node b loses its backplane without a goodbye: node a hears nothing more and times it out.
    await b!.server.hub.options.backplane!.close()
    const gone = await sender.waitFor(e => e.type === 'extension:module:de-announced' && e.data.name === 'remote-worker', 4 * nodeTimeoutMs)
    expect(gone.data.reason).toBe('heartbeat expired')
    expect(await deliveries(sender, [local, remote], 2, required)).toEqual([0, 0])

    await local.close()
    await until(() => a!.server.hub.peers.size === 1, 'node a to see the local consumer leave')
    const id = sender.send(required)
    const error = await sender.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === id)
    expect(error.data).toEqual({ message: 'no consumer registered for requested event delivery' })
    expect(got([local, remote], 'job:run')).toEqual([2, 1])
  })

  it('drops the registrations of a node that says goodbye at once', async () => {
    const [a, b] = await startNodes(redis.url, 2, 60_000)
    const sender = await headPeer(a!, 'sender')
    const remote = await headPeer(b!, 'remote-worker')
    await viaCluster(remote, register('job:run', 'workers'), sender)
    const required = { type: 'job:run', data: {}, route: { delivery: { group: 'workers', required: true } } }
    expect(await deliveries(sender, [remote], 1, required)).toEqual([0])

    await b!.close()
    const gone = await sender.waitFor(e => e.type === 'extension:module:de-announced' && e.data.name === 'remote-worker')
    expect(gone.data.reason).toBe('server shutdown')
    const id = sender.send(required)
    const error = await sender.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === id)
    expect(error.data).toEqual({ message: 'no consumer registered for requested event delivery' })
  })
})
