import * as crypto from 'node:crypto'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { createTokenVerifier } from '../../src/core/auth.ts'

// The real comparison, watched: a verifier that compared with `===` or stopped at the first
// match would answer in a time that tells an attacker how close a guess was.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>()
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) }
})
const timingSafeEqual = vi.mocked(crypto.timingSafeEqual)

describe('createTokenVerifier', () => {
  beforeEach(() => {
    timingSafeEqual.mockClear()
  })

  it('accepts exactly the configured tokens', () => {
    const verify = createTokenVerifier(['alpha', 'beta'])
    expect(verify('alpha')).toBe(true)
    expect(verify('beta')).toBe(true)
    for (const token of ['alph', 'alphaa', 'ALPHA', '', 'gamma', undefined, 1, { toString: () => 'alpha' }])
      expect(verify(token), String(token)).toBe(false)
    expect(createTokenVerifier([])('anything')).toBe(false)
  })

  it('compares in constant time: equal-length digests against every token, right or wrong, whatever its length', () => {
    const verify = createTokenVerifier(['short', 'a much longer token than the other one', 'third'])
    for (const token of ['short', 'x', 'a much longer token than the other one but longer still']) {
      timingSafeEqual.mockClear()
      verify(token)
      expect(timingSafeEqual, token).toHaveBeenCalledTimes(3)
      for (const [a, b] of timingSafeEqual.mock.calls)
        expect((a as Uint8Array).length).toBe((b as Uint8Array).length)
    }
  })
})
