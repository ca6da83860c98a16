import type { RedisServer } from '../helpers/redis.ts'
import { beforeEach, describe, expect, it } from 'vitest'
import { startNodes } from '../helpers/cluster.ts'
import { names } from '../helpers/delta-view.ts'
import { onCleanup, RawPeer } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'
import { startRedis } from '../helpers/redis.ts'

let redis: RedisServer

describe('registry deltas on two nodes over one real Redis', () => {
  beforeEach(async () => {
    redis = await startRedis()
    onCleanup(() => redis.kill())
  })

  it('shows a delta peer on node A the modules of node B joining and leaving, under A\'s epoch', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000)
    const watcher = await RawPeer.connect(a!.url())
    watcher.send({ type: 'module:authenticate', data: { registry: { mode: 'delta' } } })
    await watcher.waitForType('registry:modules:sync')

    const remote = await RawPeer.connect(b!.url())
    await remote.join('far')
    const remoteId = [...b!.server.hub.peers.keys()][0]
    await until(() => names(watcher).join() === 'far', 'the remote module in the view')
    const added = watcher.ofType('registry:modules:delta').at(-1)!.data.added[0]
    expect(added).toEqual({ peer: remoteId, name: 'far', identity: { plugin: 'far', instanceId: 'far-1', labels: {} }, healthy: true })

    await remote.close()
    await until(() => names(watcher).length === 0, 'the remote module gone from the view')
    // Revisions are this node's (the view checked each delta starts where the last one ended).
    const deltas = watcher.ofType('registry:modules:delta')
    expect(new Set(deltas.map(delta => delta.data.epoch))).toEqual(new Set([watcher.ofType('registry:modules:sync').at(-1)!.data.epoch]))
  })
})
