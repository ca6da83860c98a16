import { padding } from '../lib/peers.mjs'
// Request/reply: `pairs` requesters each ask one responder by name (`route.reply`); the
// responder answers with the request's data, and the reply comes back to the requester only.
// A round trip is counted when the reply arrives.
import { cpuMsOf, startTarget } from '../lib/process.mjs'
import { createSink, measureSizes } from '../lib/traffic.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

export async function requests({ target, token, pairs, sizes, durationMs, rateFor }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  try {
    const sink = createSink()
    const names = Array.from({ length: pairs }, (_, i) => [`q${i}`, `a${i}`]).flat()
    const { peers, result: join } = await joinStorm({ target, ports: server.ports, token, names, sink, responders: name => name.startsWith('a') })
    const requesters = Array.from({ length: pairs }, (_, i) => peers.get(`q${i}`))
    const runs = await measureSizes({
      sink,
      sizes: join.converged ? sizes : [],
      sendFor: (size) => {
        const pad = padding(size)
        return (seq, i) => requesters[i % pairs].request(`a${i % pairs}`, seq, pad)
      },
      // Closed loop: as many requests in flight as there are pairs.
      window: pairs,
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
