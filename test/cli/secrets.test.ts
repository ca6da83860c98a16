import { Buffer } from 'node:buffer'
import { describe, expect, it } from 'vitest'
import { RawPeer, upgradeStatus } from '../helpers/hub.ts'
import { freePort, runCli } from '../helpers/process.ts'

describe('secrets', () => {
  it('never logs a token, right or wrong (query, header, subprotocol, frame, refused upgrade), nor labels a metric with one', async () => {
    const port = await freePort()
    // Every secret starts with `tok-`, so one search finds any of them.
    const hub = runCli(['--port', String(port), '--token', 'tok-right', '--metrics-token', 'tok-scrape'], {
      env: { LOG_LEVEL: 'trace', LOG_FORMAT: 'json' },
    })
    await hub.waitForOutput(/listening on/)
    const ws = `ws://127.0.0.1:${port}`

    expect(await upgradeStatus(`${ws}/ws?token=tok-wrong-query`)).toBe(401)
    expect(await upgradeStatus(`${ws}/ws`, { headers: { authorization: 'Bearer tok-wrong-header' } })).toBe(401)
    expect(await upgradeStatus(`${ws}/ws?token=tok-right`, { origin: 'https://evil.example' })).toBe(403)
    expect(await upgradeStatus(`${ws}/socket/websocket?vsn=2.0.0&api_key=tok-wrong-phoenix`)).toBe(403)
    const bearer = `base64url.bearer.phx.${Buffer.from('tok-wrong-subprotocol').toString('base64url')}`
    expect(await upgradeStatus(`${ws}/socket/websocket?vsn=2.0.0`, {}, ['phoenix', bearer])).toBe(403)
    expect(await upgradeStatus(`${ws}/ws?token=tok-right`)).toBe(101)

    const peer = await RawPeer.connect(`${ws}/ws`)
    peer.send({ type: 'module:authenticate', data: { token: 'tok-wrong-frame' } })
    expect((await peer.waitForType('error')).data.message).toBe('invalid token')
    await peer.join('peer', { token: 'tok-right' })
    peer.send({ type: 'chat', data: { token: 'tok-in-data' } })

    expect((await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer tok-wrong-scrape' } })).status).toBe(401)
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer tok-scrape' } })).text()
    expect(metrics).toContain('hub_errors_total{reason="origin_refused"} 1')
    expect(metrics).not.toContain('tok-')

    await peer.close()
    hub.child.kill('SIGTERM')
    expect(await hub.exitCode()).toBe(0)
    // The refusal is logged with the origin, the address and the path, not the query.
    expect(hub.output).toContain('refused a WebSocket upgrade to /ws from 127.0.0.1: origin \\"https://evil.example\\" is not allowed')
    expect(hub.output).not.toContain('tok-')
  })
})
