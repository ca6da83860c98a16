import { padding } from '../lib/peers.mjs'
// Routed point-to-point: `pairs` senders each address one receiver by name
// (`plugin:<name>` for AIRI peers, a room for Socket.IO).
import { cpuMsOf, startTarget } from '../lib/process.mjs'
import { createSink, measureSizes } from '../lib/traffic.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

export async function routed({ target, token, pairs, sizes, durationMs, rateFor }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  try {
    const sink = createSink()
    const names = Array.from({ length: pairs }, (_, i) => [`s${i}`, `r${i}`]).flat()
    const { peers, result: join } = await joinStorm({ target, ports: server.ports, token, names, sink })
    const senders = Array.from({ length: pairs }, (_, i) => peers.get(`s${i}`))
    const runs = await measureSizes({
      sink,
      sizes: join.converged ? sizes : [],
      sendFor: (size) => {
        const pad = padding(size)
        return (seq, i) => senders[i % pairs].sendTo(`r${i % pairs}`, seq, pad)
      },
      window: 2 * pairs,
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
