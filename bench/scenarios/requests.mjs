import { padding } from '../lib/peers.mjs'
// Request/reply: `pairs` requesters each ask one responder by name (`route.reply`); the
// responder answers with the request's data, and the reply comes back to the requester only.
// A round trip is counted when the reply arrives.
import { cpuMsOf, startTarget } from '../lib/process.mjs'
import { createSink, measureAtRate, measureThroughput } from '../lib/traffic.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

export async function requests({ target, token, pairs, sizes, durationMs, rateFor }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  try {
    const sink = createSink()
    const names = Array.from({ length: pairs }, (_, i) => [`q${i}`, `a${i}`]).flat()
    const { peers, result: join } = await joinStorm({ target, ports: server.ports, token, names, sink, responders: name => name.startsWith('a') })
    const requesters = Array.from({ length: pairs }, (_, i) => peers.get(`q${i}`))
    const runs = []
    for (const size of join.converged ? sizes : []) {
      const pad = padding(size)
      const send = (seq, i) => requesters[i % pairs].request(`a${i % pairs}`, seq, pad)
      const cpuBefore = cpuMsOf(server.pids)
      // Closed loop: as many requests in flight as there are pairs.
      const throughput = await measureThroughput({ sink, send, perEvent: 1, window: pairs, durationMs })
      throughput.serverCpuMsPer1000 = Math.round((cpuMsOf(server.pids) - cpuBefore) / throughput.deliveries * 1000 * 100) / 100
      const fixed = await measureAtRate({ sink, send, perEvent: 1, rate: rateFor(size, throughput), durationMs })
      runs.push({ size, throughput, fixed })
    }
    closePeers(peers)
    return { pairs, join, runs }
  }
  finally {
    await server.stop()
  }
}
