import { padding } from '../lib/peers.mjs'
// Routed point-to-point: `pairs` senders each address one receiver by name
// (`plugin:<name>` for AIRI peers, a room for Socket.IO).
import { cpuMsOf, startTarget } from '../lib/process.mjs'
import { createSink, measureAtRate, measureThroughput } from '../lib/traffic.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

export async function routed({ target, token, pairs, sizes, durationMs, rateFor }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  try {
    const sink = createSink()
    const names = Array.from({ length: pairs }, (_, i) => [`s${i}`, `r${i}`]).flat()
    const { peers, result: join } = await joinStorm({ target, ports: server.ports, token, names, sink })
    const senders = Array.from({ length: pairs }, (_, i) => peers.get(`s${i}`))
    const runs = []
    for (const size of join.converged ? sizes : []) {
      const pad = padding(size)
      const send = (seq, i) => senders[i % pairs].sendTo(`r${i % pairs}`, seq, pad)
      const cpuBefore = cpuMsOf(server.pids)
      const throughput = await measureThroughput({ sink, send, perEvent: 1, window: 2 * pairs, durationMs })
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
