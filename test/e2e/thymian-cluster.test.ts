import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import { beforeAll, describe, expect, it } from 'vitest'
import { announced, startNodes } from '../helpers/cluster.ts'
import { RawPeer } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'
import { ThymianPlugin } from '../helpers/thymian.ts'

// A Thymian plugin and a native peer on two hub nodes over one real redis-server exchange
// requests and replies both ways: a native request becomes the plugin's action, and the
// plugin's emitAction reaches a native handler on the other node.

const answering = (id: string) => (event: WireEvent) => event.metadata?.event?.parentId === id

describe('thymian across nodes', () => {
  let redisUrl: string
  beforeAll(async () => {
    const redis = await startRedis()
    redisUrl = redis.url
    return () => redis.kill()
  })

  it('a native request on node B is answered by a Thymian plugin on node A; the plugin\'s emitAction is answered by a native handler on node B', async () => {
    const [a, b] = await startNodes(redisUrl, 2, 2000) as [RunningHub, RunningHub]
    const native = await RawPeer.connect(b.url())
    await native.join('native')
    native.send({ type: 'module:consumer:register', data: { event: 'native.lookup' } })
    native.ws.on('message', () => {
      for (const request of native.ofType('native.lookup').splice(0))
        native.send({ type: 'native.lookup', data: { found: request.data.key }, metadata: { event: { parentId: request.metadata!.event!.id } } })
    })
    const plugin = await ThymianPlugin.start(a.url('/thymian'), 'remote-linter', { onActions: ['lint.run'] })
    plugin.handle('lint.run', ({ file }) => ({ file, problems: 0 }))
    await native.waitFor(announced('remote-linter'))

    const id = native.send({ type: 'lint.run', data: { file: 'x.ts' }, route: { destinations: ['plugin:remote-linter'], reply: { timeoutMs: 3000 } } })
    expect(await native.waitFor(answering(id))).toMatchObject({ type: 'lint.run', data: { file: 'x.ts', problems: 0 }, metadata: { source: { plugin: 'remote-linter' } } })

    // The native consumer on node B is a handler on node A once the cluster told it.
    await until(() => a.server.hub.consumers.handlers('native.lookup').length > 0, 'node A to learn the native consumer')
    expect(await plugin.emitAction('lookup', 'native.lookup', { key: 'k' }, { strategy: 'first', timeout: 2000 })).toEqual({ type: 'emitActionResult', correlationId: 'lookup', name: 'native.lookup', payload: { found: 'k' } })

    // A Thymian plugin on node B is asked too: collect gathers both nodes' plugins.
    const other = await ThymianPlugin.start(b.url('/thymian'), 'other-linter', { onActions: ['lint.run'] })
    other.handle('lint.run', ({ file }) => ({ file, problems: 2 }))
    await until(() => a.server.hub.consumers.handlers('lint.run').length === 2, 'node A to learn the other linter')
    const caller = await ThymianPlugin.start(b.url('/thymian'), 'caller')
    const collected = await caller.emitAction('all', 'lint.run', { file: 'y.ts' }, { timeout: 2000 })
    expect(collected.type).toBe('emitActionResult')
    expect(collected.payload).toHaveLength(2)
    expect(collected.payload).toEqual(expect.arrayContaining([{ file: 'y.ts', problems: 0 }, { file: 'y.ts', problems: 2 }]))
  })
})
