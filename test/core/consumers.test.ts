import type { PeerInfo } from '../../src/types.ts'
import { describe, expect, it } from 'vitest'
import { createConsumers } from '../../src/core/consumers.ts'

const peer = (id: string): PeerInfo => ({ id, authenticated: true }) as PeerInfo
const all = (_peer: PeerInfo): boolean => true

describe('consumer selection', () => {
  it('orders by priority (high first), then registration time, for first and priority', () => {
    const consumers = createConsumers({ maxPerPeer: 8 })
    const [a, b, c] = [peer('a'), peer('b'), peer('c')]
    consumers.register(a, { event: 'e' })
    consumers.register(b, { event: 'e', priority: 5 })
    consumers.register(c, { event: 'e', priority: 5 })
    expect(consumers.select('e', { selection: 'first' }, all).peer).toBe(b)
    expect(consumers.select('e', { selection: 'priority' }, all).peer).toBe(b)
    expect(consumers.select('e', {}, p => p !== b).peer).toBe(c)
    expect(consumers.select('e', {}, p => p === a).peer).toBe(a)
    // Groups are apart; `consumer` mode is the group `default`.
    expect(consumers.select('e', { group: 'other' }, all)).toEqual({ group: 'other' })
    expect(consumers.select('e', { mode: 'consumer' }, all).group).toBe('default')
  })

  it('round-robin turns through the candidates and starts again when membership changes', () => {
    const consumers = createConsumers({ maxPerPeer: 8 })
    const [a, b, c] = [peer('a'), peer('b'), peer('c')]
    consumers.register(a, { event: 'e', group: 'g' })
    consumers.register(b, { event: 'e', group: 'g' })
    const next = (): PeerInfo | undefined => consumers.select('e', { group: 'g', selection: 'round-robin' }, all).peer
    expect([next(), next(), next()]).toEqual([a, b, a])
    consumers.register(c, { event: 'e', group: 'g' })
    expect([next(), next(), next(), next()]).toEqual([a, b, c, a])
    consumers.unregister(a, { event: 'e', group: 'g' })
    expect([next(), next()]).toEqual([b, c])
  })

  it('sticky keeps a key on its consumer while it stays a candidate, within a bounded map', () => {
    const consumers = createConsumers({ maxPerPeer: 8, maxStickyKeys: 2 })
    const [a, b] = [peer('a'), peer('b')]
    consumers.register(a, { event: 'e' })
    consumers.register(b, { event: 'e' })
    const pick = (stickyKey: string, isCandidate: (p: PeerInfo) => boolean = all): PeerInfo | undefined => consumers.select('e', { selection: 'sticky', stickyKey }, isCandidate).peer
    expect(pick('k1', p => p === b)).toBe(b)
    expect(pick('k1')).toBe(b)
    expect(pick('k1', p => p === a)).toBe(a)
    expect(pick('k1')).toBe(a)
    // Past the bound the oldest key is forgotten and chosen afresh.
    expect(pick('k2', p => p === b)).toBe(b)
    expect(pick('k3', p => p === b)).toBe(b)
    expect(pick('k1')).toBe(a)
    expect(pick('k2')).toBe(a)
  })

  it('bounds registrations per peer, and forgets a peer that left', () => {
    const consumers = createConsumers({ maxPerPeer: 2 })
    const a = peer('a')
    expect(consumers.register(a, { event: 'e1' })).toBe(true)
    expect(consumers.register(a, { event: 'e2' })).toBe(true)
    expect(consumers.register(a, { event: 'e3' })).toBe(false)
    // Registering again is not one more.
    expect(consumers.register(a, { event: 'e1', priority: 3 })).toBe(true)
    consumers.removePeer(a)
    expect(consumers.has('e1')).toBe(false)
    expect(consumers.has('e2')).toBe(false)
    expect(consumers.register(a, { event: 'e3' })).toBe(true)
  })

  it('orders registrations of several nodes by their times (peer id on a tie), and keeps them through a re-registration', () => {
    const consumers = createConsumers({ maxPerPeer: 8 })
    const [local, early, tied] = [peer('m'), peer('x'), peer('a')]
    consumers.register(local, { event: 'e', group: 'g' })
    const at = consumers.of(local)![0]!.at
    // Registrations another node made before, and in the same ms (its peer id sorts first).
    consumers.register(early, { event: 'e', group: 'g' }, at - 10)
    consumers.register(tied, { event: 'e', group: 'g' }, at)
    const order = (): string[] => ['first', 'first', 'first'].map((_, i) => consumers.select('e', { group: 'g' }, p => [early, tied, local].slice(i).includes(p)).peer!.id)
    expect(order()).toEqual(['x', 'a', 'm'])
    // Priority still comes first, whatever the time.
    consumers.register(local, { event: 'e', group: 'g', priority: 1 })
    expect(consumers.select('e', { group: 'g' }, all).peer).toBe(local)
    // What the other nodes learn: the default group and priority 0 left out, local times increasing.
    consumers.register(local, { event: 'f' })
    const held = consumers.of(local)!
    expect(held).toEqual([{ event: 'e', group: 'g', priority: 1, at: expect.any(Number) }, { event: 'f', at: expect.any(Number) }])
    expect(held[1]!.at).toBeGreaterThan(held[0]!.at)
    expect(consumers.of(peer('nobody'))).toBeUndefined()
  })

  it('forgets a peer whose only registration was made again', () => {
    const consumers = createConsumers({ maxPerPeer: 8 })
    const a = peer('a')
    consumers.register(a, { event: 'e' })
    consumers.register(a, { event: 'e', priority: 2 })
    consumers.removePeer(a)
    expect(consumers.has('e')).toBe(false)
    expect(consumers.of(a)).toBeUndefined()
    expect(consumers.unregister(a, { event: 'e' })).toBe(false)
  })
})
