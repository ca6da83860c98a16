import type { ClientOptions, HubClient } from '../../src/client/index.ts'
import type { RunningHub } from '../helpers/hub.ts'
import type { RedisServer } from '../helpers/redis.ts'
import { beforeEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createClient } from '../../src/client/index.ts'
import { startNodes } from '../helpers/cluster.ts'
import { onCleanup } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'
import { startRedis } from '../helpers/redis.ts'

// hub-server/client on two hub nodes clustered over a real redis-server.

let redis: RedisServer

function client(url: string | string[], name: string, options: Partial<ClientOptions> = {}): HubClient {
  const created = createClient({ url, WebSocket, module: { name }, reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...options })
  onCleanup(() => created.close())
  return created
}

function keys(c: HubClient | RunningHub): string {
  const names = 'modules' in c ? [...c.modules.values()].map(entry => entry.name) : [...c.server.hub.registry.entries()].map(entry => entry.name)
  return names.sort().join(',')
}

describe('hub-server/client on two nodes over one real Redis', () => {
  beforeEach(async () => {
    redis = await startRedis()
    onCleanup(() => redis.kill())
  })

  it('sees the whole cluster, routes, asks and acks across nodes, and moves to the other node when its node goes', async () => {
    const [a, b] = await startNodes(redis.url, 2, 2000) as [RunningHub, RunningHub]
    const onA = client(a.url(), 'on-a')
    const onB = client([b.url(), a.url()], 'on-b')
    onB.respond('where', () => ({ node: 'b' }))
    await until(() => onA.status === 'open' && onB.status === 'open', 'both to open')
    await until(() => keys(onA) === 'on-a,on-b' && keys(onB) === 'on-a,on-b', 'both views to hold the cluster')

    const got: unknown[] = []
    onB.on('note', data => got.push(data))
    expect(await onA.emit('note', { n: 1 }, { to: 'module:on-b', ack: true })).toEqual({ delivered: 1 })
    await until(() => got.length === 1, 'the note on node b')
    expect(await onA.request('where', {})).toEqual({ node: 'b' })
    expect(await onA.request('where', {}, { to: 'plugin:on-b' })).toEqual({ node: 'b' })

    // Node b shuts down: its client comes back on node a, re-announced once; the views agree.
    await b.close()
    await until(() => onB.status === 'open' && keys(onB) === 'on-a,on-b' && keys(onA) === 'on-a,on-b' && keys(a) === 'on-a,on-b', 'the client to be back on node a', 10_000)
    expect([...a.server.hub.registry.entries()].filter(entry => entry.name === 'on-b')).toHaveLength(1)
    expect(await onA.request('where', {})).toEqual({ node: 'b' })
  })
})
