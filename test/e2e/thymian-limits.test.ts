import { describe, expect, it } from 'vitest'
import { thymianGateway } from '../../src/protocol/thymian.ts'
import { metric } from '../helpers/cluster.ts'
import { settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'
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

  it('refuses an emitAction whose id is longer than a name: it is held until every handler answered', async () => {
    const hub = await startHub()
    const silent = await ThymianPlugin.start(hub.url('/thymian'), 'silent', { onActions: ['slow.job'] })
    const caller = await ThymianPlugin.start(hub.url('/thymian'), 'caller')
    await until(() => hub.server.hub.consumers.handlers('slow.job').length > 0, 'the handler to register')
    const long = 'i'.repeat(1000)
    expect(await caller.emitAction(long, 'slow.job', {})).toEqual({ type: 'emitActionError', correlationId: long, name: 'slow.job', error: { name: 'Error', message: 'limit exceeded: id' } })
    await settle(50)
    expect(silent.ofType('action')).toEqual([])
  })
})
