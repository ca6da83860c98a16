import type { WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { RawPeer, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'
import { RawPhoenix } from '../helpers/phoenix.ts'
import { sdkClient } from '../helpers/sdk.ts'

const TOKEN = 'secret'

const errorFor = (id: string) => (e: WireEvent) => e.type === 'error' && e.metadata?.event?.parentId === id

function nestedArrays(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`
}

describe('hostile frames on /ws', () => {
  it('matches a pathological glob against long module names at once, and routes by it correctly', async () => {
    const hub = await startHub()
    const long = await RawPeer.connect(hub.url())
    const name = 'a'.repeat(256)
    await long.join(name, { identity: { plugin: 'long', instanceId: 'long-1' } })
    const sender = await RawPeer.connect(hub.url())
    await sender.join('sender')
    // As a regular expression this glob blocked the event loop for minutes against this name.
    const glob = `${'*a'.repeat(20)}*b`
    sender.send({ type: 'probe', data: { n: 1 }, route: { destinations: [glob, { type: 'glob', glob }] } })
    sender.send({ type: 'probe', data: { n: 2 }, route: { destinations: [`${'*a'.repeat(20)}*`] } })
    const probe = await long.waitForType('probe')
    expect(probe.data).toEqual({ n: 2 })
    expect(sender.ofType('error')).toEqual([])
  })

  it('refuses every reserved type with one error naming the event, and delivers none', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const observer = sdkClient(hub.url(), 'observer', { token: TOKEN })
    await observer.client.connect()
    const forger = await RawPeer.connect(hub.url())
    await forger.join('forger', { token: TOKEN })
    const reserved = [
      'error',
      'event:ack',
      'module:authenticated',
      'module:announced',
      'module:de-announced',
      'module:configure',
      'extension:module:announced',
      'extension:module:de-announced',
      'registry:modules:sync',
      'registry:modules:health:unhealthy',
      'peer:authenticated',
      'phx_reply',
    ]
    for (const type of reserved) {
      const id = forger.send({ type, data: { message: 'not authenticated', modules: [], name: 'ghost', identity: { plugin: 'ghost', instanceId: 'g' } } })
      expect((await forger.waitFor(errorFor(id))).data).toEqual({ message: 'reserved event type' })
    }
    forger.send({ type: 'after', data: {} })
    await observer.waitFor(e => e.type === 'after')
    expect(forger.ofType('error')).toHaveLength(reserved.length)
    expect(observer.received.filter(e => e.metadata?.source?.plugin === 'forger').map(e => e.type)).toEqual(['after'])
    expect(observer.ofType('error')).toEqual([])
    expect(hub.server.hub.registry.size).toBe(2)
  })

  it('refuses announcing the hub\'s own identity, oversized names and labels, and leaves the registry clean', async () => {
    const hub = await startHub({ instanceId: 'hub-1' })
    const peer = await RawPeer.connect(hub.url())
    await peer.waitForType('module:authenticated')
    const refusals: Array<[Record<string, unknown>, string]> = [
      [{ name: 'x', identity: { plugin: 'hub-server', instanceId: 'i' } }, 'reserved identity'],
      [{ name: 'x', identity: { plugin: 'p', instanceId: 'hub-1' } }, 'reserved identity'],
      [{ name: 'n'.repeat(900_000) }, 'limit exceeded: module name'],
      [{ name: 'x', identity: { plugin: 'p'.repeat(257), instanceId: 'i' } }, 'limit exceeded: identity'],
      [{ name: 'x', identity: { plugin: 'p', instanceId: 'i', labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) } }, 'limit exceeded: labels'],
      [{ name: 'x', identity: { id: 'i', extension: { id: 'e', labels: { k: 'v'.repeat(257) } } } }, 'limit exceeded: labels'],
    ]
    for (const [data, message] of refusals) {
      const id = peer.send({ type: 'module:announce', data })
      expect((await peer.waitFor(errorFor(id))).data).toEqual({ message })
    }
    expect(hub.server.hub.registry.size).toBe(0)
  })

  it('keeps prototype keys inert in labels and data', async () => {
    const hub = await startHub()
    const receiver = await RawPeer.connect(hub.url())
    await receiver.join('receiver')
    const peer = await RawPeer.connect(hub.url())
    await peer.waitForType('module:authenticated')
    peer.sendRaw('{"type":"module:announce","data":{"name":"proto","identity":{"plugin":"p","instanceId":"i","labels":{"__proto__":{"polluted":"yes"},"constructor":"x","env":"prod"}}}}')
    await receiver.waitFor(e => e.type === 'module:announced' && e.data.name === 'proto')
    peer.sendRaw('{"type":"custom","data":{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}},"route":{"destinations":["label:__proto__","label:env=prod","label:constructor"]}}')
    peer.sendRaw('{"type":"custom","data":{"__proto__":{"polluted":"yes"}}}')
    await receiver.waitForType('custom')
    const entry = hub.server.hub.registry.get([...hub.server.hub.registry.entries()].find(e => e.name === 'proto')!.peerId)!
    expect(Object.getPrototypeOf(entry.identity.labels)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(Object.prototype).not.toHaveProperty('polluted')
  })

  it('answers unbounded frames with one documented error carrying the id, and stays responsive', async () => {
    const hub = await startHub()
    const peer = await RawPeer.connect(hub.url())
    await peer.join('peer')
    let nestedOr = '{"type":"module","modules":["m"]}'
    for (let i = 0; i < 5000; i++)
      nestedOr = `{"type":"or","any":[${nestedOr}]}`
    const wide = JSON.stringify({ type: 'or', any: Array.from({ length: 20_000 }, (_, i) => ({ type: 'module', modules: [`m${i}`] })) })
    const frames: Array<[string, string]> = [
      [`{"type":"a","data":{"x":${nestedArrays(5000)}},"metadata":{"event":{"id":"deep"}}}`, 'limit exceeded: nesting depth'],
      [`{"json":{"type":"a","data":{"x":${nestedArrays(5000)}},"metadata":{"event":{"id":"deep-sj"}}}}`, 'limit exceeded: nesting depth'],
      [`{"type":"a","data":{},"route":{"destinations":[${nestedOr}]},"metadata":{"event":{"id":"deep-route"}}}`, 'limit exceeded: expression depth'],
      [`{"type":"a","data":{},"route":{"destinations":[${wide}]},"metadata":{"event":{"id":"wide-route"}}}`, 'limit exceeded: route items'],
      [`{"type":"${'t'.repeat(300)}","data":{},"metadata":{"event":{"id":"long-type"}}}`, 'limit exceeded: event type'],
      ['{"json":{"type":"a","data":{"a":{}},"metadata":{"event":{"id":"cycle"}}},"meta":{"referentialEqualities":{"data":["data.a.b"]}}}', 'limit exceeded: nesting depth'],
      ['{"json":{"type":"a","data":{"x":1},"metadata":{"event":{"id":"bad-meta"}}},"meta":{"values":{"data.x":["bogus"]}}}', 'invalid event format'],
      ['{"type":"a","data":[],"metadata":{"event":{"id":"bad-envelope"}}}', 'invalid event format'],
    ]
    for (const [frame] of frames)
      peer.sendRaw(frame)
    const pong = peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
    await peer.waitFor(e => e.metadata?.event?.parentId === pong)
    const errors = peer.ofType('error')
    expect(errors.map(e => [e.metadata?.event?.parentId, e.data.message])).toEqual(frames.map(([frame, message]) => [/"id":"([^"]+)"/.exec(frame)![1], message]))
  })

  it('logs a peer\'s refused frames once, not once a frame', async () => {
    const hub = await startHub()
    const lines: string[] = []
    hub.server.hub.options.logger.info = ((line: string) => { lines.push(line) }) as typeof hub.server.hub.options.logger.info
    const peer = await RawPeer.connect(hub.url())
    await peer.join('peer')
    for (let i = 0; i < 30; i++)
      peer.send({ type: i % 2 ? 'module:announced' : 't'.repeat(300), data: {} })
    const pong = peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
    await peer.waitFor(e => e.metadata?.event?.parentId === pong)
    expect(peer.ofType('error')).toHaveLength(30)
    expect(lines.filter(line => line.includes(`peer `) && /limit exceeded|reserved/.test(line))).toHaveLength(1)
  })

  it('labels no event type of an unauthenticated peer, nor long ones, in /metrics', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const stranger = await RawPeer.connect(hub.url())
    for (let i = 0; i < 10; i++)
      stranger.send({ type: `junk-${i}-${'x'.repeat(1000)}`, data: {} })
    stranger.send({ type: 'short', data: {} })
    await stranger.waitFor(() => stranger.ofType('error').length === 11)
    const member = await RawPeer.connect(hub.url())
    await member.join('member', { token: TOKEN })
    member.send({ type: 'y'.repeat(100), data: {} })
    member.send({ type: 'named', data: {} })
    const ping = member.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
    await member.waitFor(e => e.metadata?.event?.parentId === ping)
    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(metrics).not.toContain('junk')
    expect(metrics).not.toContain('type="short"')
    expect(metrics).not.toContain('yyyy')
    expect(sample(metrics, 'hub_events_received_total{type="named"}')).toBe(1)
    expect(sample(metrics, 'hub_events_received_total{type="other"}')).toBe(12)
    expect(member.ofType('error')).toEqual([])
    expect(metrics.length).toBeLessThan(64 * 1024)
  })
})

describe('hostile pushes on the Phoenix gateway', () => {
  it('refuses reserved events and unbounded payloads in its reply, and delivers none', async () => {
    const hub = await startHub()
    const watcher = await RawPeer.connect(hub.url())
    await watcher.join('watcher')
    const socket = await RawPhoenix.connect(`${hub.url('/socket/websocket')}?vsn=2.0.0`)
    expect((await socket.request(['1', '1', 'plugin:pusher', 'phx_join', {}]))[4].status).toBe('ok')
    const pushes: Array<[string, unknown, string]> = [
      ['error', { message: 'not authenticated' }, 'reserved event'],
      ['module:announced', { name: 'ghost' }, 'reserved event'],
      ['registry:modules:sync', { modules: [] }, 'reserved event'],
      ['phx_error', {}, 'reserved event'],
      ['routed', { destinations: Array.from({ length: 100 }, () => '*') }, 'limit exceeded: destinations'],
      ['t'.repeat(300), {}, 'limit exceeded: event type'],
    ]
    let ref = 1
    for (const [event, payload, reason] of pushes) {
      const reply = await socket.request(['1', String(++ref), 'plugin:pusher', event, payload])
      expect(reply[4]).toEqual({ status: 'error', response: { reason } })
    }
    // Deeper than JSON.stringify can go: written by hand.
    socket.ws.send(`["1","deep","plugin:pusher","deep",{"x":${nestedArrays(5000)}}]`)
    const deep = await socket.waitFor(f => f[3] === 'phx_reply' && f[1] === 'deep')
    expect(deep[4]).toEqual({ status: 'error', response: { reason: 'limit exceeded: nesting depth' } })
    expect((await socket.request(['1', String(++ref), 'plugin:pusher', 'fine', {}]))[4].status).toBe('ok')
    await watcher.waitForType('fine')
    expect(watcher.received.filter(e => e.metadata?.source?.plugin === 'pusher').map(e => e.type)).toEqual(['fine'])
  })

  it('refuses joining as the hub itself', async () => {
    const hub = await startHub()
    const socket = await RawPhoenix.connect(`${hub.url('/socket/websocket')}?vsn=2.0.0`)
    expect((await socket.request(['1', '1', 'plugin:hub-server', 'phx_join', {}]))[4].status).toBe('error')
    expect(hub.server.hub.registry.size).toBe(0)
  })
})
