import { describe, expect, it } from 'vitest'
import { createAdmission } from '../../src/core/admission.ts'
import { createRateLimit, createTokenBucket } from '../../src/core/rate-limit.ts'

function fakeClock(): { now: () => number, advance: (ms: number) => void } {
  let t = 1_000
  return { now: () => t, advance: (ms) => { t += ms } }
}

describe('token bucket', () => {
  it('starts full, refills at its rate and never above its burst', () => {
    const bucket = createTokenBucket(10, 5, 0)
    for (let i = 0; i < 5; i++) {
      expect(bucket.has(1, 0)).toBe(true)
      bucket.take(1)
    }
    expect(bucket.has(1, 0)).toBe(false)
    expect(bucket.has(1, 100)).toBe(true) // 10/s: one token after 100 ms
    expect(bucket.has(2, 100)).toBe(false)
    expect(bucket.has(5, 10_000)).toBe(true)
    expect(bucket.has(6, 20_000)).toBe(false) // capped at the burst
  })
})

describe('rate limit', () => {
  const options = { eventsPerSec: 10, eventsBurst: 20, bytesPerSec: 1000, bytesBurst: 1000, graceMs: 1000 }

  it('passes a sender under the limit, however long it keeps going', () => {
    const clock = fakeClock()
    const limit = createRateLimit(options, clock.now)
    for (let i = 0; i < 1000; i++) {
      expect(limit.take(50)).toBe('pass')
      clock.advance(100) // 10 frames and 500 bytes a second
    }
  })

  it('allows the burst at once, then answers the first refusal, drops the rest, and closes past the grace', () => {
    const clock = fakeClock()
    const limit = createRateLimit(options, clock.now)
    const verdicts = Array.from({ length: 25 }, () => limit.take(1))
    expect(verdicts.slice(0, 20)).toEqual(Array.from({ length: 20 }, () => 'pass'))
    expect(verdicts.slice(20)).toEqual(['limited', 'dropped', 'dropped', 'dropped', 'dropped'])
    // Still flooding: frames refill one per 100 ms but the flood takes them and stays refused.
    const later: string[] = []
    for (let i = 0; i < 110; i++) {
      clock.advance(10)
      later.push(limit.take(1))
    }
    expect(later).toContain('pass') // the refill still lets some through
    expect(later.at(-1)).toBe('close') // over the limit for more than a second
  })

  it('starts a new episode (one new error) after a quiet grace', () => {
    const clock = fakeClock()
    const limit = createRateLimit({ ...options, eventsBurst: 1 }, clock.now)
    expect(limit.take(1)).toBe('pass')
    expect(limit.take(1)).toBe('limited')
    clock.advance(1000)
    expect(limit.take(1)).toBe('pass')
    expect(limit.take(1)).toBe('limited')
  })

  it('limits bytes: one large frame passes a full bucket, the next waits for the refill', () => {
    const clock = fakeClock()
    const limit = createRateLimit(options, clock.now)
    expect(limit.take(1000)).toBe('pass')
    expect(limit.take(1)).toBe('limited')
    clock.advance(500)
    expect(limit.take(400)).toBe('pass')
  })

  it('is off when both rates are 0', () => {
    const limit = createRateLimit({ ...options, eventsPerSec: 0, bytesPerSec: 0 })
    for (let i = 0; i < 10_000; i++)
      expect(limit.take(1e9)).toBe('pass')
  })
})

describe('admission', () => {
  it('refuses past maxPeers, and past maxPendingPerAddress only sockets that bring no token', () => {
    const admission = createAdmission({ maxPeers: 4, maxPendingPerAddress: 2 })
    const a1 = admission.open('a', true)
    admission.open('a', true)
    expect(admission.refusal('a', true)).toBe('pending_per_address')
    expect(admission.refusal('a', false)).toBeUndefined()
    expect(admission.refusal('b', true)).toBeUndefined()
    a1.authenticated()
    expect(admission.refusal('a', true)).toBeUndefined()
    admission.open('b', false)
    admission.open('c', false)
    expect(admission.sockets).toBe(4)
    expect(admission.refusal('d', false)).toBe('max_peers')
    a1.close()
    a1.close() // idempotent
    expect(admission.sockets).toBe(3)
    expect(admission.refusal('d', false)).toBeUndefined()
  })

  it('releases a pending slot when its socket closes unauthenticated', () => {
    const admission = createAdmission({ maxPeers: 10, maxPendingPerAddress: 1 })
    const ticket = admission.open('a', true)
    expect(admission.refusal('a', true)).toBe('pending_per_address')
    ticket.close()
    expect(admission.refusal('a', true)).toBeUndefined()
    expect(admission.sockets).toBe(0)
  })
})
