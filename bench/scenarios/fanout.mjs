// Fan-out: one sender, N receivers; each bench event goes to every receiver.
// The setup is itself a join storm of N + 1 peers and gives the memory figures.
// With `dashboard`, one dashboard page's stream is open on the (first) node throughout.
import { openDashboardStream } from '../lib/dashboard.mjs'
import { padding } from '../lib/peers.mjs'
import { cpuMsOf, memoryOf, startTarget } from '../lib/process.mjs'
import { createSink, measureAtRate, measureThroughput } from '../lib/traffic.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

export async function fanout({ target, token, n, sizes, durationMs, rateFor, window = 8, dashboard = false }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  try {
    const page = dashboard ? await openDashboardStream(server.ports[0], token) : undefined
    const baseline = memoryOf(server.pids).rss
    const sink = createSink()
    const names = ['sender', ...Array.from({ length: n }, (_, i) => `r${i}`)]
    const { peers, result: join } = await joinStorm({ target, ports: server.ports, token, names, sink })
    const memory = { baseline, ...memoryOf(server.pids) }
    const sender = peers.get('sender')
    const runs = []
    for (const size of join.converged ? sizes : []) {
      const pad = padding(size)
      const send = seq => sender.broadcast(seq, pad)
      const cpuBefore = cpuMsOf(server.pids)
      const throughput = await measureThroughput({ sink, send, perEvent: n, window, durationMs })
      throughput.serverCpuMsPer1000 = Math.round((cpuMsOf(server.pids) - cpuBefore) / throughput.deliveries * 1000 * 100) / 100
      const fixed = await measureAtRate({ sink, send, perEvent: n, rate: rateFor(size, throughput), durationMs })
      runs.push({ size, throughput, fixed })
    }
    closePeers(peers)
    const stream = await page?.close()
    return { n, join, memory, runs, peakAfterTraffic: memoryOf(server.pids).peak, ...(stream && { dashboard: stream }) }
  }
  finally {
    await server.stop()
  }
}
