import type { WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { announced } from '../helpers/cluster.ts'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { RawPhoenix } from '../helpers/phoenix.ts'
import { ThymianPlugin } from '../helpers/thymian.ts'

// Thymian remote plugins on `/thymian`, as raw frames the way Thymian's reference client sends
// them: `register {name, token?, onActions, onEvents}` on open, `ready` once acked, then
// `emit`, `emitAction` and `actionReply` / `actionError`.

const answering = (id: string) => (event: WireEvent) => event.metadata?.event?.parentId === id

describe('thymian: register, ready and events', () => {
  it('a ready plugin is announced (protocol=thymian); events go both ways, filtered by onEvents', async () => {
    const hub = await startHub()
    const native = await RawPeer.connect(hub.url())
    await native.join('observer')
    const plugin = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await plugin.register('linter', { onEvents: ['core.report', 'core.sample'] })).toEqual({ type: 'register-ack', ok: true, config: {} })
    // Registered is not announced: only ready is.
    await settle(50)
    expect(native.received.some(announced('linter'))).toBe(false)
    plugin.send({ type: 'ready' })
    const module = await native.waitFor(announced('linter'))
    expect(module.data.identity).toMatchObject({ plugin: 'linter', labels: { protocol: 'thymian' } })

    plugin.send({ type: 'emit', name: 'core.report', payload: { ok: true } })
    plugin.send({ type: 'emit', name: 'core.count', payload: 3 })
    expect(await native.waitForType('core.report')).toMatchObject({ data: { ok: true }, metadata: { source: { plugin: 'linter' } } })
    expect((await native.waitForType('core.count')).data).toEqual({ payload: 3 })

    native.send({ type: 'core.sample', data: { n: 1 } })
    native.send({ type: 'core.other', data: { n: 2 } })
    native.send({ type: 'core.report', data: { payload: 'wrapped' } })
    expect(await plugin.waitFor(m => m.type === 'event' && m.name === 'core.report')).toEqual({ type: 'event', name: 'core.report', payload: 'wrapped' })
    expect(plugin.ofType('event')).toEqual([
      { type: 'event', name: 'core.sample', payload: { n: 1 } },
      { type: 'event', name: 'core.report', payload: 'wrapped' },
    ])
  })

  it('events go both ways with a Phoenix channel', async () => {
    const hub = await startHub()
    const plugin = await ThymianPlugin.start(hub.url('/thymian'), 'linter', { onEvents: ['chat'] })
    const phoenix = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    expect((await phoenix.request(['1', '1', 'plugin:chatbot', 'phx_join', {}]))[4]).toMatchObject({ status: 'ok' })
    await phoenix.request(['1', '2', 'plugin:chatbot', 'chat', { text: 'hi' }])
    expect(await plugin.waitFor(m => m.type === 'event')).toEqual({ type: 'event', name: 'chat', payload: { text: 'hi' } })
    plugin.send({ type: 'emit', name: 'lint', payload: { errors: 0 } })
    expect((await phoenix.waitFor(f => f[3] === 'lint'))[4]).toEqual({ errors: 0 })
  })

  it('admission: a module token, a configured name, the hub token; bad token and duplicate names refused, then ready closes 1008', async () => {
    const hub = await startHub({ auth: { token: 'hub-token' }, modules: [{ name: 'secure', token: 'secure-token', options: { key: 'k1' }, required: true }, { name: 'open' }] })
    const status = async (): Promise<number> => (await fetch(`http://127.0.0.1:${hub.port}/readyz`)).status
    expect(await status()).toBe(503)

    const wrong = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await wrong.register('secure', { token: 'hub-token' })).toEqual({ type: 'register-ack', ok: false, reason: 'Invalid token.' })
    wrong.send({ type: 'ready' })
    expect(await wrong.waitForClose()).toMatchObject({ code: 1008 })

    const secure = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await secure.register('secure', { token: 'secure-token' })).toEqual({ type: 'register-ack', ok: true, config: { key: 'k1' } })
    secure.send({ type: 'ready' })
    await expect.poll(status).toBe(200)

    // A configured name without a token is admitted by name; a name not configured needs the hub's token.
    const open = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await open.register('open')).toMatchObject({ ok: true })
    const stranger = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await stranger.register('stranger')).toEqual({ type: 'register-ack', ok: false, reason: 'Invalid token.' })
    const known = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await known.register('stranger', { token: 'hub-token' })).toEqual({ type: 'register-ack', ok: true, config: {} })

    // Taken by a ready module, or by one registered and not yet ready.
    const twin = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await twin.register('secure', { token: 'secure-token' })).toEqual({ type: 'register-ack', ok: false, reason: 'Name already in use.' })
    const twin2 = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await twin2.register('open')).toEqual({ type: 'register-ack', ok: false, reason: 'Name already in use.' })
    twin2.send({ type: 'ready' })
    expect(await twin2.waitForClose()).toMatchObject({ code: 1008 })
  })

  it('a hub without a token admits any name with config {}', async () => {
    const hub = await startHub()
    const plugin = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await plugin.register('anything')).toEqual({ type: 'register-ack', ok: true, config: {} })
  })

  it('order and shape are enforced: not JSON 1003; out of order or invalid 1008; shutdown 1001', async () => {
    const hub = await startHub()
    const cases: Array<[string[], number, RegExp]> = [
      [['not json'], 1003, /JSON/],
      [[JSON.stringify({ type: 'ready' })], 1008, /ready not allowed before register/],
      [[JSON.stringify({ type: 'emit', name: 'x', payload: 1 })], 1008, /emit not allowed before register/],
      [[JSON.stringify({ type: 'register' })], 1008, /invalid register frame/],
      [[JSON.stringify({ type: 'nope' })], 1008, /invalid nope frame/],
      [[JSON.stringify([1, 2])], 1008, /invalid frame/],
      [[JSON.stringify({ type: 'register', name: 'a' }), JSON.stringify({ type: 'register', name: 'a' })], 1008, /register not allowed after registered/],
      [[JSON.stringify({ type: 'register', name: 'b' }), JSON.stringify({ type: 'emitAction', id: '1', name: 'x' })], 1008, /emitAction not allowed after registered/],
    ]
    for (const [frames, code, reason] of cases) {
      const plugin = await ThymianPlugin.connect(hub.url('/thymian'))
      for (const frame of frames)
        plugin.ws.send(frame)
      const closed = await plugin.waitForClose()
      expect(closed.code, frames.join(' ')).toBe(code)
      expect(closed.reason).toMatch(reason)
    }
    const ready = await ThymianPlugin.start(hub.url('/thymian'), 'ready-one')
    ready.send({ type: 'register', name: 'again' })
    expect(await ready.waitForClose()).toMatchObject({ code: 1008 })

    const last = await ThymianPlugin.start(hub.url('/thymian'), 'last')
    await hub.close()
    expect(await last.waitForClose()).toMatchObject({ code: 1001 })
  })
})
