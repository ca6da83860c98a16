import { Buffer } from 'node:buffer'
import { describe, expect, it } from 'vitest'
import { RawPeer, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  expect(response.status).toBe(200)
  return response.text()
}

describe('metrics and readiness of an embedded hub', () => {
  it('labels the first N event types by name and the rest as "other"', async () => {
    const hub = await startHub({ metrics: { maxEventTypes: 2 } })
    const alpha = await RawPeer.connect(hub.url())
    const beta = await RawPeer.connect(hub.url())
    await alpha.join('alpha')
    await beta.join('beta')
    for (const type of ['a', 'b', 'c', 'd', 'a'])
      alpha.send({ type, data: {} })
    await beta.waitFor(() => beta.received.filter(e => /^[a-d]$/.test(e.type)).length === 5)

    const metrics = await scrape(hub.port)
    expect(sample(metrics, 'hub_events_received_total{type="a"}')).toBe(2)
    expect(sample(metrics, 'hub_events_received_total{type="b"}')).toBe(1)
    expect(sample(metrics, 'hub_events_received_total{type="other"}')).toBe(2)
    expect(sample(metrics, 'hub_events_delivered_total{type="other"}')).toBe(2)
    expect(metrics).not.toContain('type="c"')
    // Built-in types do not use up the budget.
    expect(sample(metrics, 'hub_events_received_total{type="module:announce"}')).toBe(2)
  })

  it('counts a peer closed for silence', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 100 } })
    const silent = await RawPeer.connect(hub.url(), { autoPong: false })
    await silent.join('silent')
    expect((await silent.waitForClose()).code).toBe(4000)
    expect(sample(await scrape(hub.port), 'hub_heartbeat_expired_total')).toBe(1)
  })

  it('counts errors the hub handles itself, by stage', async () => {
    const errors: string[] = []
    const hub = await startHub({ limits: { maxPayloadBytes: 64 }, onError: (_, { stage }) => errors.push(stage) })
    const broken = await RawPeer.connect(hub.url())
    broken.ws.send(Buffer.from([0x7B, 0xFF, 0x7D]), { binary: false }) // the socket layer refuses invalid UTF-8 (1007) and reports to the hook
    expect((await broken.waitForClose()).code).toBe(1007)
    // A frame over the limit is the peer's fault, not the hub's: counted as such, not handed to onError.
    const big = await RawPeer.connect(hub.url())
    big.sendRaw('x'.repeat(100))
    expect((await big.waitForClose()).code).toBe(1009)
    const metrics = await scrape(hub.port)
    expect(errors).toEqual(['hook'])
    expect(sample(metrics, 'hub_errors_total{reason="hook"}')).toBe(1)
    expect(sample(metrics, 'hub_errors_total{reason="payload_too_large"}')).toBe(1)
  })

  it('is not ready while a registered readiness check fails', async () => {
    const hub = await startHub()
    let connected = false
    hub.server.hub.readiness.set('backplane', () => connected)
    const notReady = await fetch(`http://127.0.0.1:${hub.port}/readyz`)
    expect(notReady.status).toBe(503)
    expect(await notReady.json()).toEqual({ status: 'not ready', checks: { listening: true, backplane: false } })
    connected = true
    expect((await fetch(`http://127.0.0.1:${hub.port}/readyz`)).status).toBe(200)
  })

  it('serves no /metrics when disabled', async () => {
    const hub = await startHub({ metrics: { enabled: false } })
    expect((await fetch(`http://127.0.0.1:${hub.port}/metrics`)).status).toBe(404)
    expect((await fetch(`http://127.0.0.1:${hub.port}/healthz`)).status).toBe(200)
  })
})
