import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

// The README's "Write a gateway" code is the example file that test/e2e/custom-gateway.test.ts
// runs: the two must not drift apart.
const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const EXAMPLE = readFileSync(new URL('../../examples/line-gateway.ts', import.meta.url), 'utf8')

describe('rEADME examples', () => {
  it('shows examples/line-gateway.ts as it is, in "Write a gateway"', () => {
    const section = README.slice(README.indexOf('## Write a gateway'))
    const code = /```ts\n([\s\S]*?)```/.exec(section)?.[1]
    expect(code).toBe(EXAMPLE)
  })
})
