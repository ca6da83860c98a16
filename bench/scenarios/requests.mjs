// Request/reply: `pairs` requesters each ask one responder by name (`route.reply`); the
// responder answers with the request's data, and the reply comes back to the requester only.
// A round trip is counted when the reply arrives.
import { pointToPoint } from './point-to-point.mjs'

export function requests(options) {
  return pointToPoint({
    ...options,
    from: 'q',
    to: 'a',
    responders: name => name.startsWith('a'),
    send: (requester, responder, seq, pad) => requester.request(responder, seq, pad),
    // Closed loop: as many requests in flight as there are pairs.
    window: options.pairs,
  })
}
