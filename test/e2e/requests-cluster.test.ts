import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import type { RedisServer } from '../helpers/redis.ts'
import { once } from 'node:events'
import { beforeEach, describe, expect, it } from 'vitest'
import { announced, metric, spawnNode, startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, settle } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'

// Requests and receipts across hub nodes over a real redis-server, as raw AIRI frames.

let redis: RedisServer

async function joined(url: string, name: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(url)
  await peer.join(name, { identity: { plugin: name, instanceId: `${name}-1` } })
  return peer
}

const answering = (id: string) => (event: WireEvent) => event.metadata?.event?.parentId === id

describe('requests across nodes over one real Redis', () => {
  beforeEach(async () => {
    redis = await startRedis()
    onCleanup(() => redis.kill())
  })

  it('asks a responder on another node; its reply comes back to the requester only, errors alike', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000) as [RunningHub, RunningHub]
    const requester = await joined(a.url(), 'asker')
    const bystander = await joined(a.url(), 'bystander')
    const responder = await joined(b.url(), 'tool')
    await requester.waitFor(announced('tool'))

    const id = requester.send({ type: 'tool:invoke', data: { q: 1 }, route: { destinations: ['plugin:tool'], reply: true } })
    await responder.waitFor(e => e.metadata?.event?.id === id)
    responder.send({ type: 'tool:result', data: { a: 1 }, metadata: { event: { parentId: id } } })
    expect(await requester.waitFor(answering(id))).toMatchObject({ type: 'tool:result', data: { a: 1 }, metadata: { source: { plugin: 'tool' } } })
    // A second answer is dropped on the responder's node.
    responder.send({ type: 'tool:result', data: { a: 2 }, metadata: { event: { parentId: id } } })

    const failing = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: true } })
    await responder.waitFor(e => e.metadata?.event?.id === failing)
    responder.send({ type: 'error', data: { message: 'bad input' }, metadata: { event: { parentId: failing } } })
    expect(await requester.waitFor(answering(failing))).toMatchObject({ type: 'error', data: { message: 'bad input' } })

    const slow = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: { timeoutMs: 300 } } })
    expect((await requester.waitFor(answering(slow))).data).toEqual({ message: 'request timed out' })

    const gone = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: true } })
    await responder.waitFor(e => e.metadata?.event?.id === gone)
    await responder.close()
    expect((await requester.waitFor(answering(gone))).data).toEqual({ message: 'responder gone' })

    await settle()
    expect(requester.ofType('tool:result')).toHaveLength(1)
    expect(bystander.ofType('tool:result')).toEqual([])
    expect(bystander.ofType('tool:invoke')).toEqual([])
    expect(await metric(a, 'hub_requests_total{type="tool:invoke",outcome="replied"}')).toBe(2)
    expect(await metric(b, 'hub_request_replies_dropped_total{type="tool:result"}')).toBe(1)
  })

  it('prefers a responder on the requester\'s node', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000) as [RunningHub, RunningHub]
    const requester = await joined(a.url(), 'asker')
    const near = await joined(a.url(), 'tool')
    const far = await joined(b.url(), 'tool')
    await until(() => requester.ofType('module:announced').filter(e => e.data.name === 'tool').length === 2, 'both tools announced')
    for (let i = 0; i < 4; i++) {
      const id = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['module:tool'], reply: true } })
      await near.waitFor(e => e.metadata?.event?.id === id)
      near.send({ type: 'tool:result', data: {}, metadata: { event: { parentId: id } } })
      await requester.waitFor(answering(id))
    }
    expect(far.ofType('tool:invoke')).toEqual([])
  })

  it('answers "responder gone" when the responder\'s node is killed mid-request, within the node timeout', async () => {
    const nodeTimeoutMs = 1500
    const [a] = await startNodes(redis.url, 1, nodeTimeoutMs) as [RunningHub]
    const doomed = await spawnNode(redis.url, { CLUSTER_NODE_TIMEOUT_MS: String(nodeTimeoutMs) })
    const requester = await joined(a.url(), 'asker')
    const responder = await joined(doomed.url(), 'tool')
    await requester.waitFor(announced('tool'))
    const id = requester.send({ type: 'tool:invoke', data: {}, route: { destinations: ['plugin:tool'], reply: { timeoutMs: 60_000 } } })
    await responder.waitFor(e => e.metadata?.event?.id === id)
    const killed = Date.now()
    doomed.child.kill('SIGKILL')
    await once(doomed.child, 'exit')
    expect((await requester.waitFor(answering(id), 4 * nodeTimeoutMs)).data).toEqual({ message: 'responder gone' })
    expect(Date.now() - killed).toBeLessThan(2 * nodeTimeoutMs + 1000)
  })

  it('counts the recipients of every node in event:ack', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000) as [RunningHub, RunningHub]
    const sender = await joined(a.url(), 'sender')
    await joined(a.url(), 'near')
    const far = await Promise.all([joined(b.url(), 'far-1'), joined(b.url(), 'far-2')])
    await sender.waitFor(announced('far-2'))
    const all = sender.send({ type: 'note', data: {}, route: { ack: true } })
    expect((await sender.waitFor(e => e.type === 'event:ack' && e.metadata?.event?.parentId === all)).data).toEqual({ delivered: 3 })
    const remote = sender.send({ type: 'note', data: {}, route: { destinations: ['plugin:far-1'], ack: true } })
    expect((await sender.waitFor(e => e.type === 'event:ack' && e.metadata?.event?.parentId === remote)).data).toEqual({ delivered: 1 })
    expect(far[0]!.ofType('note')).toHaveLength(2)
    // A peer that left on the other node before the event arrived is not counted.
    await far[1]!.close()
    const after = sender.send({ type: 'note', data: {}, route: { destinations: ['plugin:far-1', 'plugin:far-2'], ack: true } })
    expect((await sender.waitFor(e => e.type === 'event:ack' && e.metadata?.event?.parentId === after)).data).toEqual({ delivered: 1 })
  })
})
