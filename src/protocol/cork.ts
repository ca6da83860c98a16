import { setImmediate } from 'node:timers'

/** A stream that can hold writes back and release them together (a `net.Socket`). */
export interface Corkable {
  cork: () => void
  uncork: () => void
}

/**
 * A socket's writes held back in one turn are let out early past this many frames. In a join
 * storm one turn can queue hundreds of registry deltas per socket, and held back they all sit in
 * memory at once (each queued write costs a few hundred bytes even when its frame is shared);
 * a writev per few frames already keeps the syscalls few.
 */
export const MAX_CORKED_FRAMES = 8

/**
 * Holds back each socket's writes until the end of the current event-loop turn, then releases
 * them in one go: a burst of frames to one peer (a join storm's registry deltas, a fan-out of
 * several events read in one chunk) becomes one `writev` per `MAX_CORKED_FRAMES` instead of one
 * per frame. Frames and their order are unchanged; they leave in the same turn, before any
 * timer runs.
 * The returned function corks a socket for one more frame and tells whether this was its first
 * write of the turn.
 */
export function createTickCorker(): (socket: Corkable) => boolean {
  // How many frames each corked socket holds back.
  const corked = new Map<Corkable, number>()

  function release(): void {
    for (const socket of corked.keys())
      socket.uncork()
    corked.clear()
  }

  return (socket) => {
    const held = corked.get(socket)
    if (held === undefined) {
      if (corked.size === 0)
        setImmediate(release)
      socket.cork()
      corked.set(socket, 1)
      return true
    }
    if (held >= MAX_CORKED_FRAMES) {
      socket.uncork()
      socket.cork()
      corked.set(socket, 1)
    }
    else {
      corked.set(socket, held + 1)
    }
    return false
  }
}
