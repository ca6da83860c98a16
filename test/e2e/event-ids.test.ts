import { describe, expect, it } from 'vitest'
import { RawPeer, startHub } from '../helpers/hub.ts'

// An event's id is held while its request is pending and remembered after it ended; its
// parentId names such an id. Both are bounded like a name.

describe('event ids', () => {
  it('refuses an event whose id or parentId is longer than limits.maxNameLength, naming it; one at the bound goes', async () => {
    const hub = await startHub()
    const sender = await RawPeer.connect(hub.url())
    await sender.join('sender')
    const receiver = await RawPeer.connect(hub.url())
    await receiver.join('receiver')
    const long = 'i'.repeat(1000)
    sender.send({ type: 'work', data: {}, route: { destinations: ['plugin:receiver'], reply: true }, metadata: { event: { id: long } } })
    const refused = await sender.waitFor(event => event.type === 'error' && event.metadata?.event?.parentId === long)
    expect(refused.data.message).toBe('limit exceeded: event id')
    sender.send({ type: 'note', data: {}, route: { destinations: ['plugin:receiver'] }, metadata: { event: { id: 'n1', parentId: long } } })
    await sender.waitFor(event => event.type === 'error' && event.metadata?.event?.parentId === 'n1')
    sender.send({ type: 'note', data: {}, route: { destinations: ['plugin:receiver'] }, metadata: { event: { id: 'i'.repeat(256) } } })
    await receiver.waitForType('note')
    expect(receiver.ofType('work')).toEqual([])
    expect(receiver.ofType('note')).toHaveLength(1)
  })
})
