import type { RunningHub } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { startNodes } from '../helpers/cluster.ts'
import { onCleanup } from '../helpers/hub.ts'
import { RawMakaio } from '../helpers/makaio.ts'
import { until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'
import { ThymianPlugin } from '../helpers/thymian.ts'

// A Thymian plugin on node A and a Makaio client on node B, over one real redis-server, ask each
// other: neither speaks the native protocol, so only the hub's request primitive joins them.

describe('thymian and makaio across nodes over one real Redis', () => {
  it('a Makaio request is answered by a Thymian plugin on the other node, and the plugin\'s emitAction by the Makaio handler', async () => {
    const redis = await startRedis()
    onCleanup(() => redis.kill())
    const [a, b] = await startNodes(redis.url, 2, 2000) as [RunningHub, RunningHub]

    const plugin = await ThymianPlugin.start(a.url('/thymian'), 'remote-linter', { onActions: ['lint.run'] })
    plugin.handle('lint.run', ({ file }) => ({ file, problems: 0 }))
    const client = await RawMakaio.ready(b.url('/makaio?name=editor'))
    // The plugin's action is advertised to the client once its registration reaches node B.
    await client.waitFor(f => f.type === 'subscribe' && 'lint.run' in f.subjects, 'lint.run advertised')

    client.send({ type: 'request', namespace: 'lint', subject: 'run', payload: { file: 'x.ts' }, correlationId: 'c1', messageId: 'm1', timeout: 3000 })
    expect(await client.waitFor(f => f.type === 'response' && f.correlationId === 'c1', 'the response'))
      .toEqual({ type: 'response', correlationId: 'c1', result: { file: 'x.ts', problems: 0 } })

    // The other way: the Makaio client handles format.apply, and node A hears of it.
    client.send({ type: 'subscribe', subjects: { 'format.apply': [5] }, ackId: 1 })
    await client.waitFor(f => f.type === 'subscription-ack' && f.ackId === 1, 'the subscription ack')
    await until(() => a.server.hub.consumers.handlers('format.apply').length > 0, 'node A to learn the Makaio handler')

    const result = plugin.emitAction('fmt', 'format.apply', { file: 'y.ts' }, { strategy: 'first', timeout: 3000 })
    const request = await client.waitFor(f => f.type === 'request', 'the request from the plugin')
    expect(request).toMatchObject({ namespace: 'format', subject: 'apply', payload: { file: 'y.ts' } })
    client.send({ type: 'response', correlationId: request.correlationId, result: { file: 'y.ts', changed: true } })
    expect(await result).toEqual({ type: 'emitActionResult', correlationId: 'fmt', name: 'format.apply', payload: { file: 'y.ts', changed: true } })
  })
})
