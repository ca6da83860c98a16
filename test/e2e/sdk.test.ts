import { describe, expect, it } from 'vitest'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { sdkClient, syncListing } from '../helpers/sdk.ts'

describe('the real @proj-airi/server-sdk client', () => {
  it('authenticates, announces, sees every module and exchanges routed events', async () => {
    const hub = await startHub({ auth: { token: 'secret' } })
    const alpha = sdkClient(hub.url(), 'alpha', { token: 'secret' })
    await alpha.waitFor(e => e.type === 'module:authenticated' && e.data.authenticated === true)
    await alpha.waitFor(syncListing(['alpha']))
    const beta = sdkClient(hub.url(), 'beta', { token: 'secret', labels: { role: 'worker' } })
    const sync = await beta.waitFor(syncListing(['alpha', 'beta']))
    expect(sync.data.modules).toHaveLength(2)
    expect(sync.data.modules).toContainEqual({ name: 'alpha', identity: { plugin: 'alpha', instanceId: 'alpha-instance', labels: {} } })
    expect(sync.metadata?.source).toEqual({ plugin: 'hub-server', instanceId: hub.server.hub.options.instanceId })

    // alpha learns of beta by delta, not a re-sent full list.
    const announced = await alpha.waitFor(e => e.type === 'module:announced' && e.data.name === 'beta')
    expect(announced.data.identity).toEqual({ plugin: 'beta', instanceId: 'beta-instance', labels: { role: 'worker' } })
    expect(alpha.received.filter(e => e.type === 'registry:modules:sync')).toHaveLength(2)

    alpha.client.send({ type: 'input:text', data: { text: 'hi beta', at: new Date(0) } as never, route: { destinations: ['label:role=worker'] } } as never)
    const got = await beta.waitFor(e => e.type === 'input:text')
    expect(got.data.text).toBe('hi beta')
    expect(got.data.at).toEqual(new Date(0)) // superjson values survive the hop
    expect(got.metadata?.source).toEqual({ plugin: 'alpha', instanceId: 'alpha-instance', labels: {} })

    beta.client.send({ type: 'output:reply', data: { text: 'hi alpha' } } as never)
    expect((await alpha.waitFor(e => e.type === 'output:reply')).data.text).toBe('hi alpha')
    await settle()
    expect(alpha.received.filter(e => e.type === 'input:text')).toHaveLength(0) // no echo
    expect(beta.received.filter(e => e.type === 'output:reply')).toHaveLength(0)

    beta.client.close()
    const gone = await alpha.waitFor(e => e.type === 'module:de-announced')
    expect(gone.data).toMatchObject({ name: 'beta', reason: 'connection closed' })
    expect(hub.server.registry.size).toBe(1)
  })

  it('works with authentication off, announcing once although the client announces twice', async () => {
    const hub = await startHub()
    const watcher = await RawPeer.connect(hub.url())
    await watcher.waitForType('module:authenticated')
    const gamma = sdkClient(hub.url(), 'gamma')
    await gamma.waitFor(e => e.type === 'module:authenticated')
    await gamma.waitFor(syncListing(['gamma']))
    await watcher.waitFor(e => e.type === 'module:announced' && e.data.name === 'gamma')
    await settle(200)
    expect(watcher.ofType('module:announced')).toHaveLength(1)
    expect(hub.server.registry.size).toBe(1)
  })

  it('answers heartbeat pings with a pong naming the ping', async () => {
    const hub = await startHub()
    const peer = await RawPeer.connect(hub.url())
    const id = peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping', message: 'x', at: 1 } })
    const pong = await peer.waitForType('transport:connection:heartbeat')
    expect(pong.data).toMatchObject({ kind: 'pong', message: '💛' })
    expect(pong.metadata?.event?.parentId).toBe(id)
    peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'pong', message: 'x' } })
    await settle()
    expect(peer.ofType('transport:connection:heartbeat')).toHaveLength(1)
  })
})
