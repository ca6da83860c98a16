// Slow consumer: one receiver stops reading while the others keep going. Compares the
// others' latency with a control phase, tracks the server's memory, and reports how the
// slow peer's connection ended.
import { performance } from 'node:perf_hooks'
import { padding } from '../lib/peers.mjs'
import { memoryOf, startTarget } from '../lib/process.mjs'
import { round } from '../lib/stats.mjs'
import { createSink, measureAtRate } from '../lib/traffic.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

const SAMPLE_MS = 100
const CLOSE_WAIT_MS = 3000
const WARM_UP_MS = 500

export async function slowConsumer({ target, token, others, size, rate, durationMs }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  try {
    const sink = createSink()
    const names = ['sender', 'slow', ...Array.from({ length: others }, (_, i) => `o${i}`)]
    const { peers } = await joinStorm({ target, ports: server.ports, token, names, sink })
    const sender = peers.get('sender')
    const slow = peers.get('slow')
    const pad = padding(size)
    const send = seq => sender.broadcast(seq, pad)

    await measureAtRate({ sink, send, perEvent: others + 1, rate, durationMs: WARM_UP_MS })
    const control = await measureAtRate({ sink, send, perEvent: others + 1, rate, durationMs })
    slow.pause()
    const before = memoryOf(server.pids).rss
    let maxRss = before
    const sampler = setInterval(() => {
      maxRss = Math.max(maxRss, memoryOf(server.pids).rss)
    }, SAMPLE_MS)
    const slowed = await measureAtRate({ sink, send, perEvent: others, rate, durationMs })
    clearInterval(sampler)
    slow.resume()
    const deadline = performance.now() + CLOSE_WAIT_MS
    while (slow.closed === undefined && performance.now() < deadline)
      await new Promise(resolve => setTimeout(resolve, 20))
    const slowPeerClosed = slow.closed ?? 'still open'
    closePeers(peers)
    return {
      others,
      size,
      rate,
      pushedToSlowBytes: slowed.events * size,
      control: control.latency,
      slowed: slowed.latency,
      p99Ratio: round(slowed.latency.p99 / control.latency.p99),
      rssGrowth: maxRss - before,
      slowPeerClosed,
    }
  }
  finally {
    await server.stop()
  }
}
