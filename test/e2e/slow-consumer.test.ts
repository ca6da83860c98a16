import { describe, expect, it } from 'vitest'
import { RawPeer, startHub } from '../helpers/hub.ts'

const PAYLOAD = 'x'.repeat(16 * 1024)
const BATCH = 100
// 64 MiB in all: far more than loopback socket buffers hold, so a paused reader must overflow.
const MAX_BATCHES = 40

describe('slow consumer', () => {
  it('closes a peer that stops reading with 1013 while the others keep receiving', async () => {
    // The sender floods on purpose: no rate limit, so only the reader's pace decides.
    const hub = await startHub({ auth: { token: 't' }, limits: { maxBufferedBytes: 256 * 1024, eventsPerSec: 0, bytesPerSec: 0 } })
    const sender = await RawPeer.connect(hub.url())
    const fast = await RawPeer.connect(hub.url())
    const slow = await RawPeer.connect(hub.url())
    await sender.join('sender', { token: 't' })
    await fast.join('fast', { token: 't' })
    await slow.join('slow', { token: 't' })
    const slowGone = (): boolean => fast.received.some(e => e.type === 'module:de-announced' && e.data.name === 'slow')

    slow.ws.pause()
    let sent = 0
    for (let batch = 0; batch < MAX_BATCHES && !slowGone(); batch++) {
      for (let i = 0; i < BATCH; i++)
        sender.send({ type: 'bulk', data: { seq: sent++, payload: PAYLOAD } })
      await fast.waitFor(e => e.type === 'bulk' && e.data.seq === sent - 1)
    }

    expect(slowGone()).toBe(true)
    slow.ws.resume()
    expect((await slow.waitForClose()).code).toBe(1013)
    expect(fast.ofType('bulk').map(e => e.data.seq)).toEqual(Array.from({ length: sent }, (_, i) => i))

    sender.send({ type: 'after', data: {} })
    await fast.waitForType('after')
    expect(slow.ofType('after')).toEqual([])
  })
})
