import { describe, expect, it } from 'vitest'
import { RawPeer, startHub } from '../helpers/hub.ts'

describe('smoke', () => {
  it('routes between two raw peers', async () => {
    const hub = await startHub({ auth: { token: 't' } })
    const a = await RawPeer.connect(hub.url())
    const b = await RawPeer.connect(hub.url())
    await a.join('alpha', { token: 't' })
    await b.join('beta', { token: 't' })
    a.send({ type: 'hello', data: { n: 1 }, route: { destinations: ['plugin:beta'] } })
    const got = await b.waitForType('hello')
    expect(got.data).toEqual({ n: 1 })
    expect(got.metadata?.source?.plugin).toBe('alpha')
  })
})
