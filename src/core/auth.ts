import type { Buffer } from 'node:buffer'
import { createHash, timingSafeEqual } from 'node:crypto'

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/**
 * Checks a presented token against the configured ones in constant time. Hashing both sides
 * first makes the comparison independent of the tokens' lengths.
 */
export function createTokenVerifier(tokens: readonly string[]): (token: unknown) => boolean {
  const expected = tokens.map(digest)
  return (token) => {
    if (typeof token !== 'string')
      return false
    const presented = digest(token)
    let ok = false
    for (const candidate of expected)
      ok = timingSafeEqual(candidate, presented) || ok
    return ok
  }
}
