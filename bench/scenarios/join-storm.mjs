// Join storm: peers connect, authenticate and announce at once (at most `concurrency`
// joining at a time, so the listen backlog never drops SYNs); measures the time until every
// peer's registry view holds every module, and the registry bytes they received meanwhile.
import { performance } from 'node:perf_hooks'
import { round } from '../lib/stats.mjs'
import { urlOf } from '../lib/targets.mjs'

export async function joinStorm({ target, port, token, names, sink, concurrency = 500, timeoutMs = 120_000 }) {
  const total = names.length
  const url = urlOf(target, port)
  const peers = new Map()
  let converged = 0
  let resolveConverged
  const allConverged = new Promise(resolve => resolveConverged = resolve)
  const startedAt = performance.now()
  let convergedAt = 0

  const join = (name) => {
    let done = false
    const peer = target.peer({
      url,
      name,
      token,
      onBench: sink?.report,
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

  const queue = [...names]
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
