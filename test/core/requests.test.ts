import type { FakePeer } from '../helpers/fake-connection.ts'
import { describe, expect, it, vi } from 'vitest'
import { joinPeer, useSocketFreeHubs } from '../helpers/fake-connection.ts'

// The pending-request table, socket-free: deadlines on fake timers, failures through `Connection.fail`.

const createHub = useSocketFreeHubs()

function request(peer: FakePeer, hub: ReturnType<typeof createHub>, id: string, reply: true | { timeoutMs?: number }, to = 'plugin:tool'): unknown {
  return hub.publish(peer.session, { type: 'tool:invoke', data: {}, metadata: { event: { id } }, route: { destinations: [to], reply } })
}

function answer(peer: FakePeer, hub: ReturnType<typeof createHub>, parentId: string, type = 'tool:result'): unknown {
  return hub.publish(peer.session, { type, data: { ok: true }, metadata: { event: { parentId } } })
}

describe('pending requests', () => {
  it('times out at the asked timeout, clamped to limits.maxRequestTimeoutMs, and drops the late reply', () => {
    vi.useFakeTimers()
    const hub = createHub({ limits: { maxRequestTimeoutMs: 1000 } })
    const asker = joinPeer(hub, 'asker')
    const tool = joinPeer(hub, 'tool')
    expect(request(asker, hub, 'r1', { timeoutMs: 500 })).toBe(1)
    expect(request(asker, hub, 'r2', { timeoutMs: 60_000 })).toBe(1)
    expect(hub.requests.pending).toBe(2)
    vi.advanceTimersByTime(499)
    expect(asker.connection.failures).toEqual([])
    vi.advanceTimersByTime(1)
    expect(asker.connection.failures).toEqual([{ code: 'request_timeout', message: 'request timed out', parentId: 'r1' }])
    vi.advanceTimersByTime(500)
    expect(asker.connection.failures.map(failure => failure.parentId)).toEqual(['r1', 'r2'])
    expect(hub.requests.pending).toBe(0)
    expect(answer(tool, hub, 'r1')).toBe(0)
    expect(asker.connection.ofType('tool:result')).toEqual([])
  })

  it('defaults to 30 s, and clears the deadline once replied', () => {
    vi.useFakeTimers()
    const hub = createHub()
    const asker = joinPeer(hub, 'asker')
    const tool = joinPeer(hub, 'tool')
    request(asker, hub, 'a', true)
    request(asker, hub, 'b', true)
    expect(answer(tool, hub, 'a')).toBe(1)
    vi.advanceTimersByTime(29_999)
    expect(asker.connection.failures).toEqual([])
    vi.advanceTimersByTime(1)
    expect(asker.connection.failures).toEqual([{ code: 'request_timeout', message: 'request timed out', parentId: 'b' }])
    expect(asker.connection.ofType('tool:result').map(event => event.metadata?.event?.parentId)).toEqual(['a'])
  })

  it('drops the requests of a requester that leaves, and fails those of a responder that leaves', () => {
    vi.useFakeTimers()
    const hub = createHub()
    const asker = joinPeer(hub, 'asker')
    const tool = joinPeer(hub, 'tool')
    request(asker, hub, 'x', true)
    request(tool, hub, 'y', true, 'plugin:asker')
    hub.disconnect(tool.session)
    expect(asker.connection.failures).toEqual([{ code: 'responder_gone', message: 'responder gone', parentId: 'x' }])
    expect(hub.requests.pending).toBe(0)
    vi.advanceTimersByTime(60_000)
    expect(asker.connection.failures).toHaveLength(1)
  })

  it('refuses a request past the per-peer bound', () => {
    const hub = createHub({ limits: { maxPendingRequestsPerPeer: 1 } })
    const asker = joinPeer(hub, 'asker')
    const tool = joinPeer(hub, 'tool')
    expect(request(asker, hub, 'a', true)).toBe(1)
    expect(request(asker, hub, 'b', true)).toMatchObject({ code: 'limit_exceeded', message: 'limit exceeded: pending requests' })
    answer(tool, hub, 'a')
    expect(request(asker, hub, 'c', true)).toBe(1)
  })

  it('refuses an id another requester has pending', () => {
    const hub = createHub()
    const asker = joinPeer(hub, 'asker')
    const other = joinPeer(hub, 'other')
    joinPeer(hub, 'tool')
    request(asker, hub, 'same', true)
    expect(request(other, hub, 'same', true)).toMatchObject({ code: 'invalid_event', message: 'request id already pending' })
  })

  it('answers "no responder" when a middleware drops the request, or fails', async () => {
    const hub = createHub({ routing: { middleware: [async (context, next) => {
      if (context.event.data.fail)
        throw new Error('middleware failed')
      if (context.event.data.drop)
        return context.drop()
      await next()
    }] } })
    const asker = joinPeer(hub, 'asker')
    joinPeer(hub, 'tool')
    for (const [id, data] of [['d', { drop: true }], ['f', { fail: true }]] as const)
      await hub.publish(asker.session, { type: 'tool:invoke', data, metadata: { event: { id } }, route: { destinations: ['plugin:tool'], reply: true } })
    expect(asker.connection.failures).toEqual([
      { code: 'no_responder', message: 'no responder', parentId: 'd' },
      { code: 'no_responder', message: 'no responder', parentId: 'f' },
    ])
    expect(hub.requests.pending).toBe(0)
  })

  it('prefers healthy responders', () => {
    vi.useFakeTimers()
    const hub = createHub({ heartbeat: { readTimeout: 1000 } })
    const asker = joinPeer(hub, 'asker')
    const tools = [joinPeer(hub, 'tool'), joinPeer(hub, 'tool-b')]
    // tool goes silent; the others speak.
    for (let t = 0; t < 4; t++) {
      vi.advanceTimersByTime(300)
      hub.touch(asker.session)
      hub.touch(tools[1]!.session)
    }
    expect(tools[0]!.session.unhealthy).toBe(true)
    for (const id of ['h1', 'h2', 'h3'])
      hub.publish(asker.session, { type: 'tool:invoke', data: {}, metadata: { event: { id } }, route: { destinations: ['plugin:tool', 'plugin:tool-b'], reply: true } })
    expect(tools[0]!.connection.ofType('tool:invoke')).toEqual([])
    expect(tools[1]!.connection.ofType('tool:invoke')).toHaveLength(3)
  })
})
