import type { HubError } from '../../src/errors.ts'
import type { Connection, HubEvent } from '../../src/types.ts'
import { describe, expect, it } from 'vitest'
import { createHub } from '../../src/hub.ts'

/** A fake connection recording the events it was sent, with an encoder of its own. */
function connection(encode: (event: HubEvent) => string = JSON.stringify): Connection & { events: HubEvent[], failures: Array<[HubError, string?]> } {
  const events: HubEvent[] = []
  const failures: Array<[HubError, string?]> = []
  return {
    events,
    failures,
    fail: (error, parentId) => failures.push([error, parentId]),
    encoder: { encode },
    send: (frame) => {
      events.push(JSON.parse(frame))
      return 0
    },
    close: () => {},
  }
}

describe('delivery', () => {
  it('delivers to the others when one encoder throws, reports it, and tells the sender once', async () => {
    const errors: Array<{ stage: string, peerId?: string }> = []
    const hub = createHub({ env: {}, logger: { level: 'silent' }, onError: (_, context) => errors.push(context) })
    const sender = connection()
    const healthy = connection()
    const failOnCustom = (event: HubEvent): string => {
      if (event.type === 'custom')
        throw new Error('boom')
      return JSON.stringify(event)
    }
    const failing = [connection(failOnCustom), connection(failOnCustom)]
    const from = hub.connect(sender)
    hub.connect(healthy)
    const broken = failing.map(c => hub.connect(c))
    const delivered = await hub.publish(from, { type: 'custom', data: { x: 1 }, metadata: { event: { id: 'e1' } } })

    expect(delivered).toBe(1)
    expect(healthy.events.filter(e => e.type === 'custom')).toHaveLength(1)
    expect(errors).toEqual([{ stage: 'deliver', peerId: broken[0]!.id }])
    expect(sender.failures.map(([error, parentId]) => [error.code, error.message, parentId])).toEqual([['undeliverable', 'event could not be delivered', 'e1']])
    await hub.close()
  })
})
