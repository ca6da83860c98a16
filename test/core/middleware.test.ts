import type { RouteContext } from '../../src/core/middleware.ts'
import { describe, expect, it } from 'vitest'
import { composeMiddleware, defineMiddleware } from '../../src/core/middleware.ts'

function context(): RouteContext {
  let dropped = false
  return {
    event: { type: 't', data: {} },
    sender: { id: 's', authenticated: true },
    recipients: [],
    drop: () => { dropped = true },
    get dropped() { return dropped },
  }
}

describe('composeMiddleware', () => {
  it('runs as an onion and reaches the final step', async () => {
    const order: string[] = []
    const run = composeMiddleware([
      defineMiddleware(async (_, next) => { order.push('a>'); await next(); order.push('<a') }),
      defineMiddleware((_, next) => { order.push('b'); return next() }),
    ])
    await run(context(), () => { order.push('final') })
    expect(order).toEqual(['a>', 'b', 'final', '<a'])
  })

  it('stays synchronous when every middleware is', () => {
    let reached = false
    const result = composeMiddleware([(_, next) => next()])(context(), () => { reached = true })
    expect(result).toBeUndefined()
    expect(reached).toBe(true)
  })

  it('stops at a drop or when next is not called', () => {
    let reached = false
    const ctx = context()
    composeMiddleware([c => c.drop(), (_, next) => next()])(ctx, () => { reached = true })
    expect(ctx.dropped).toBe(true)
    composeMiddleware([() => {}])(context(), () => { reached = true })
    expect(reached).toBe(false)
  })

  it('refuses next() called twice', () => {
    const run = composeMiddleware([(_, next) => { next(); next() }])
    expect(() => run(context(), () => {})).toThrow('next() called more than once')
  })
})
