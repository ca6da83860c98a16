import { padding } from '../lib/peers.mjs'
import { cpuMsOf, startTarget } from '../lib/process.mjs'
import { createSink, measureSizes } from '../lib/traffic.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

/**
 * `pairs` senders, each sending to one receiver by name (`<from>i` to `<to>i`): the shape that
 * routed messages and request/reply share. `send(sender, receiverName, seq, pad)` sends one;
 * `responders` tells `joinStorm` which peers answer requests.
 */
export async function pointToPoint({ target, token, pairs, sizes, durationMs, rateFor, from, to, responders, send, window }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  try {
    const sink = createSink()
    const names = Array.from({ length: pairs }, (_, i) => [`${from}${i}`, `${to}${i}`]).flat()
    const { peers, result: join } = await joinStorm({ target, ports: server.ports, token, names, sink, responders })
    const senders = Array.from({ length: pairs }, (_, i) => peers.get(`${from}${i}`))
    const runs = await measureSizes({
      sink,
      sizes: join.converged ? sizes : [],
      sendFor: (size) => {
        const pad = padding(size)
        return (seq, i) => send(senders[i % pairs], `${to}${i % pairs}`, seq, pad)
      },
      window,
      durationMs,
      rateFor,
      cpuMs: () => cpuMsOf(server.pids),
    })
    closePeers(peers)
    return { pairs, join, runs }
  }
  finally {
    await server.stop()
  }
}
