// Routed point-to-point: `pairs` senders each address one receiver by name
// (`plugin:<name>` for AIRI peers, a room for Socket.IO).
import { pointToPoint } from './point-to-point.mjs'

export function routed(options) {
  return pointToPoint({ ...options, from: 's', to: 'r', send: (sender, to, seq, pad) => sender.sendTo(to, seq, pad), window: 2 * options.pairs })
}
