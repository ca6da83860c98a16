import { Buffer } from 'node:buffer'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createServer } from '../../src/server.ts'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'

const TOKEN = 'token'

describe('authentication', () => {
  it('rejects a wrong token without ever saying authenticated:false, then closes with 4001', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const peer = await RawPeer.connect(hub.url())
    const id = peer.send({ type: 'module:authenticate', data: { token: 'wrong' } })
    const error = await peer.waitForType('error')
    expect(error.data).toEqual({ message: 'invalid token' })
    expect(error.metadata?.event?.parentId).toBe(id)
    peer.send({ type: 'module:authenticate', data: { token: 'wrong' } })
    peer.send({ type: 'module:authenticate', data: { token: 'wrong' } })
    expect(await peer.waitForClose()).toEqual({ code: 4001, reason: 'authentication failed' })
    expect(peer.ofType('module:authenticated')).toHaveLength(0)
  })

  it('lets unauthenticated peers heartbeat and authenticate, nothing else', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const member = await RawPeer.connect(hub.url())
    await member.join('member', { token: TOKEN })
    const peer = await RawPeer.connect(hub.url())

    for (const type of ['module:announce', 'ui:configure', 'custom:event']) {
      const id = peer.send({ type, data: { name: 'x', moduleName: 'member', config: {} } })
      const error = await peer.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === id)
      expect(error.data).toEqual({ message: 'not authenticated' })
    }
    peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping', message: 'x' } })
    await peer.waitForType('transport:connection:heartbeat')
    // Routed events never reach it.
    member.send({ type: 'broadcast', data: {} })
    await settle()
    expect(peer.ofType('broadcast')).toHaveLength(0)
    expect(member.ofType('custom:event')).toHaveLength(0)
    expect(member.ofType('module:configure')).toHaveLength(0)
    expect(hub.server.registry.size).toBe(1)

    await peer.join('late', { token: TOKEN })
    member.send({ type: 'broadcast', data: {} })
    await peer.waitForType('broadcast')
  })

  it('accepts a token at the upgrade and refuses a wrong one with HTTP 401', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${hub.url()}?token=wrong`)
      ws.on('unexpected-response', (_, response) => resolve(response.statusCode ?? 0))
      ws.on('open', () => resolve(101))
    })
    expect(status).toBe(401)
    const byQuery = await RawPeer.connect(`${hub.url()}?token=${TOKEN}`)
    await byQuery.waitFor(e => e.type === 'module:authenticated' && e.data.authenticated === true)
    const byHeader = await RawPeer.connect(hub.url(), { headers: { authorization: `Bearer ${TOKEN}` } })
    await byHeader.waitForType('registry:modules:sync')
  })

  it('closes peers that never authenticate with 4001', async () => {
    const hub = await startHub({ auth: { token: TOKEN, timeoutMs: 100 } })
    const peer = await RawPeer.connect(hub.url())
    expect((await peer.waitForClose()).code).toBe(4001)
  })
})

describe('module registry', () => {
  it('accepts every identity shape and the extension alias, merging plugin labels under instance labels', async () => {
    const hub = await startHub()
    const watcher = await RawPeer.connect(hub.url())
    const nested = await RawPeer.connect(hub.url())
    await nested.join('nested', { identity: { id: 'n-1', kind: 'plugin', plugin: { id: 'nested-plugin', version: '1.0.0', labels: { a: 'plugin', b: 'plugin' } }, labels: { b: 'instance' } } })
    const ext = await RawPeer.connect(hub.url())
    ext.send({ type: 'extension:module:announce', data: { name: 'ext', identity: { id: 'e-1', extension: { id: 'ext-plugin', labels: { x: '1' } } } } })
    await watcher.waitFor(e => e.type === 'module:announced' && e.data.name === 'ext')
    const first = watcher.ofType('module:announced')[0]!
    expect(first.data).toEqual({ name: 'nested', identity: { plugin: 'nested-plugin', instanceId: 'n-1', version: '1.0.0', labels: { a: 'plugin', b: 'instance' } } })
    expect(watcher.ofType('module:announced')[1]!.data.identity).toEqual({ plugin: 'ext-plugin', instanceId: 'e-1', labels: { x: '1' } })
  })

  it('re-announcing under another name de-announces the old module', async () => {
    const hub = await startHub()
    const watcher = await RawPeer.connect(hub.url())
    const peer = await RawPeer.connect(hub.url())
    await peer.join('old', { index: 1 })
    await peer.join('new')
    const gone = await watcher.waitForType('module:de-announced')
    expect(gone.data).toMatchObject({ name: 'old', index: 1, reason: 're-announcing' })
    await watcher.waitFor(e => e.type === 'module:announced' && e.data.name === 'new')
    expect([...hub.server.registry.entries()].map(e => e.name)).toEqual(['new'])
  })

  it('sends the syncs asked for in one turn as one frame, after the answers, listing the whole registry', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const first = await RawPeer.connect(hub.url())
    const second = await RawPeer.connect(hub.url())
    // Each peer's authenticate and announce leave in one TCP segment, both peers' in one turn of
    // the hub, which reads every socket that is ready before it sends the syncs.
    for (const peer of [first, second])
      (peer.ws as unknown as { _socket: { cork: () => void } })._socket.cork()
    for (const [peer, name] of [[first, 'one'], [second, 'two']] as const) {
      peer.send({ type: 'module:authenticate', data: { token: TOKEN } })
      peer.send({ type: 'module:announce', data: { name, identity: { plugin: name, instanceId: `${name}-1` } } })
    }
    for (const peer of [first, second])
      (peer.ws as unknown as { _socket: { uncork: () => void } })._socket.uncork()

    for (const peer of [first, second]) {
      const sync = await peer.waitForType('registry:modules:sync')
      expect((sync.data.modules as Array<{ name: string }>).map(m => m.name).sort()).toEqual(['one', 'two'])
      expect(peer.received.map(e => e.type).indexOf('module:authenticated')).toBeLessThan(peer.received.indexOf(sync))
      expect(sync.metadata?.event?.parentId).toBeUndefined()
    }
    await settle(100)
    // One sync each, not one per authenticate and announce.
    expect(first.ofType('registry:modules:sync')).toHaveLength(1)
    expect(second.ofType('registry:modules:sync')).toHaveLength(1)
  })

  it('rejects an announce without a name', async () => {
    const hub = await startHub()
    const peer = await RawPeer.connect(hub.url())
    peer.send({ type: 'module:announce', data: { identity: { plugin: 'x', instanceId: 'y' } } })
    expect((await peer.waitForType('error')).data).toEqual({ message: 'invalid event format' })
  })

  it('delivers ui:configure to the module, or says it is not found', async () => {
    const hub = await startHub()
    const ui = await RawPeer.connect(hub.url())
    await ui.join('ui')
    const worker = await RawPeer.connect(hub.url())
    await worker.join('worker', { index: 2 })
    const id = ui.send({ type: 'ui:configure', data: { moduleName: 'worker', moduleIndex: 2, config: { speed: 3 } } })
    const configure = await worker.waitForType('module:configure')
    expect(configure.data).toEqual({ config: { speed: 3 } })
    expect(configure.metadata?.event?.parentId).toBe(id)
    ui.send({ type: 'ui:configure', data: { moduleName: 'worker', moduleIndex: 5, config: {} } })
    expect((await ui.waitForType('error')).data.message).toBe('module not found, it hasn\'t announced itself or the name is incorrect')
  })
})

describe('bad input', () => {
  it('answers garbage and bad envelopes with errors, keeps the socket open and everyone else unaffected', async () => {
    const hub = await startHub()
    const bad = await RawPeer.connect(hub.url())
    await bad.join('bad')
    const good = await RawPeer.connect(hub.url())
    await good.join('good')

    bad.sendRaw('{not json')
    expect((await bad.waitForType('error')).data.message).toMatch(/^invalid JSON, error: /)
    for (const frame of ['[]', '42', 'null', '{"type":"x"}', '{"type":"x","data":[]}', '{"type":"x","data":null}', '{"type":"","data":{}}', '{"json":{"type":"x","data":{},"route":{"destinations":[7]}}}', '{"type":"x","data":{"destinations":[{"type":"nope"}]}}', '{"type":"x","data":{},"route":{"destinations":[{"type":"and","all":[{"type":"glob"}]}]}}']) {
      bad.sendRaw(frame)
    }
    await bad.waitFor(() => bad.ofType('error').filter(e => e.data.message === 'invalid event format').length === 10)
    bad.sendRaw(Buffer.from([0xFF, 0xFE, 0x00]))
    await bad.waitFor(() => bad.ofType('error').length === 12)

    // Plain JSON is accepted inbound, and the socket still routes.
    bad.sendRaw(JSON.stringify({ type: 'still-here', data: { ok: true } }))
    expect((await good.waitForType('still-here')).data).toEqual({ ok: true })
    good.send({ type: 'reply', data: {} })
    await bad.waitForType('reply')
    expect(bad.closed).toBeUndefined()
  })

  it('answers an invalid event with its id as parentId, whatever made it invalid', async () => {
    const hub = await startHub()
    const peer = await RawPeer.connect(hub.url())
    await peer.join('peer')
    const frames = [
      '{"type":"x","data":[1,2],"metadata":{"event":{"id":"e1"}}}',
      '{"json":{"type":"x","data":[1,2],"metadata":{"event":{"id":"e2"}}}}',
      '{"type":"module:announce","data":{"name":7},"metadata":{"event":{"id":"e3"}}}',
      '{"type":"transport:connection:heartbeat","data":{"kind":"nope"},"metadata":{"event":{"id":"e4"}}}',
    ]
    for (const frame of frames)
      peer.sendRaw(frame)
    await peer.waitFor(() => peer.ofType('error').length === frames.length)
    expect(peer.ofType('error').map(e => [e.metadata?.event?.parentId, e.data.message])).toEqual(['e1', 'e2', 'e3', 'e4'].map(id => [id, 'invalid event format']))
  })

  it('closes a peer that sends an oversized frame, and only that peer', async () => {
    const hub = await startHub({ limits: { maxPayloadBytes: 1024 } })
    const big = await RawPeer.connect(hub.url())
    const other = await RawPeer.connect(hub.url())
    await other.join('other')
    big.sendRaw(JSON.stringify({ type: 'x', data: { blob: 'x'.repeat(4096) } }))
    expect([1009, 4009]).toContain((await big.waitForClose()).code)
    other.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping', message: 'x' } })
    await other.waitForType('transport:connection:heartbeat')
  })

  it('closes with 4009 when the host did not limit the frame size itself', async () => {
    // Same hooks, but the ws-level limit lifted: the hub's own check must catch it.
    const server = createServer({ logger: { level: 'silent' }, env: {}, limits: { maxPayloadBytes: 1024 } })
    const { listenHub } = await import('../../src/listen.ts')
    server.websocket.serverOptions.maxPayload = 10 * 1024 * 1024
    const listener = await listenHub(server, { port: 0, env: {} })
    try {
      const peer = await RawPeer.connect(`ws://127.0.0.1:${listener.port}/ws`)
      peer.sendRaw(JSON.stringify({ type: 'x', data: { blob: 'é'.repeat(600) } }))
      expect(await peer.waitForClose()).toEqual({ code: 4009, reason: 'message too big' })
    }
    finally {
      await listener.close()
    }
  })

  it('answers WebSocket requests to any other path with 404', async () => {
    const hub = await startHub()
    for (const path of ['/', '/other', '/ws/extra', '/wss']) {
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(hub.url(path))
        ws.on('unexpected-response', (_, response) => resolve(response.statusCode ?? 0))
        ws.on('open', () => resolve(101))
        ws.on('error', () => resolve(-1))
      })
      expect(status, path).toBe(404)
    }
  })
})

describe('heartbeats', () => {
  it('marks a silent module unhealthy, then closes it with 4000 and de-announces it', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 300 } })
    const watcher = await RawPeer.connect(hub.url())
    await watcher.join('watcher')
    // autoPong off: this peer answers nothing, not even native pings (a half-open peer).
    const silent = await RawPeer.connect(hub.url(), { autoPong: false })
    await silent.join('silent')
    const keepAlive = setInterval(() => watcher.sendRaw('ping'), 50)
    try {
      const unhealthy = await watcher.waitForType('registry:modules:health:unhealthy', 3000)
      expect(unhealthy.data).toMatchObject({ name: 'silent', reason: 'heartbeat late' })
      expect(await silent.waitForClose(3000)).toEqual({ code: 4000, reason: 'heartbeat expired' })
      const gone = await watcher.waitForType('module:de-announced')
      expect(gone.data).toMatchObject({ name: 'silent', reason: 'heartbeat expired' })
      expect(watcher.closed).toBeUndefined()
      expect([...hub.server.registry.entries()].map(e => e.name)).toEqual(['watcher'])
    }
    finally {
      clearInterval(keepAlive)
    }
  })

  it('reports a late module healthy again when it speaks', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 300 } })
    const watcher = await RawPeer.connect(hub.url())
    await watcher.join('watcher')
    const late = await RawPeer.connect(hub.url(), { autoPong: false })
    await late.join('late')
    const keepAlive = setInterval(() => watcher.sendRaw('ping'), 50)
    try {
      await watcher.waitForType('registry:modules:health:unhealthy', 3000)
      late.sendRaw('pong')
      const healthy = await watcher.waitForType('registry:modules:health:healthy')
      expect(healthy.data).toMatchObject({ name: 'late' })
      expect(late.closed).toBeUndefined()
    }
    finally {
      clearInterval(keepAlive)
    }
  })

  it('keeps silent peers that answer the hub\'s native pings', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 200 } })
    const watcher = await RawPeer.connect(hub.url(), { autoPong: true })
    await watcher.join('watcher')
    const quiet = await RawPeer.connect(hub.url()) // ws answers pings by default
    await quiet.join('quiet')
    await settle(900)
    expect(quiet.closed).toBeUndefined()
    expect(watcher.closed).toBeUndefined()
    expect(hub.server.registry.size).toBe(2)
  })
})

describe('options', () => {
  it('rejects invalid values at start-up with a message naming them', () => {
    expect(() => createServer({ env: { HEARTBEAT_TIMEOUT_MS: 'soon' } })).toThrow('Invalid HEARTBEAT_TIMEOUT_MS: "soon"')
    expect(() => createServer({ env: { MAX_PAYLOAD_BYTES: '-1' } })).toThrow('Invalid MAX_PAYLOAD_BYTES')
    expect(() => createServer({ env: { LOG_LEVEL: 'loud' } })).toThrow('Invalid LOG_LEVEL: "loud"')
    expect(() => createServer({ env: { LOG_FORMAT: 'xml' } })).toThrow('Invalid LOG_FORMAT')
    expect(() => createServer({ heartbeat: { readTimeout: 0 }, env: {} })).toThrow('Invalid HEARTBEAT_TIMEOUT_MS: 0')
  })

  it('reads env, with explicit options winning', () => {
    const env = { SERVER_INSTANCE_ID: 'from-env', AUTHENTICATION_TOKEN: 'env-token', HEARTBEAT_TIMEOUT_MS: '1234', LOG_LEVEL: 'silent' }
    const fromEnv = createServer({ env }).hub.options
    expect(fromEnv.instanceId).toBe('from-env')
    expect(fromEnv.auth.tokens).toEqual(['env-token'])
    expect(fromEnv.heartbeat.readTimeout).toBe(1234)
    fromEnv.logger.level = 0
    const explicit = createServer({ env, instanceId: 'mine', auth: { token: 'mine' }, heartbeat: { readTimeout: 99 } }).hub.options
    expect(explicit.instanceId).toBe('mine')
    expect(explicit.auth.tokens).toEqual(['mine'])
    expect(explicit.heartbeat.readTimeout).toBe(99)
  })
})
