import type { WireEvent } from '../helpers/hub.ts'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { airiGateway } from '../../src/protocol/airi-gateway.ts'
import { thymianGateway } from '../../src/protocol/thymian.ts'
import { announced } from '../helpers/cluster.ts'
import { RawPeer, settle, startHub, upgradeStatus } from '../helpers/hub.ts'
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
    // Thymian has no error frame: an event the hub refuses closes the plugin, saying why.
    const forger = await ThymianPlugin.start(hub.url('/thymian'), 'forger')
    forger.send({ type: 'emit', name: 'registry:modules:sync', payload: {} })
    expect(await forger.waitForClose()).toEqual({ code: 1008, reason: 'registry:modules:sync: reserved event type' })

    const last = await ThymianPlugin.start(hub.url('/thymian'), 'last')
    await hub.close()
    expect(await last.waitForClose()).toMatchObject({ code: 1001 })
  })
})

describe('thymian: actions', () => {
  it('a hub request of an action it handles arrives as action; actionReply / actionError answer the requester only', async () => {
    const hub = await startHub()
    const requester = await RawPeer.connect(hub.url())
    await requester.join('editor')
    const bystander = await RawPeer.connect(hub.url())
    await bystander.join('bystander')
    const plugin = await ThymianPlugin.start(hub.url('/thymian'), 'linter', { onActions: ['lint.run'] })
    plugin.handle('lint.run', ({ file }) => {
      if (file === 'bad')
        throw new Error('cannot lint')
      return `linted ${file}`
    })
    await requester.waitFor(announced('linter'))

    const ask = (data: Record<string, unknown>, type = 'lint.run'): string => requester.send({ type, data, route: { destinations: ['plugin:linter'], reply: { timeoutMs: 2000 } } })
    const ok = ask({ file: 'a.ts' })
    expect(await plugin.waitFor(m => m.type === 'action' && m.id === ok)).toEqual({ type: 'action', name: 'lint.run', id: ok, payload: { file: 'a.ts' } })
    expect(await requester.waitFor(answering(ok))).toMatchObject({ type: 'lint.run', data: { payload: 'linted a.ts' }, metadata: { source: { plugin: 'linter' } } })
    const bad = ask({ file: 'bad' })
    expect(await requester.waitFor(answering(bad))).toMatchObject({ type: 'error', data: { message: 'cannot lint', name: 'HandlerError' } })
    // A request it does not handle is refused at once, not at the timeout.
    const other = ask({}, 'lint.other')
    expect(await requester.waitFor(answering(other))).toMatchObject({ type: 'error', data: { message: 'no handler for lint.other' } })
    expect(plugin.ofType('action').map(m => m.name)).toEqual(['lint.run', 'lint.run'])
    // An answer to nothing it was asked is dropped, not routed.
    plugin.send({ type: 'actionReply', correlationId: ok, name: 'lint.run', payload: 'again' })
    plugin.send({ type: 'actionReply', correlationId: 'made-up', name: 'lint.run', payload: 'stray' })
    await settle(100)
    expect(requester.ofType('lint.run')).toHaveLength(1)
    expect(bystander.ofType('lint.run')).toEqual([])
  })

  it('a Phoenix push with payload.reply gets the plugin\'s actionReply in its phx_reply', async () => {
    const hub = await startHub()
    const plugin = await ThymianPlugin.start(hub.url('/thymian'), 'linter', { onActions: ['lint.run'] })
    plugin.handle('lint.run', ({ file }) => ({ file, problems: 0 }))
    const phoenix = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await phoenix.request(['1', '1', 'plugin:editor', 'phx_join', {}])
    const reply = await phoenix.request(['1', '2', 'plugin:editor', 'lint.run', { file: 'b.ts', destinations: ['plugin:linter'], reply: true }])
    expect(reply[4]).toEqual({ status: 'ok', response: { file: 'b.ts', problems: 0 } })
  })
})

describe('thymian: emitAction', () => {
  /** Two Thymian handlers and a native consumer of `core.analyze`, each answering with its own part. */
  async function handlers(): Promise<{ url: string, native: RawPeer }> {
    const hub = await startHub()
    const url = hub.url('/thymian')
    const native = await RawPeer.connect(hub.url())
    await native.join('native-analyzer')
    const a = await ThymianPlugin.start(url, 'plugin-a', { onActions: ['core.analyze'] })
    a.handle('core.analyze', ({ n }) => ({ found: ['a'], by: { a: n } }))
    const b = await ThymianPlugin.start(url, 'plugin-b', { onActions: ['core.analyze'] })
    b.handle('core.analyze', ({ n }) => ({ found: ['b'], by: { b: n } }))
    native.send({ type: 'module:consumer:register', data: { event: 'core.analyze' } })
    native.ws.on('message', () => {
      for (const request of native.ofType('core.analyze').splice(0))
        native.send({ type: 'core.analyze', data: { found: ['native'], by: { native: request.data.n } }, metadata: { event: { parentId: request.metadata!.event!.id } } })
    })
    await native.waitFor(announced('plugin-b'))
    return { url, native }
  }

  it('collect, deep-merge and first combine the replies of every handler (Thymian, native consumer)', async () => {
    const { url } = await handlers()
    const caller = await ThymianPlugin.start(url, 'caller')
    const collected = await caller.emitAction('c1', 'core.analyze', { n: 1 }, { strategy: 'collect' })
    expect(collected).toMatchObject({ type: 'emitActionResult', correlationId: 'c1', name: 'core.analyze' })
    expect(collected.payload).toHaveLength(3)
    expect(collected.payload).toEqual(expect.arrayContaining([{ found: ['a'], by: { a: 1 } }, { found: ['b'], by: { b: 1 } }, { found: ['native'], by: { native: 1 } }]))
    // collect is Thymian's default strategy.
    expect((await caller.emitAction('c2', 'core.analyze', { n: 2 })).payload).toHaveLength(3)

    const merged = await caller.emitAction('m1', 'core.analyze', { n: 3 }, { strategy: 'deep-merge' })
    expect(merged.type).toBe('emitActionResult')
    expect(merged.payload.by).toEqual({ a: 3, b: 3, native: 3 })
    expect([...merged.payload.found].sort()).toEqual(['a', 'b', 'native'])

    const first = await caller.emitAction('f1', 'core.analyze', { n: 4 }, { strategy: 'first' })
    expect(first.type).toBe('emitActionResult')
    expect(Object.values(first.payload.by)).toEqual([4])
  })

  it('partial replies at the timeout; none is ActionTimeoutError; a handler error fails it; no handler is NoHandlerRegisteredError', async () => {
    const hub = await startHub()
    const url = hub.url('/thymian')
    const quick = await ThymianPlugin.start(url, 'quick', { onActions: ['slow.job', 'fail.job'] })
    quick.handle('slow.job', () => 'quick')
    quick.handle('fail.job', () => {
      throw new Error('broken')
    })
    await ThymianPlugin.start(url, 'silent', { onActions: ['slow.job', 'silent.job'] })
    const caller = await ThymianPlugin.start(url, 'caller')
    await settle(50)

    expect(await caller.emitAction('t1', 'slow.job', {}, { strategy: 'collect', timeout: 300 })).toEqual({ type: 'emitActionResult', correlationId: 't1', name: 'slow.job', payload: ['quick'] })
    expect(await caller.emitAction('t2', 'silent.job', 'x', { timeout: 200 })).toMatchObject({ type: 'emitActionError', correlationId: 't2', error: { name: 'ActionTimeoutError' } })
    expect(await caller.emitAction('e1', 'fail.job', {})).toEqual({ type: 'emitActionError', correlationId: 'e1', name: 'fail.job', error: { name: 'HandlerError', message: 'broken' } })
    expect(await caller.emitAction('n1', 'nobody.job', {})).toEqual({ type: 'emitActionError', correlationId: 'n1', name: 'nobody.job', error: { name: 'NoHandlerRegisteredError', message: 'no handler for action "nobody.job"' } })
    // The silent handler was asked and never answered: its late reply changes nothing.
    expect(caller.ofType('emitActionResult').concat(caller.ofType('emitActionError'))).toHaveLength(4)
  })

  it('a handler that leaves fails the action at once; the pending-requests limit bounds the fan-out', async () => {
    const hub = await startHub({ limits: { maxPendingRequestsPerPeer: 1 } })
    const url = hub.url('/thymian')
    const leaving = await ThymianPlugin.start(url, 'leaving', { onActions: ['job'] })
    leaving.ws.on('message', data => JSON.parse(data.toString()).type === 'action' && leaving.ws.close())
    const caller = await ThymianPlugin.start(url, 'caller')
    await settle(50)
    expect(await caller.emitAction('g1', 'job', {}, { timeout: 5000 })).toEqual({ type: 'emitActionError', correlationId: 'g1', name: 'job', error: { name: 'Error', message: 'responder gone' } })

    const a = await ThymianPlugin.start(url, 'a', { onActions: ['busy'] })
    a.handle('busy', () => 'a')
    const b = await ThymianPlugin.start(url, 'b', { onActions: ['busy'] })
    b.handle('busy', () => 'b')
    await settle(50)
    // One request may be pending at once: the second handler is refused, the first answers.
    const result = await caller.emitAction('l1', 'busy', {}, { strategy: 'collect' })
    expect(result.type).toBe('emitActionResult')
    expect(result.payload).toHaveLength(1)
  })

  it('a native request to a consumer-registered Thymian action and a Thymian emitAction to a native handler', async () => {
    const hub = await startHub()
    const native = await RawPeer.connect(hub.url())
    await native.join('native')
    native.send({ type: 'module:consumer:register', data: { event: 'native.sum' } })
    native.ws.on('message', () => {
      for (const request of native.ofType('native.sum').splice(0))
        native.send({ type: 'native.sum', data: { payload: request.data.a + request.data.b }, metadata: { event: { parentId: request.metadata!.event!.id } } })
    })
    const plugin = await ThymianPlugin.start(hub.url('/thymian'), 'calc', { onActions: ['calc.double'] })
    plugin.handle('calc.double', n => n * 2)
    await native.waitFor(announced('calc'))
    expect(await plugin.emitAction('s1', 'native.sum', { a: 2, b: 3 }, { strategy: 'first' })).toEqual({ type: 'emitActionResult', correlationId: 's1', name: 'native.sum', payload: 5 })
    // The plugin's actions are consumers: a native request by delivery finds it without naming it.
    const id = native.send({ type: 'calc.double', data: { payload: 21 }, route: { delivery: { mode: 'consumer' }, reply: true } })
    expect(await native.waitFor(answering(id))).toMatchObject({ type: 'calc.double', data: { payload: 42 } })
  })
})

/** A port free right now. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('thymian: a port of its own', () => {
  it('serves / of THYMIAN_PORT as the reference client dials it (ws://host:port); other paths 404, plain HTTP 426', async () => {
    const port = await freePort()
    const hub = await startHub({ gateways: [airiGateway(), thymianGateway({ env: { THYMIAN_PORT: String(port) } })] })
    const native = await RawPeer.connect(hub.url())
    await native.join('observer')
    const plugin = await ThymianPlugin.start(`ws://127.0.0.1:${port}`, 'remote', { onEvents: ['ping'] })
    await native.waitFor(announced('remote'))
    native.send({ type: 'ping', data: { n: 1 } })
    expect(await plugin.waitFor(m => m.type === 'event')).toEqual({ type: 'event', name: 'ping', payload: { n: 1 } })
    // /thymian on the hub's port is the same gateway.
    const other = await ThymianPlugin.connect(hub.url('/thymian'))
    expect(await other.register('remote')).toMatchObject({ ok: false, reason: 'Name already in use.' })
    expect(await upgradeStatus(`ws://127.0.0.1:${port}/thymian`)).toBe(404)
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(426)
    await hub.close()
    expect(await plugin.waitForClose()).toMatchObject({ code: 1001 })
  })

  it('a port in use is an error naming it', async () => {
    const first = await startHub({ gateways: [thymianGateway({ port: await freePort() })] })
    const taken = first.server.rootPorts[0]!.port
    await expect(startHub({ gateways: [thymianGateway({ port: taken })] })).rejects.toThrow(`Port ${taken}`)
  })
})
