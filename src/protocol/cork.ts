import { setImmediate } from 'node:timers'

/** A stream that can hold writes back and release them together (a `net.Socket`). */
export interface Corkable {
  cork: () => void
  uncork: () => void
}

/**
 * Holds back each socket's writes until the end of the current event-loop turn, then releases
 * them in one go: a burst of frames to one peer (a join storm's registry deltas, a fan-out of
 * several events read in one chunk) becomes one `writev` instead of one per frame. Frames and
 * their order are unchanged; they leave in the same turn, before any timer runs.
 * The returned function corks a socket and tells whether this was its first write of the turn.
 */
export function createTickCorker(): (socket: Corkable) => boolean {
  const corked = new Set<Corkable>()

  function release(): void {
    for (const socket of corked)
      socket.uncork()
    corked.clear()
  }

  return (socket) => {
    if (corked.has(socket))
      return false
    if (corked.size === 0)
      setImmediate(release)
    socket.cork()
    corked.add(socket)
    return true
  }
}
