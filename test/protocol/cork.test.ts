import type { AddressInfo } from 'node:net'
import { Buffer } from 'node:buffer'
import { once } from 'node:events'
import { createServer, Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createTickCorker, MAX_CORKED_FRAMES } from '../../src/protocol/cork.ts'

const cleanup: Array<() => void> = []
afterEach(() => {
  for (const fn of cleanup.splice(0))
    fn()
})

/** A real TCP connection on localhost: the writing socket, and everything its peer received. */
async function connection(): Promise<{ socket: Socket, received: () => string }> {
  let text = ''
  const server = createServer(peer => peer.on('data', (chunk) => {
    text += chunk.toString()
  }))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const socket = new Socket()
  socket.connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(socket, 'connect')
  cleanup.push(() => {
    socket.destroy()
    server.close()
  })
  return { socket, received: () => text }
}

describe('createTickCorker', () => {
  it('holds a turn\'s writes back, but never more than MAX_CORKED_FRAMES of them, keeping their order', async () => {
    const { socket, received } = await connection()
    const cork = createTickCorker()
    const frame = (i: number): string => `${String(i).padStart(3, '0')}${'x'.repeat(97)}`
    const firsts: boolean[] = []
    let mostHeld = 0
    for (let i = 0; i < 5 * MAX_CORKED_FRAMES; i++) {
      firsts.push(cork(socket))
      socket.write(Buffer.from(frame(i)))
      mostHeld = Math.max(mostHeld, socket.writableLength)
    }
    // Held back in this turn (nothing written yet for the last ones), never more than the cap.
    expect(socket.writableLength).toBeGreaterThan(0)
    expect(mostHeld).toBe(MAX_CORKED_FRAMES * 100)
    expect(firsts.filter(Boolean)).toHaveLength(1)
    await new Promise(resolve => setImmediate(resolve))
    expect(socket.writableCorked).toBe(0)
    const expected = Array.from({ length: 5 * MAX_CORKED_FRAMES }, (_, i) => frame(i)).join('')
    await expect.poll(received).toBe(expected)
    // A new turn starts afresh.
    expect(cork(socket)).toBe(true)
  })
})
