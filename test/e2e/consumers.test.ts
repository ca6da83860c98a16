import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'

// Frames as AIRI HEAD's stage-ui and SDK send them: an extension peer announces its module,
// registers as a consumer (`module:consumer:register`, no ack), and senders ask for
// `route.delivery`, or send `input:text` and rely on its chat-ingestion defaults.

/** A HEAD extension peer with one module, confirmed by its announce echoed. */
async function headPeer(hub: RunningHub, name: string, options: { autoPong?: boolean } = {}): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url(), options)
  const identity = { id: `${name}-1`, extension: { id: `proj-airi:${name}` } }
  peer.send({ type: 'extension:module:announce', data: { name, identity, possibleEvents: ['input:text'], dependencies: [] } })
  await peer.waitFor(e => e.type === 'extension:module:announced' && e.data.name === name)
  return peer
}

/** Registers and proves the hub has taken it in: a ping sent after it is answered after it. */
async function register(peer: RawPeer, data: Record<string, unknown>): Promise<void> {
  peer.send({ type: 'module:consumer:register', data })
  const ping = peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
  await peer.waitFor(e => e.type === 'transport:connection:heartbeat' && e.metadata?.event?.parentId === ping)
}

const routed = (peers: RawPeer[], type: string): number[] => peers.map(peer => peer.ofType(type).length)

/** Sends `count` events and waits until the consumers got them all; returns who got each, in order. */
async function deliveries(sender: RawPeer, consumers: RawPeer[], count: number, event: Omit<WireEvent, 'metadata'>): Promise<number[]> {
  const order: number[] = []
  for (let i = 0; i < count; i++) {
    const before = routed(consumers, event.type)
    sender.send({ ...event, data: { ...event.data, i } })
    await until(() => routed(consumers, event.type).some((n, at) => n > before[at]!))
    order.push(routed(consumers, event.type).findIndex((n, at) => n > before[at]!))
  }
  return order
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('consumer delivery (deliver to exactly one)', () => {
  it('delivers input:text to exactly one chat-ingestion consumer of several, and is never relayed as a custom event', async () => {
    const hub = await startHub()
    const [stageA, stageB, sender, bystander] = await Promise.all(['stage-a', 'stage-b', 'discord', 'bystander'].map(name => headPeer(hub, name)))
    // stage-ui registers every open window in the chat-ingestion group.
    await register(stageA!, { event: 'input:text', mode: 'consumer-group', group: 'chat-ingestion' })
    await register(stageB!, { event: 'input:text', mode: 'consumer-group', group: 'chat-ingestion' })
    const id = sender!.send({ type: 'input:text', data: { text: 'hello' } })
    await stageA!.waitFor(e => e.type === 'input:text' && e.metadata?.event?.id === id)
    await settle()
    expect(routed([stageA!, stageB!, bystander!], 'input:text')).toEqual([1, 0, 0])
    // The registration went to the hub alone.
    for (const peer of [stageA!, stageB!, sender!, bystander!])
      expect(peer.ofType('module:consumer:register')).toEqual([])

    // Another peer's events still go to everyone; input:text:voice has no consumer yet, so it does too.
    sender!.send({ type: 'input:text:voice', data: { text: 'hi' } })
    await Promise.all([stageA!, stageB!, bystander!].map(peer => peer.waitForType('input:text:voice')))

    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_consumer_deliveries_total{event="input:text",group="chat-ingestion",outcome="delivered"}')).toBe(1)
  })

  it('routes input:text to everyone until a consumer registers, and again once the last one left', async () => {
    const hub = await startHub()
    const [consumer, sender, other] = await Promise.all(['stage', 'discord', 'other'].map(name => headPeer(hub, name)))
    sender!.send({ type: 'input:text', data: { text: 'one' } })
    await Promise.all([consumer!, other!].map(peer => peer.waitForType('input:text')))
    await register(consumer!, { event: 'input:text', group: 'chat-ingestion' })
    sender!.send({ type: 'input:text', data: { text: 'two' } })
    await consumer!.waitFor(e => e.type === 'input:text' && e.data.text === 'two')
    await settle()
    expect(other!.ofType('input:text')).toHaveLength(1)
    await consumer!.close()
    sender!.send({ type: 'input:text', data: { text: 'three' } })
    await other!.waitFor(e => e.type === 'input:text' && e.data.text === 'three')
  })

  it('first and priority pick by priority, then registration time; route.delivery overrides the input defaults field by field', async () => {
    const hub = await startHub()
    const [low, high, later, sender] = await Promise.all(['low', 'high', 'later', 'sender'].map(name => headPeer(hub, name)))
    await register(low!, { event: 'job', mode: 'consumer', priority: 1 })
    await register(high!, { event: 'job', mode: 'consumer', priority: 10 })
    await register(later!, { event: 'job', mode: 'consumer', priority: 10 })
    const consumers = [low!, high!, later!]
    expect(await deliveries(sender!, consumers, 2, { type: 'job', data: {}, route: { delivery: { mode: 'consumer', selection: 'first' } } })).toEqual([1, 1])
    expect(await deliveries(sender!, consumers, 1, { type: 'job', data: {}, route: { delivery: { mode: 'consumer', selection: 'priority' } } })).toEqual([1])

    // A group other than chat-ingestion for input:text, keeping the other defaults.
    await register(low!, { event: 'input:text', group: 'console' })
    await register(later!, { event: 'input:text', group: 'chat-ingestion' })
    expect(await deliveries(sender!, consumers, 1, { type: 'input:text', data: { text: 'x' }, route: { delivery: { group: 'console' } } })).toEqual([0])
  })

  it('round-robin turns through the consumers and starts again when membership changes', async () => {
    const hub = await startHub()
    const [a, b, c, sender] = await Promise.all(['a', 'b', 'c', 'sender'].map(name => headPeer(hub, name)))
    const delivery = { type: 'task', data: {}, route: { delivery: { mode: 'consumer-group', group: 'workers', selection: 'round-robin' } } }
    await register(a!, { event: 'task', group: 'workers' })
    await register(b!, { event: 'task', group: 'workers' })
    expect(await deliveries(sender!, [a!, b!, c!], 3, delivery)).toEqual([0, 1, 0])
    await register(c!, { event: 'task', group: 'workers' })
    expect(await deliveries(sender!, [a!, b!, c!], 4, delivery)).toEqual([0, 1, 2, 0])
    b!.send({ type: 'module:consumer:unregister', data: { event: 'task', group: 'workers' } })
    await settle()
    expect(await deliveries(sender!, [a!, b!, c!], 3, delivery)).toEqual([0, 2, 0])
  })

  it('sticky keeps a key on the same consumer while it stays a candidate', async () => {
    const hub = await startHub()
    const [a, b, sender] = await Promise.all(['a', 'b', 'sender'].map(name => headPeer(hub, name)))
    await register(a!, { event: 'chat', group: 'sessions' })
    await register(b!, { event: 'chat', group: 'sessions' })
    const sticky = (stickyKey: string): Omit<WireEvent, 'metadata'> => ({ type: 'chat', data: {}, route: { delivery: { group: 'sessions', selection: 'sticky', stickyKey } } })
    expect(await deliveries(sender!, [a!, b!], 3, sticky('user-1'))).toEqual([0, 0, 0])
    a!.send({ type: 'module:consumer:unregister', data: { event: 'chat', group: 'sessions' } })
    await settle()
    expect(await deliveries(sender!, [a!, b!], 1, sticky('user-1'))).toEqual([1])
    // a is back, ahead of b: a new key goes to it, the moved key stays on b.
    await register(a!, { event: 'chat', group: 'sessions', priority: 5 })
    expect(await deliveries(sender!, [a!, b!], 2, sticky('user-1'))).toEqual([1, 1])
    expect(await deliveries(sender!, [a!, b!], 1, sticky('user-2'))).toEqual([0])
  })

  it('answers a required delivery with no consumer with an error; an optional one goes nowhere quietly', async () => {
    const hub = await startHub()
    const [sender, other] = await Promise.all(['sender', 'other'].map(name => headPeer(hub, name)))
    // The sender is not its own candidate.
    await register(sender!, { event: 'job', mode: 'consumer' })
    const id = sender!.send({ type: 'job', data: {}, route: { delivery: { mode: 'consumer', required: true } } })
    const error = await sender!.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === id)
    expect(error.data).toEqual({ message: 'no consumer registered for requested event delivery' })
    sender!.send({ type: 'job', data: {}, route: { delivery: { mode: 'consumer' } } })
    await settle()
    expect(sender!.ofType('error')).toHaveLength(1)
    expect(other!.ofType('job')).toEqual([])
    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_consumer_deliveries_total{event="job",group="default",outcome="missed"}')).toBe(2)
  })

  it('skips an unhealthy consumer, and one the routing policy denies', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 200 }, routing: { policy: { denyLabels: ['blocked=yes'] } } })
    const quiet = await headPeer(hub, 'quiet', { autoPong: false })
    const [healthy, sender] = await Promise.all(['healthy', 'sender'].map(name => headPeer(hub, name)))
    const blocked = await RawPeer.connect(hub.url())
    blocked.send({ type: 'extension:module:announce', data: { name: 'blocked', identity: { id: 'blocked-1', extension: { id: 'x' }, labels: { blocked: 'yes' } } } })
    await blocked.waitForType('extension:module:announced')
    await register(blocked, { event: 'input:text', group: 'chat-ingestion', priority: 100 })
    await register(quiet, { event: 'input:text', group: 'chat-ingestion', priority: 50 })
    await register(healthy!, { event: 'input:text', group: 'chat-ingestion' })
    expect(await deliveries(sender!, [blocked, quiet, healthy!], 1, { type: 'input:text', data: { text: 'a' } })).toEqual([1])
    // The quiet peer stops answering pings: once it is declared unhealthy, the next consumer gets the chat.
    await sender!.waitFor(e => e.type === 'registry:modules:health:unhealthy' && e.data.name === 'quiet')
    expect(await deliveries(sender!, [blocked, quiet, healthy!], 1, { type: 'input:text', data: { text: 'b' } })).toEqual([2])
  })

  it('refuses registrations before authentication, without an event name, and past the per-peer bound', async () => {
    const hub = await startHub({ auth: { token: 'secret' }, limits: { maxConsumersPerPeer: 2 } })
    const peer = await RawPeer.connect(hub.url())
    const early = peer.send({ type: 'module:consumer:register', data: { event: 'input:text' } })
    expect((await peer.waitFor(e => e.metadata?.event?.parentId === early)).data).toEqual({ message: 'not authenticated' })
    peer.send({ type: 'module:authenticate', data: { token: 'secret' } })
    await peer.waitForType('module:authenticated')
    const nameless = peer.send({ type: 'module:consumer:register', data: { group: 'chat-ingestion' } })
    expect((await peer.waitFor(e => e.metadata?.event?.parentId === nameless)).data).toEqual({ message: 'invalid event format' })
    const badDelivery = peer.send({ type: 'job', data: {}, route: { delivery: { selection: 'random' } } })
    expect((await peer.waitFor(e => e.metadata?.event?.parentId === badDelivery)).data).toEqual({ message: 'invalid event format' })
    await register(peer, { event: 'a' })
    await register(peer, { event: 'b' })
    const third = peer.send({ type: 'module:consumer:register', data: { event: 'c' } })
    expect((await peer.waitFor(e => e.metadata?.event?.parentId === third)).data).toEqual({ message: 'limit exceeded: consumer registrations' })
  })
})
