import type { Backplane } from '../../src/backplane/types.ts'
import { describe, expect, it } from 'vitest'
import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'

/** A real memory backplane whose node loses the incoming messages `lose` picks, as a lossy link would. */
function lossy(backplane: Backplane, lose: (message: string) => boolean): Backplane {
  return {
    ...backplane,
    get ready() { return backplane.ready },
    subscribe: (channel, handler) => backplane.subscribe(channel, (message) => {
      if (!lose(message))
        handler(message)
    }),
  }
}

describe('cluster repair', () => {
  it('notices a lost change from the numbering and repairs it with a full transfer, announcing once', async () => {
    const bus = createMemoryBus()
    const cluster = { prefix: 'repair', nodeTimeoutMs: 5000, heartbeatMs: 50 }
    let losing = false
    let lost = 0
    const a = await startHub({ backplane: lossy(createMemoryBackplane(bus), (message) => {
      // A message is a batch of one turn's changes: count the changes lost with it.
      const changes = message.split('"type":"peer"').length - 1
      const drop = losing && changes > 0
      if (drop)
        lost += changes
      return drop
    }), cluster })
    const b = await startHub({ backplane: createMemoryBackplane(bus), cluster })
    await until(() => a.server.hub.cluster!.nodes().length === 1 && b.server.hub.cluster!.nodes().length === 1, 'the nodes to know each other')
    const alpha = await RawPeer.connect(a.url())
    await alpha.join('alpha')

    losing = true
    const beta = await RawPeer.connect(b.url())
    await beta.join('beta')
    await until(() => lost >= 2, 'node a to lose beta\'s authentication and announce')
    losing = false

    // Node b's next heartbeat is ahead of what node a applied: a asks for b's state.
    const announced = await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'beta')
    expect(announced.data.identity).toEqual({ plugin: 'beta', instanceId: 'beta-1', labels: {} })
    beta.send({ type: 'after:repair', data: {}, route: { destinations: ['plugin:alpha'] } })
    await alpha.waitForType('after:repair')
    await settle(200)
    expect(alpha.ofType('module:announced')).toHaveLength(1)
  })
})

describe('a node that stalled', () => {
  it('does not expire the other nodes for the silence it slept through: it resyncs, and nobody sees a module leave', async () => {
    const bus = createMemoryBus()
    const cluster = { prefix: 'stall', nodeTimeoutMs: 300, heartbeatMs: 50 }
    const a = await startHub({ backplane: createMemoryBackplane(bus), cluster })
    const b = await startHub({ backplane: createMemoryBackplane(bus), cluster })
    await until(() => a.server.hub.cluster!.nodes().length === 1 && b.server.hub.cluster!.nodes().length === 1, 'the nodes to know each other')
    const alpha = await RawPeer.connect(a.url())
    await alpha.join('alpha')
    const beta = await RawPeer.connect(b.url())
    await beta.join('beta')
    await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'beta')
    await until(() => b.server.registry.size === 2, 'node b to list alpha')

    // This process (both nodes) does not run for twice the node timeout, as a paused one would not.
    const wakeAt = Date.now() + 2 * cluster.nodeTimeoutMs
    while (Date.now() < wakeAt) {
      // Blocked: no timer, no message.
    }
    await settle(2 * cluster.nodeTimeoutMs)

    alpha.send({ type: 'good:morning', data: {}, route: { destinations: ['plugin:beta'] } })
    await beta.waitForType('good:morning')
    expect([...alpha.ofType('module:de-announced'), ...beta.ofType('module:de-announced')]).toEqual([])
    expect(alpha.ofType('module:announced')).toHaveLength(1)
    expect([a.server.registry.size, b.server.registry.size]).toEqual([2, 2])
  })
})
