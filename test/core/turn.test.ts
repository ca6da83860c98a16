import { describe, expect, it } from 'vitest'
import { createTurnQueue } from '../../src/core/turn.ts'

const nextTurn = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

describe('createTurnQueue', () => {
  it('hands over one turn\'s items together, in order, at the turn\'s end', async () => {
    const batches: number[][] = []
    const queue = createTurnQueue<number>(items => batches.push(items))
    queue.push(1)
    queue.push(2)
    queue.push(3)
    expect(batches).toEqual([])
    await nextTurn()
    expect(batches).toEqual([[1, 2, 3]])
    queue.push(4)
    await nextTurn()
    expect(batches).toEqual([[1, 2, 3], [4]])
  })

  it('flushes at once when asked, and never hands over an empty batch', async () => {
    const batches: string[][] = []
    const queue = createTurnQueue<string>(items => batches.push(items))
    queue.push('bye')
    queue.flush()
    expect(batches).toEqual([['bye']])
    queue.flush()
    await nextTurn()
    expect(batches).toEqual([['bye']])
  })
})
