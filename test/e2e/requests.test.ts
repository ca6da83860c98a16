import type { RawPeer, RunningHub, WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { RawPeer as Peer, settle, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'

// Requests with replies (`route.reply`) and delivery receipts (`route.ack`), as raw AIRI frames.

async function joined(hub: RunningHub, name: string, index?: number): Promise<RawPeer> {
  const peer = await Peer.connect(hub.url())
  await peer.join(name, { index, identity: { plugin: name, instanceId: `${name}-${index ?? 1}` } })
  return peer
}

const answering = (id: string) => (event: WireEvent) => event.metadata?.event?.parentId === id

describe('requests with replies', () => {
  it('delivers a request to exactly one responder and its reply to the requester only', async () => {
    const hub = await startHub()
    const [requester, responder, bystander] = await Promise.all([joined(hub, 'asker'), joined(hub, 'tool'), joined(hub, 'bystander')])
    const id = requester.send({ type: 'tool:invoke', data: { q: 1 }, route: { destinations: ['plugin:tool'], reply: true } })
    const request = await responder.waitFor(e => e.type === 'tool:invoke')
    expect(request.metadata?.event?.id).toBe(id)
    responder.send({ type: 'tool:result', data: { a: 2 }, metadata: { event: { parentId: id } } })
    const reply = await requester.waitFor(answering(id))
    expect(reply).toMatchObject({ type: 'tool:result', data: { a: 2 }, metadata: { source: { plugin: 'tool', instanceId: 'tool-1' } } })
    // A second answer is dropped, and the reply went to nobody else.
    responder.send({ type: 'tool:result', data: { a: 3 }, metadata: { event: { parentId: id } } })
    await settle()
    expect(requester.ofType('tool:result')).toHaveLength(1)
    expect(bystander.ofType('tool:result')).toEqual([])
    expect(bystander.ofType('tool:invoke')).toEqual([])

    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_requests_total{type="tool:invoke",outcome="replied"}')).toBe(1)
    expect(sample(metrics, 'hub_request_replies_dropped_total{type="tool:result"}')).toBe(1)
    expect(sample(metrics, 'hub_requests_pending')).toBe(0)
  })

  it('spreads requests round-robin over three instances, and takes an error event as the reply', async () => {
    const hub = await startHub()
    const requester = await joined(hub, 'asker')
    const tools = await Promise.all([0, 1, 2].map(index => joined(hub, 'tool', index)))
    for (const tool of tools)
      tool.ws.on('message', () => {})
    const got: number[] = []
    for (let i = 0; i < 6; i++) {
      const id = requester.send({ type: 'tool:invoke', data: { i }, route: { destinations: ['module:tool'], reply: true } })
      const which = await Promise.race(tools.map((tool, at) => tool.waitFor(e => e.metadata?.event?.id === id).then(() => at)))
      got.push(which)
      tools[which]!.send({ type: 'error', data: { message: 'nope' }, metadata: { event: { parentId: id } } })
      const reply = await requester.waitFor(answering(id))
      expect(reply).toMatchObject({ type: 'error', data: { message: 'nope' } })
    }
    expect(new Set(got.slice(0, 3)).size).toBe(3)
    expect(got.slice(3)).toEqual(got.slice(0, 3))
    // Outside a reply, `error` stays the hub's.
    const forged = tools[0]!.send({ type: 'error', data: { message: 'forged' } })
    await tools[0]!.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === forged && e.data.message === 'reserved event type')
  })

  it('answers "no responder" at once, "request timed out" after the timeout, "responder gone" when it leaves', async () => {
    const hub = await startHub()
    const [requester, responder] = await Promise.all([joined(hub, 'asker'), joined(hub, 'tool')])
    const none = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:nobody'], reply: true } })
    expect((await requester.waitFor(answering(none))).data).toEqual({ message: 'no responder' })

    const slow = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: { timeoutMs: 200 } } })
    expect((await requester.waitFor(answering(slow))).data).toEqual({ message: 'request timed out' })
    // Too late: dropped.
    responder.send({ type: 'tool:result', data: {}, metadata: { event: { parentId: slow } } })

    const gone = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: true } })
    await responder.waitFor(e => e.metadata?.event?.id === gone)
    await responder.close()
    expect((await requester.waitFor(answering(gone))).data).toEqual({ message: 'responder gone' })
    expect(requester.ofType('tool:result')).toEqual([])

    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    for (const outcome of ['no_responder', 'timeout', 'responder_gone'])
      expect(sample(metrics, `hub_requests_total{type="tool:invoke",outcome="${outcome}"}`)).toBe(1)
  })

  it('ignores a reply from a peer that is not the responder', async () => {
    const hub = await startHub()
    const [requester, responder, other] = await Promise.all([joined(hub, 'asker'), joined(hub, 'tool'), joined(hub, 'other')])
    const id = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: true } })
    await responder.waitFor(e => e.metadata?.event?.id === id)
    other.send({ type: 'tool:result', data: { from: 'other' }, metadata: { event: { parentId: id } } })
    await settle()
    expect(requester.ofType('tool:result')).toEqual([])
    responder.send({ type: 'tool:result', data: { from: 'tool' }, metadata: { event: { parentId: id } } })
    expect((await requester.waitFor(answering(id))).data).toEqual({ from: 'tool' })
  })

  it('drops a late reply to a request that ended (its responder reconnected, its requester left), but routes the requester\'s own events that name it', async () => {
    const hub = await startHub()
    const [requester, responder, bystander] = await Promise.all([joined(hub, 'asker'), joined(hub, 'tool'), joined(hub, 'bystander')])
    // Events of one sender arrive in order: once a bystander has its marker, an earlier event would have come.
    const after = async (peer: RawPeer): Promise<void> => {
      const marker = peer.send({ type: 'marker', data: {} })
      await bystander.waitFor(e => e.type === 'marker' && e.metadata?.event?.id === marker)
    }

    const gone = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: true } })
    await responder.waitFor(e => e.metadata?.event?.id === gone)
    await responder.close()
    expect((await requester.waitFor(answering(gone))).data).toEqual({ message: 'responder gone' })
    // The responder comes back as a new peer and finishes the work it was given.
    const back = await joined(hub, 'tool')
    back.send({ type: 'tool:result', data: { late: true }, metadata: { event: { parentId: gone } } })
    await after(back)

    const left = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: true } })
    await back.waitFor(e => e.metadata?.event?.id === left)
    const requesterAgain = await joined(hub, 'asker-2')
    await requester.close()
    back.send({ type: 'tool:result', data: { orphan: true }, metadata: { event: { parentId: left } } })
    await after(back)
    expect(bystander.ofType('tool:result')).toEqual([])
    expect(requesterAgain.ofType('tool:result')).toEqual([])

    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_request_replies_dropped_total{type="tool:result"}')).toBe(2)

    // The asker's own event naming its ended request is an event like any other.
    const asker = await joined(hub, 'asker-3')
    const own = asker.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: { timeoutMs: 100 } } })
    expect((await asker.waitFor(answering(own))).data).toEqual({ message: 'request timed out' })
    asker.send({ type: 'thread:note', data: { about: own }, metadata: { event: { parentId: own } } })
    expect((await bystander.waitFor(e => e.type === 'thread:note')).data).toEqual({ about: own })
  })

  it('with route.delivery, asks the one consumer the consumer selection picks', async () => {
    const hub = await startHub()
    const [requester, first, second] = await Promise.all([joined(hub, 'asker'), joined(hub, 'worker-a'), joined(hub, 'worker-b')])
    for (const worker of [first, second]) {
      worker.send({ type: 'module:consumer:register', data: { event: 'job:run', group: 'workers' } })
      const ping = worker.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
      await worker.waitFor(answering(ping))
    }
    const id = requester.send({ type: 'job:run', data: {}, route: { delivery: { group: 'workers', selection: 'first' }, reply: true } })
    await first.waitFor(e => e.metadata?.event?.id === id)
    first.send({ type: 'job:done', data: { by: 'a' }, metadata: { event: { parentId: id } } })
    expect((await requester.waitFor(answering(id))).data).toEqual({ by: 'a' })
    expect(second.ofType('job:run')).toEqual([])
  })

  it('answers a required consumer request nobody consumes once, with "no responder"', async () => {
    const hub = await startHub()
    const requester = await joined(hub, 'asker')
    const id = requester.send({ type: 'job:run', data: {}, route: { delivery: { group: 'workers', required: true }, reply: true } })
    expect((await requester.waitFor(answering(id))).data).toEqual({ message: 'no responder' })
    const ping = requester.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
    await requester.waitFor(answering(ping))
    expect(requester.ofType('error').filter(e => e.metadata?.event?.parentId === id)).toHaveLength(1)
  })

  it('bounds the requests one peer has pending', async () => {
    const hub = await startHub({ limits: { maxPendingRequestsPerPeer: 2 } })
    const [requester, responder] = await Promise.all([joined(hub, 'asker'), joined(hub, 'tool')])
    const ids = [0, 1, 2].map(() => requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: true } }))
    expect((await requester.waitFor(answering(ids[2]!))).data).toEqual({ message: 'limit exceeded: pending requests' })
    await responder.waitFor(e => e.metadata?.event?.id === ids[1])
    expect(responder.ofType('tool:invoke')).toHaveLength(2)
  })
})

describe('delivery receipts', () => {
  it('answers route.ack with event:ack {delivered}, 0 included', async () => {
    const hub = await startHub()
    const [sender, a, b] = await Promise.all([joined(hub, 'sender'), joined(hub, 'a'), joined(hub, 'b')])
    const all = sender.send({ type: 'note', data: {}, route: { ack: true } })
    expect(await sender.waitFor(e => e.type === 'event:ack' && e.metadata?.event?.parentId === all)).toMatchObject({ data: { delivered: 2 }, metadata: { source: { plugin: 'hub-server' } } })
    const one = sender.send({ type: 'note', data: {}, route: { destinations: ['plugin:a'], ack: true } })
    expect((await sender.waitFor(e => e.type === 'event:ack' && e.metadata?.event?.parentId === one)).data).toEqual({ delivered: 1 })
    const none = sender.send({ type: 'note', data: {}, route: { destinations: ['plugin:nobody'], ack: true } })
    expect((await sender.waitFor(e => e.type === 'event:ack' && e.metadata?.event?.parentId === none)).data).toEqual({ delivered: 0 })
    // Without route.ack, no receipt.
    sender.send({ type: 'note', data: {} })
    await b.waitFor(() => b.ofType('note').length === 2)
    await settle()
    expect(sender.ofType('event:ack')).toHaveLength(3)
    expect(a.ofType('event:ack')).toEqual([])
  })
})
