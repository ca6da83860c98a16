import type { Buffer } from 'node:buffer'
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { listenHub } from '../../src/listen.ts'
import { createServer } from '../../src/server.ts'
import { onCleanup, RawPeer, settle, startHub, upgradeStatus } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'
import { RawPhoenix, until } from '../helpers/phoenix.ts'

async function metrics(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
}

describe('connection limits', () => {
  it('refuses upgrades past MAX_PEERS with 503 on every gateway, and admits again once a socket closes', async () => {
    const hub = await startHub({ limits: { maxPeers: 3 } })
    const first = await RawPeer.connect(hub.url())
    await RawPeer.connect(hub.url())
    await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    expect(await upgradeStatus(hub.url())).toBe(503)
    expect(await upgradeStatus(hub.url('/socket/websocket?vsn=2.0.0'))).toBe(503)

    await first.close()
    await until(() => hub.server.hub.admission.sockets === 2, 'the socket to be released')
    expect(await upgradeStatus(hub.url())).toBe(101)
    const exposition = await metrics(hub.port)
    expect(sample(exposition, 'hub_connections_refused_total{reason="max_peers"}')).toBe(2)
    expect(sample(exposition, 'hub_sockets_open')).toBe(3)
  })

  it('refuses unauthenticated sockets past MAX_PENDING_PER_ADDRESS with 429, never ones that bring a token', async () => {
    const hub = await startHub({ auth: { token: 't' }, limits: { maxPendingPerAddress: 2 } })
    const pending = await RawPeer.connect(hub.url())
    await RawPeer.connect(hub.url())
    expect(await upgradeStatus(hub.url())).toBe(429)
    expect(await upgradeStatus(hub.url('/ws?token=t'))).toBe(101)
    expect(await upgradeStatus(hub.url(), { headers: { authorization: 'Bearer t' } })).toBe(101)

    // Authenticating in-band frees its slot.
    pending.send({ type: 'module:authenticate', data: { token: 't' } })
    await pending.waitForType('module:authenticated')
    expect(await upgradeStatus(hub.url())).toBe(101)
    expect(await upgradeStatus(hub.url())).toBe(429)
    expect(sample(await metrics(hub.port), 'hub_connections_refused_total{reason="pending_per_address"}')).toBe(2)
  })

  it('counts pending sockets per X-Forwarded-For client behind a trusted proxy, by the address the proxy added', async () => {
    const hub = await startHub({ auth: { token: 't' }, limits: { maxPendingPerAddress: 1 }, trustProxy: true })
    const from = (xff: string): WebSocket.ClientOptions => ({ headers: { 'x-forwarded-for': xff } })
    expect(await upgradeStatus(hub.url(), from('10.0.0.1'))).toBe(101)
    expect(await upgradeStatus(hub.url(), from('10.0.0.1'))).toBe(429)
    expect(await upgradeStatus(hub.url(), from('10.0.0.2'))).toBe(101)
    // A client cannot pass as another by prepending addresses of its own.
    expect(await upgradeStatus(hub.url(), from('10.0.0.9, 10.0.0.1'))).toBe(429)

    // Without trustProxy the header is ignored: every socket here comes from 127.0.0.1.
    const direct = await startHub({ auth: { token: 't' }, limits: { maxPendingPerAddress: 1 } })
    expect(await upgradeStatus(direct.url(), from('10.0.0.1'))).toBe(101)
    expect(await upgradeStatus(direct.url(), from('10.0.0.2'))).toBe(429)
  })

  it('holds an unauthenticated socket to small frames, and raises the limit once it authenticates', async () => {
    const hub = await startHub({ auth: { token: 't' } })
    const big = { type: 'big', data: { payload: 'x'.repeat(64 * 1024) } }

    const stranger = await RawPeer.connect(hub.url())
    stranger.send(big)
    expect((await stranger.waitForClose()).code).toBe(1009)

    const reader = await RawPeer.connect(hub.url('/ws?token=t'))
    await reader.join('reader')
    const sender = await RawPeer.connect(hub.url())
    await sender.join('sender', { token: 't' })
    sender.send(big)
    expect((await reader.waitForType('big')).data.payload).toHaveLength(64 * 1024)
    expect(sender.closed).toBeUndefined()
    expect(sample(await metrics(hub.port), 'hub_errors_total{reason="payload_too_large"}')).toBe(1)
  })

  it('cuts a connection that sends its request headers too slowly (slowloris)', async () => {
    const server = createServer({ logger: { level: 'silent' }, env: {} })
    const listener = await listenHub(server, { port: 0, host: '127.0.0.1', headersTimeoutMs: 300, env: {} })
    onCleanup(() => listener.close())
    const socket = connect(listener.port, '127.0.0.1')
    onCleanup(() => socket.destroy())
    const state = { closed: false }
    socket.on('close', () => state.closed = true)
    socket.on('error', () => {})
    socket.write('GET /ws HTTP/1.1\r\nHost: localhost\r\n')
    let lines = 0
    // One header line every 100 ms, for up to 5 s: never done, so only the deadline can end it.
    while (!state.closed && lines < 50) {
      await new Promise(resolve => setTimeout(resolve, 100))
      socket.write(`X-Slow-${lines++}: 1\r\n`)
    }
    expect(state.closed).toBe(true)
    expect(lines).toBeLessThan(50)

    // A prompt upgrade is not affected.
    expect(await upgradeStatus(`ws://127.0.0.1:${listener.port}/ws`)).toBe(101)
  })

  it('never negotiates permessage-deflate', async () => {
    const hub = await startHub()
    const peer = await RawPeer.connect(hub.url(), { perMessageDeflate: true })
    expect(peer.ws.extensions).toBe('')
    const phoenix = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'), { perMessageDeflate: true })
    expect(phoenix.ws.extensions).toBe('')
  })
})

describe('rate limit', () => {
  it('stops a peer broadcasting 1 MB events (rate limited, then 4029) before any healthy reader is closed as slow', { timeout: 30_000 }, async () => {
    // 2 MiB/s a sender (its burst: one 1 MiB frame); default MAX_BUFFERED_BYTES (4 MiB).
    const limits = process.env.NO_RATE_LIMIT ? { bytesPerSec: 0, eventsPerSec: 0 } : { bytesPerSec: 2 * 1024 * 1024 }
    const hub = await startHub({ limits })
    // Healthy readers that take 3 MB/s each, more than any one sender may send: without the
    // rate limit the flood outruns them and they are closed with 1013 (NO_RATE_LIMIT=1 shows it).
    const readRate = 3_000_000
    const readers = await Promise.all(Array.from({ length: 20 }, async () => {
      const ws = new WebSocket(hub.url())
      onCleanup(() => ws.terminate())
      const reader = { ws, bulk: 0, closed: undefined as number | undefined }
      const start = Date.now()
      let bytes = 0
      ws.on('message', (data: Buffer) => {
        bytes += data.length
        if (data.length > 1_000_000)
          reader.bulk++
        const ahead = bytes - (Date.now() - start) * readRate / 1000
        if (ahead > 0 && !ws.isPaused) {
          ws.pause()
          setTimeout(() => ws.resume(), ahead * 1000 / readRate)
        }
      })
      ws.on('close', code => reader.closed = code)
      await new Promise(resolve => ws.once('open', resolve))
      return reader
    }))
    const sender = await RawPeer.connect(hub.url())
    const payload = 'x'.repeat(1_000_000)
    const sent = new Set<string>()
    const started = Date.now()
    // As fast as its socket takes them, until the hub closes it or a reader is gone.
    while (!sender.closed && readers.every(r => r.closed === undefined) && Date.now() - started < 15_000) {
      if (sender.ws.readyState === WebSocket.OPEN && sender.ws.bufferedAmount < 4_000_000)
        sent.add(sender.send({ type: 'bulk', data: { payload } }))
      await new Promise(resolve => setImmediate(resolve))
    }
    expect(readers.map(r => r.closed)).toEqual(readers.map(() => undefined))
    expect(sender.closed).toEqual({ code: 4029, reason: 'rate limited' })
    const errors = sender.ofType('error')
    expect(errors.map(e => e.data.message)).toEqual(['rate limited'])
    expect(sent.has(errors[0]!.metadata!.event!.parentId!)).toBe(true)

    // Every reader is still there and got what passed.
    await until(() => readers.every(r => r.bulk > 0), 'every reader to get a bulk event')
    await settle(300)
    expect(readers.map(r => r.closed)).toEqual(readers.map(() => undefined))
    const exposition = await metrics(hub.port)
    expect(sample(exposition, 'hub_rate_limited_total{action="closed"}')).toBe(1)
    expect(sample(exposition, 'hub_rate_limited_total{action="dropped"}')).toBeGreaterThan(0)
  })

  it('leaves a chatty peer under the limit alone', async () => {
    const hub = await startHub({ limits: { eventsPerSec: 100, eventsBurst: 20 } })
    const reader = await RawPeer.connect(hub.url())
    await reader.join('reader')
    const chatty = await RawPeer.connect(hub.url())
    await chatty.join('chatty')
    for (let i = 0; i < 60; i++) {
      chatty.send({ type: 'chat', data: { i } })
      await new Promise(resolve => setTimeout(resolve, 15))
    }
    await reader.waitFor(e => e.type === 'chat' && e.data.i === 59)
    expect(reader.ofType('chat')).toHaveLength(60)
    expect(chatty.ofType('error')).toEqual([])
    expect(chatty.closed).toBeUndefined()
  })

  it('limits a Phoenix socket as a whole: an error reply, then 4029', async () => {
    // A token a second: the burst of 10 is all this test gets.
    const hub = await startHub({ limits: { eventsPerSec: 1, eventsBurst: 10, rateLimitGraceMs: 200 } })
    const socket = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await socket.request(['1', '1', 'plugin:a', 'phx_join', {}])
    await socket.request(['2', '2', 'plugin:b', 'phx_join', {}])
    // Both channels draw on the socket's one budget: 2 joins + 8 pushes.
    for (let i = 0; i < 8; i++)
      socket.send([i % 2 ? '1' : '2', `p${i}`, i % 2 ? 'plugin:a' : 'plugin:b', 'chat', { i }])
    const [refused, last] = await Promise.all([
      socket.request(['1', 'over', 'plugin:a', 'chat', {}]),
      socket.waitFor(f => f[1] === 'p7'),
    ])
    expect(last[4].status).toBe('ok')
    expect(refused[4]).toEqual({ status: 'error', response: { reason: 'rate limited' } })
    // Keeps flooding past the grace.
    while (!socket.closed) {
      socket.send(['1', 'flood', 'plugin:a', 'chat', {}])
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    expect(socket.closed).toEqual({ code: 4029, reason: 'rate limited' })
    expect(socket.frames.filter(f => f[4]?.response?.reason === 'rate limited')).toHaveLength(1)
  })
})
