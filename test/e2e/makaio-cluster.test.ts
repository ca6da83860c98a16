import type { RunningHub } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { announced, startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer } from '../helpers/hub.ts'
import { RawMakaio } from '../helpers/makaio.ts'
import { startRedis } from '../helpers/redis.ts'

// A Makaio client and a native AIRI peer on two hub nodes over a real redis-server.

describe('makaio across nodes over one real Redis', () => {
  it('a Makaio client and a native peer on another node exchange requests and replies both ways, and a broadcast', async () => {
    const redis = await startRedis()
    onCleanup(() => redis.kill())
    const [a, b] = await startNodes(redis.url, 2, 2000) as [RunningHub, RunningHub]
    const peer = await RawPeer.connect(b.url())
    await peer.join('calc')
    peer.send({ type: 'module:consumer:register', data: { event: 'math.add' } })

    const client = await RawMakaio.ready(a.url('/makaio?name=asker'))
    // The handler on the other node is advertised once its registration reaches this node.
    await client.waitFor(f => f.type === 'subscribe' && 'math.add' in f.subjects, 'the remote handler advertised')

    client.send({ type: 'request', namespace: 'math', subject: 'add', payload: { a: 1, b: 2 }, correlationId: 'c1', messageId: 'm1', timeout: 3000 })
    const asked = await peer.waitForType('math.add')
    peer.send({ type: 'math.sum', data: { sum: 3 }, metadata: { event: { parentId: asked.metadata!.event!.id } } })
    expect(await client.waitFor(f => f.type === 'response')).toEqual({ type: 'response', correlationId: 'c1', result: { sum: 3 } })

    client.send({ type: 'broadcast', namespace: 'math', subject: 'add', payload: { a: 5 }, correlationId: 'b1', messageId: 'm2', timeout: 3000 })
    const fanned = await peer.waitFor(e => e.type === 'math.add' && e.data.a === 5)
    peer.send({ type: 'math.sum', data: { sum: 5 }, metadata: { event: { parentId: fanned.metadata!.event!.id } } })
    expect(await client.waitFor(f => f.type === 'broadcast-response')).toEqual({ type: 'broadcast-response', correlationId: 'b1', results: [{ nodeId: 'calc', payload: { sum: 5 } }] })

    // The other way: the native peer asks the Makaio handler on node a.
    client.send({ type: 'subscribe', subjects: { 'math.mul': [0] }, ackId: 1 })
    await client.waitFor(f => f.type === 'subscription-ack')
    await peer.waitFor(announced('asker'))
    const id = peer.send({ type: 'math.mul', data: { a: 2, b: 3 }, route: { reply: { timeoutMs: 3000 }, destinations: ['plugin:asker'] } })
    const request = await client.waitFor(f => f.type === 'request')
    expect(request).toMatchObject({ namespace: 'math', subject: 'mul', payload: { a: 2, b: 3 }, correlationId: id })
    client.send({ type: 'response', correlationId: request.correlationId, result: { product: 6 } })
    expect(await peer.waitFor(e => e.metadata?.event?.parentId === id)).toMatchObject({ type: 'math.mul', data: { product: 6 } })
  })
})
