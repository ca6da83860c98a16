import type { RawPeer } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { lineGateway } from '../../examples/line-gateway.ts'
import { airiGateway } from '../../src/protocol/airi-gateway.ts'
import { RawPeer as Peer, startHub, upgradeStatus } from '../helpers/hub.ts'

/** Waits for a line (a JSON frame of the line protocol) matching `predicate`, among all received. */
async function waitForLine(peer: RawPeer, predicate: (line: any) => boolean, timeoutMs = 5000): Promise<any> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const line = peer.frames.map(frame => JSON.parse(frame)).find(predicate)
    if (line)
      return line
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  throw new Error(`no matching line in ${JSON.stringify(peer.frames)}`)
}

// The README's "Write a gateway" example (examples/line-gateway.ts), served beside the AIRI one.
describe('a gateway of the embedder\'s own (examples/line-gateway.ts)', () => {
  it('gets the shared plumbing: token at the upgrade, 404 elsewhere, registry, routing both ways', async () => {
    const hub = await startHub({ auth: { token: 't' }, gateways: [airiGateway(), lineGateway()] })
    expect(await upgradeStatus(hub.url('/lines?token=wrong'))).toBe(401)
    expect(await upgradeStatus(hub.url('/lines'))).toBe(401)
    expect(await upgradeStatus(hub.url('/socket?token=t'))).toBe(404) // not in `gateways`

    const airi = await Peer.connect(hub.url())
    await airi.join('listener', { token: 't' })
    const lines = await Peer.connect(hub.url('/lines?token=t'))
    await waitForLine(lines, line => line.type === 'module:authenticated')
    lines.sendRaw(JSON.stringify({ type: 'announce', data: { name: 'notes' } }))
    await waitForLine(lines, line => line.ok === true)
    await airi.waitFor(event => event.type === 'module:announced' && event.data.name === 'notes')

    lines.sendRaw(JSON.stringify({ type: 'note:created', data: { text: 'hi' } }))
    const routed = await airi.waitForType('note:created')
    expect(routed.data).toEqual({ text: 'hi' })
    expect(routed.metadata?.source).toMatchObject({ plugin: 'notes' })
    await waitForLine(lines, line => line.delivered === 1)

    airi.send({ type: 'note:read', data: { by: 'listener' }, route: { destinations: ['notes'] } })
    expect(await waitForLine(lines, line => line.type === 'note:read')).toEqual({ type: 'note:read', data: { by: 'listener' } })

    lines.sendRaw('not json')
    await waitForLine(lines, line => line.error === 'invalid JSON')
    lines.sendRaw(JSON.stringify({ type: 'module:announced', data: {} }))
    await waitForLine(lines, line => line.error === 'reserved event type')

    await lines.close()
    await airi.waitFor(event => event.type === 'module:de-announced' && event.data.name === 'notes')
  })

  it('closes a socket over the frame size limit (1009 from the socket layer) and rate-limits it, as every gateway does', async () => {
    const hub = await startHub({ limits: { maxPayloadBytes: 1024, eventsPerSec: 1, eventsBurst: 1 }, gateways: [lineGateway()] })
    const chatty = await Peer.connect(hub.url('/lines'))
    for (let i = 0; i < 3; i++)
      chatty.sendRaw(JSON.stringify({ type: 'tick', data: {} }))
    await waitForLine(chatty, line => line.error === 'rate limited')
    const big = await Peer.connect(hub.url('/lines'))
    big.sendRaw(JSON.stringify({ type: 'big', data: { text: 'x'.repeat(2000) } }))
    expect((await big.waitForClose()).code).toBe(1009)
  })
})
