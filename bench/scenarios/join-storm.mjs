// Join storm: peers connect, authenticate and announce at once (at most `concurrency`
// joining at a time, so the listen backlog never drops SYNs); measures the time until every
// peer's registry view holds every module, and the registry bytes they received meanwhile.
import { performance } from 'node:perf_hooks'
import { round } from '../lib/stats.mjs'
import { urlOf } from '../lib/targets.mjs'

export async function joinStorm({ target, ports, token, names, sink, responders = () => false, concurrency = 500, timeoutMs = 120_000 }) {
  const total = names.length
  // With several nodes, peers alternate between them in the order of `names`.
  const urls = ports.map(port => urlOf(target, port))
  const peers = new Map()
  let converged = 0
  let resolveConverged
  const allConverged = new Promise(resolve => resolveConverged = resolve)
  const startedAt = performance.now()
  let convergedAt = 0

  const join = ([name, index]) => {
    let done = false
    const peer = target.peer({
      url: urls[index % urls.length],
      name,
      token,
      onBench: sink?.report,
      respond: responders(name),
      onView: (size) => {
        if (!done && size >= total) {
          done = true
          if (++converged === total) {
            convergedAt = performance.now()
            resolveConverged()
          }
        }
      },
    })
    peers.set(name, peer)
    return peer.ready
  }

  const queue = names.map((name, index) => [name, index])
  const workers = Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (queue.length > 0)
      await join(queue.shift())
  })
  let timer
  const timedOut = new Promise(resolve => timer = setTimeout(resolve, timeoutMs, 'timeout'))
  const outcome = await Promise.race([Promise.all(workers).then(() => allConverged), timedOut])
  clearTimeout(timer)
  const bytes = [...peers.values()].reduce((sum, peer) => sum + peer.bytes, 0)
  return {
    peers,
    result: {
      peers: total,
      converged: outcome !== 'timeout',
      convergedMs: outcome === 'timeout' ? null : round(convergedAt - startedAt, 0),
      convergedPeers: converged,
      registryBytes: bytes,
      registryBytesPerPeer: round(bytes / total, 0),
    },
  }
}

export function closePeers(peers) {
  for (const peer of peers.values())
    peer.close()
}
