import type { Connection, HubEvent } from '../../src/types.ts'
import { describe, expect, it } from 'vitest'
import { createHub } from '../../src/hub.ts'

/** A fake connection recording the events it was sent, with an encoder of its own. */
function connection(encode: (event: HubEvent) => string = JSON.stringify): Connection & { events: HubEvent[] } {
  const events: HubEvent[] = []
  return {
    events,
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
    const told = sender.events.filter(e => e.type === 'error')
    expect(told).toHaveLength(1)
    expect(told[0]!.data).toEqual({ message: 'event could not be delivered' })
    expect(told[0]!.metadata?.event?.parentId).toBe('e1')
    await hub.close()
  })
})
