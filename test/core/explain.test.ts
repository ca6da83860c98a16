import type { ExplainResult } from '../../src/core/explain.ts'
import type { RoutingMiddleware } from '../../src/core/middleware.ts'
import type { Hub } from '../../src/hub.ts'
import type { FakePeer } from '../helpers/fake-connection.ts'
import { describe, expect, it } from 'vitest'
import { HubError } from '../../src/errors.ts'
import { connectPeer, joinPeer, useSocketFreeHubs } from '../helpers/fake-connection.ts'

// Socket-free: each hub is driven through its public interface by fake connections.
const hubOf = useSocketFreeHubs()

/** The answer of a request that must succeed, synchronously. */
function explain(hub: Hub, request: Parameters<Hub['explain']>[0]): ExplainResult {
  const result = hub.explain(request)
  if (result instanceof HubError || result instanceof Promise)
    throw new Error(`expected a synchronous explanation, got ${String(result)}`)
  return result
}

/** Recipients by first module name (peer id when it has none). */
const recipientsOf = (result: ExplainResult): string[] => result.recipients.map(peer => peer.modules[0]?.name ?? peer.peerId).sort()

/** Every excluded peer by first module name (peer id when it has none): its step and reason. */
function excludedOf(result: ExplainResult): Record<string, string> {
  return Object.fromEntries(result.excluded.map(peer => [peer.modules[0]?.name ?? peer.peerId, `${peer.step}: ${peer.reason}`]))
}

/** How many events each peer was sent so far. */
const sentTo = (peers: FakePeer[]): number[] => peers.map(peer => peer.connection.events.length)

describe('hub.explain', () => {
  it('names the sender, an unauthenticated peer and the peers no destination matches, and delivers nothing', () => {
    const hub = hubOf({ auth: { token: 'secret' } })
    const sender = joinPeer(hub, 'sender', { token: 'secret' })
    const foo = joinPeer(hub, 'foo', { token: 'secret' })
    const bar = joinPeer(hub, 'bar', { token: 'secret', labels: { x: 'y' } })
    const other = joinPeer(hub, 'other', { token: 'secret' })
    const pending = connectPeer(hub)
    const before = sentTo([sender, foo, bar, other, pending])

    const result = explain(hub, { from: 'sender', event: { type: 'ping', route: { destinations: ['plugin:foo', 'label:x=y'] } } })
    expect(result.sender).toEqual({ peerId: sender.session.id, modules: [{ name: 'sender' }] })
    expect(recipientsOf(result)).toEqual(['bar', 'foo'])
    expect(excludedOf(result)).toEqual({
      sender: 'sender: the sender: an event is never echoed to it',
      other: 'destinations: destinations: no destination matches (plugin:foo, label:x=y)',
      [pending.session.id]: 'unauthenticated: not authenticated: routing skips it',
    })
    // Every peer appears once.
    expect(result.recipients.length + result.excluded.length).toBe(5)
    expect(sentTo([sender, foo, bar, other, pending])).toEqual(before)
  })

  it('takes destinations from data.destinations, expressions and globs as routing does', () => {
    const hub = hubOf()
    joinPeer(hub, 'sender')
    joinPeer(hub, 'tts-a')
    joinPeer(hub, 'tts-b', { labels: { env: 'prod' } })
    joinPeer(hub, 'vision')

    expect(recipientsOf(explain(hub, { from: 'sender', event: { type: 't', data: { destinations: ['tts-*'] } } }))).toEqual(['tts-a', 'tts-b'])
    const expression = { type: 'and', all: [{ type: 'glob', glob: 'tts-*' }, { type: 'label', selectors: ['env=prod'] }] }
    const result = explain(hub, { from: 'sender', event: { type: 't', route: { destinations: [expression] } } })
    expect(recipientsOf(result)).toEqual(['tts-b'])
    expect(excludedOf(result)['tts-a']).toBe(`destinations: destinations: no destination matches (${JSON.stringify(expression)})`)
    // No destinations: everyone but the sender; no sender: everyone.
    expect(recipientsOf(explain(hub, { from: 'sender', event: { type: 't' } }))).toEqual(['tts-a', 'tts-b', 'vision'])
    expect(recipientsOf(explain(hub, { event: { type: 't' } }))).toEqual(['sender', 'tts-a', 'tts-b', 'vision'])
  })

  it('names the exact policy rule that excluded a peer', () => {
    const hub = hubOf({ routing: { policy: { allowPlugins: ['app-*', 'sender'], denyLabels: ['tier=free', 'env=prod'] } } })
    joinPeer(hub, 'sender')
    joinPeer(hub, 'app-ok', { labels: { env: 'dev' } })
    joinPeer(hub, 'app-prod', { labels: { env: 'prod' } })
    joinPeer(hub, 'rogue')

    const result = explain(hub, { from: 'sender', event: { type: 't' } })
    expect(recipientsOf(result)).toEqual(['app-ok'])
    expect(excludedOf(result)).toMatchObject({
      'app-prod': 'policy: policy denyLabels "env=prod"',
      'rogue': 'policy: policy allowPlugins ("app-*", "sender"): plugin "rogue" matches none',
    })
  })

  it('lays a peer at the door of the middleware that removed it; middleware sees the dry run', () => {
    const seen: Array<boolean | undefined> = []
    const audit: RoutingMiddleware = (context, next) => {
      seen.push(context.explain)
      return next()
    }
    const noVision: RoutingMiddleware = (context, next) => {
      context.recipients = context.recipients.filter(peer => peer.module?.name !== 'vision')
      return next()
    }
    const hub = hubOf({ routing: { middleware: [audit, noVision] } })
    const sender = joinPeer(hub, 'sender')
    joinPeer(hub, 'tts')
    joinPeer(hub, 'vision')

    const result = explain(hub, { from: 'sender', event: { type: 't' } })
    expect(recipientsOf(result)).toEqual(['tts'])
    expect(excludedOf(result).vision).toBe('middleware: middleware #2 (noVision) removed it from the recipients')
    expect(seen).toEqual([true])
    // A real route runs the chain without the flag.
    hub.publish(sender.session, { type: 't', data: {} })
    expect(seen).toEqual([true, undefined])
  })

  it('excludes every recipient a middleware never passed on, dropped, or failed on', async () => {
    const stop: RoutingMiddleware = function stop() {}
    const drop: RoutingMiddleware = (context, next) => {
      context.drop()
      return next()
    }
    const fail: RoutingMiddleware = () => {
      throw new Error('boom')
    }
    const later: RoutingMiddleware = async (context, next) => {
      await Promise.resolve()
      context.recipients = []
      return next()
    }
    for (const [middleware, reason] of [
      [stop, 'middleware #1 (stop) did not call next(): the event would go nowhere'],
      [drop, 'middleware #1 (drop) dropped the event'],
      [fail, 'middleware #1 (fail) failed: the event would go nowhere'],
      [later, 'middleware #1 (later) removed it from the recipients'],
    ] as const) {
      const hub = hubOf({ routing: { middleware: [middleware] } })
      joinPeer(hub, 'sender')
      joinPeer(hub, 'tts')
      const result = await hub.explain({ from: 'sender', event: { type: 't' } })
      expect(result).not.toBeInstanceOf(HubError)
      expect(excludedOf(result as ExplainResult).tts).toBe(`middleware: ${reason}`)
      await hub.close()
    }
  })

  it('lets a trusted devtools peer\'s route.bypass skip policy and middleware, and an empty list select nobody', () => {
    const none: RoutingMiddleware = function none(context) {
      context.drop()
    }
    const hub = hubOf({ auth: { token: 't' }, routing: { devtoolsTokens: ['dev'], policy: { denyPlugins: ['hidden'] }, middleware: [none] } })
    joinPeer(hub, 'devtools', { token: 'dev' })
    joinPeer(hub, 'plain', { token: 't' })
    joinPeer(hub, 'hidden', { token: 't' })
    const bypassing = { type: 't', route: { bypass: true } }
    expect(recipientsOf(explain(hub, { from: 'devtools', event: bypassing }))).toEqual(['hidden', 'plain'])
    expect(excludedOf(explain(hub, { from: 'plain', event: bypassing }))).toMatchObject({
      hidden: 'policy: policy denyPlugins "hidden" (plugin "hidden")',
      devtools: 'middleware: middleware #1 (none) dropped the event',
    })
    expect(excludedOf(explain(hub, { from: 'devtools', event: { type: 't', route: { destinations: [] } } })).plain)
      .toBe('destinations: destinations: the list is empty, so the event goes to nobody')
  })

  it('shows whom a round-robin consumer delivery would pick without taking the turn', () => {
    const hub = hubOf()
    const sender = joinPeer(hub, 'sender')
    const workers = ['w1', 'w2', 'w3'].map(name => joinPeer(hub, name))
    for (const worker of workers)
      hub.registerConsumer(worker.session, { event: 'job', group: 'g' })
    joinPeer(hub, 'bystander')
    workers[2]!.session.unhealthy = true
    const request = { from: 'sender', event: { type: 'job', route: { delivery: { group: 'g', selection: 'round-robin' } } } } as const

    const first = explain(hub, request)
    expect(recipientsOf(first)).toEqual(['w1'])
    expect(excludedOf(first)).toMatchObject({
      w2: `delivery: delivery: consumer group "g" picked peer ${workers[0]!.session.id} (round-robin)`,
      w3: 'unhealthy: unhealthy: a consumer of "job" in group "g" that went silent',
      bystander: 'delivery: delivery: not a consumer of "job" in group "g"',
    })
    // Asking again changes nothing: the real route still takes the turn explain showed, then moves on.
    expect(recipientsOf(explain(hub, request))).toEqual(['w1'])
    hub.publish(sender.session, { type: 'job', data: {}, route: { delivery: { group: 'g', selection: 'round-robin' } } })
    expect(workers.map(worker => worker.connection.ofType('job').length)).toEqual([1, 0, 0])
    expect(recipientsOf(explain(hub, request))).toEqual(['w2'])
  })

  it('never picks the sender or a consumer the policy denies, naming the rule', () => {
    const hub = hubOf({ routing: { policy: { denyLabels: ['blocked=yes'] } } })
    const sender = joinPeer(hub, 'sender')
    const blocked = joinPeer(hub, 'blocked', { labels: { blocked: 'yes' } })
    const open = joinPeer(hub, 'open')
    hub.registerConsumer(sender.session, { event: 'job', priority: 20 })
    hub.registerConsumer(blocked.session, { event: 'job', priority: 10 })
    hub.registerConsumer(open.session, { event: 'job' })
    const result = explain(hub, { from: 'sender', event: { type: 'job', route: { delivery: { mode: 'consumer' } } } })
    expect(recipientsOf(result)).toEqual(['open'])
    expect(excludedOf(result)).toEqual({
      sender: 'sender: the sender: an event is never echoed to it',
      blocked: 'policy: policy denyLabels "blocked=yes"',
    })
  })

  it('shows one responder for a request, and a slow consumer as such', () => {
    const hub = hubOf({ limits: { maxBufferedBytes: 1000 } })
    joinPeer(hub, 'sender')
    const a = joinPeer(hub, 'a')
    joinPeer(hub, 'b')
    const slow = joinPeer(hub, 'slow')
    slow.connection.waiting = 5000

    const broadcast = explain(hub, { from: 'sender', event: { type: 't' } })
    expect(recipientsOf(broadcast)).toEqual(['a', 'b'])
    expect(excludedOf(broadcast).slow).toBe('slow-consumer: slow consumer: 5000 bytes unsent, over maxBufferedBytes (delivering closes it)')

    const request = explain(hub, { from: 'sender', event: { type: 't', route: { destinations: ['a', 'b'], reply: true } } })
    expect(request.recipients).toHaveLength(1)
    const picked = request.recipients[0]!.modules[0]!.name
    expect(excludedOf(request)[picked === 'a' ? 'b' : 'a']).toBe(`delivery: delivery: a request goes to one responder, peer ${request.recipients[0]!.peerId}`)
    expect(a.connection.ofType('t')).toEqual([])
  })

  it('finds the sender by module name and index, and answers a bad request with a clear HubError', () => {
    const hub = hubOf()
    const sender = connectPeer(hub)
    hub.announce(sender.session, { name: 'tts', index: 2, identity: { pluginId: 'tts', instanceId: 'tts-2', labels: {} } })
    joinPeer(hub, 'tts')
    expect(explain(hub, { from: 'tts:2', event: { type: 't' } }).sender?.peerId).toBe(sender.session.id)
    expect(explain(hub, { from: sender.session.id, event: { type: 't' } }).sender?.modules).toEqual([{ name: 'tts', index: 2 }])

    const refusal = (request: unknown): { code: string, message: string } => {
      const result = hub.explain(request as never)
      if (!(result instanceof HubError))
        throw new Error('expected a refusal')
      return { code: result.code, message: result.message }
    }
    expect(refusal({ from: 'nobody', event: { type: 't' } })).toEqual({ code: 'module_not_found', message: 'no peer or module "nobody" on any node' })
    expect(refusal({ event: { type: 't', route: { destinations: 'plugin:x' } } }).code).toBe('invalid_event')
    expect(refusal({ event: { type: 't', route: { destinations: [{ type: 'nope' }] } } }).message).toMatch(/^invalid explain request at event\.route\.destinations/)
    expect(refusal({ event: {} }).message).toMatch(/^invalid explain request at event\.type/)
    expect(refusal({ event: { type: 'registry:modules:sync' } })).toEqual({ code: 'reserved_event', message: 'reserved event type' })
    expect(refusal({ event: { type: 't', data: { destinations: 'x' } } }).code).toBe('invalid_event')
    expect(refusal(null).code).toBe('invalid_event')

    const pending = connectPeer(hubOf({ auth: { token: 's' } }))
    const other = hubOf({ auth: { token: 's' } })
    const stranger = connectPeer(other)
    expect(pending.session.authenticated).toBe(false)
    expect(other.explain({ from: stranger.session.id, event: { type: 't' } })).toMatchObject({ code: 'not_authenticated' })
  })
})
