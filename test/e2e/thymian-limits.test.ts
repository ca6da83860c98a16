import { describe, expect, it } from 'vitest'
import { thymianGateway } from '../../src/protocol/thymian.ts'
import { metric } from '../helpers/cluster.ts'
import { startHub } from '../helpers/hub.ts'
import { ThymianPlugin } from '../helpers/thymian.ts'

describe('thymian: what one plugin may hold', () => {
  it('refuses a register naming more events than thymian.maxEvents, counted; one at the bound is acked', async () => {
    const hub = await startHub({ gateways: [thymianGateway({ maxEvents: 3 })] })
    const greedy = await ThymianPlugin.connect(hub.url('/thymian'))
    const events = Array.from({ length: 50_000 }, (_, i) => `e${i}`)
    expect(await greedy.register('greedy', { onEvents: events })).toEqual({ type: 'register-ack', ok: false, reason: 'Too many events (at most 3).' })
    expect(await metric(hub, 'hub_errors_total{reason="too_many_subscriptions"}')).toBe(1)
    const modest = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await modest.register('modest', { onEvents: events.slice(0, 3) })).toEqual({ type: 'register-ack', ok: true, config: {} })
  })
})
