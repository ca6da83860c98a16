import { describe, expect, it } from 'vitest'
import { RawPeer } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'
import { freePort, runCli } from '../helpers/process.ts'

describe('hub-server endpoints', () => {
  it('answers /healthz, /readyz and /metrics with what real traffic did', async () => {
    const port = await freePort()
    const hub = runCli(['--port', String(port), '--token', 't', '--metrics-token', 'scrape'])
    await hub.waitForOutput(/listening on/)
    const http = `http://127.0.0.1:${port}`

    const alpha = await RawPeer.connect(`ws://127.0.0.1:${port}/ws`)
    const beta = await RawPeer.connect(`ws://127.0.0.1:${port}/ws`)
    const stranger = await RawPeer.connect(`ws://127.0.0.1:${port}/ws`)
    await alpha.join('alpha', { token: 't' })
    await beta.join('beta', { token: 't' })
    alpha.send({ type: 'chat:message', data: { text: 'hi' }, route: { destinations: ['plugin:beta'] } })
    alpha.send({ type: 'chat:message', data: { text: 'all' } })
    await beta.waitFor(() => beta.ofType('chat:message').length === 2)
    stranger.send({ type: 'module:authenticate', data: { token: 'wrong' } })
    await stranger.waitForType('error')

    const health = await fetch(`${http}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ status: 'ok' })

    const ready = await fetch(`${http}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: 'ready', checks: { listening: true } })

    expect((await fetch(`${http}/metrics`)).status).toBe(401)
    expect((await fetch(`${http}/metrics`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401)
    const response = await fetch(`${http}/metrics`, { headers: { authorization: 'Bearer scrape' } })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toContain('text/plain')
    const metrics = await response.text()
    expect(sample(metrics, 'hub_peers_connected')).toBe(3)
    expect(sample(metrics, 'hub_modules_announced')).toBe(2)
    expect(sample(metrics, 'hub_events_received_total{type="module:authenticate"}')).toBe(3)
    expect(sample(metrics, 'hub_events_received_total{type="module:announce"}')).toBe(2)
    expect(sample(metrics, 'hub_events_received_total{type="chat:message"}')).toBe(2)
    expect(sample(metrics, 'hub_events_delivered_total{type="chat:message"}')).toBe(2)
    expect(sample(metrics, 'hub_errors_total{reason="invalid_token"}')).toBe(1)
    expect(sample(metrics, 'hub_heartbeat_expired_total')).toBe(0)
    expect(sample(metrics, 'hub_routing_duration_seconds_count')).toBe(2)
    expect(sample(metrics, 'hub_routing_duration_seconds_bucket{le="+Inf"}')).toBe(2)
    expect(metrics).toMatch(/^# TYPE hub_routing_duration_seconds histogram$/m)
    expect(sample(metrics, 'process_resident_memory_bytes')).toBeGreaterThan(0)
  })
})
