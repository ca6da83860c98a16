import { describe, expect, it } from 'vitest'
import { RawPeer, startHub } from '../helpers/hub.ts'

describe('outbound frames', () => {
  it('are text frames, for hub events and routed events alike', async () => {
    const hub = await startHub({ auth: { token: 't' } })
    const a = await RawPeer.connect(hub.url())
    const b = await RawPeer.connect(hub.url())
    const binary: boolean[] = []
    b.ws.on('message', (_data, isBinary) => binary.push(isBinary))
    await a.join('alpha', { token: 't' })
    await b.join('beta', { token: 't' })
    a.send({ type: 'hello', data: { n: 1 }, route: { destinations: ['plugin:beta'] } })
    await b.waitForType('hello')
    expect(b.received.map(e => e.type)).toEqual(['module:authenticated', 'registry:modules:sync', 'registry:modules:sync', 'hello'])
    expect(binary).toEqual([false, false, false, false])
  })
})
