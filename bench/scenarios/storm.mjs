// Storms of `hub-server/client` peers beside the same storm of AIRI-protocol peers, in one run:
// - join storm: N peers connect, authenticate and announce at once (at most `concurrency`
//   joining at a time); time until every peer's view holds every module, registry bytes per peer;
// - reconnect storm: the hub process is stopped (SIGTERM) and started again on the same port under N
//   connected clients; time until every client is back, re-announced, and its view complete.
// The clients are the built package (`hub-server/client` = dist/client, `npm run build`), with
// their default backoff (1 s → 30 s, jitter 0.5), in a few processes (storm-clients.mjs).
// Beside them, what bounds a storm on this machine: N bare `ws` sockets opening (to the raw relay),
// N peers of the delta capability that count modules without parsing them (as the AIRI peers do),
// N clients that want no registry (`registry: 'none'`), and the load generator building N views of
// N modules with no network at all.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { cpuMsOf, startTarget } from '../lib/process.mjs'
import { round } from '../lib/stats.mjs'
import { targets, urlOf } from '../lib/targets.mjs'
import { closePeers, joinStorm } from './join-storm.mjs'

/** Resolves to the time `done()` first held (checked every 20 ms), or 'timeout' after `timeoutMs`. */
function waitUntil(done, timeoutMs) {
  return new Promise((resolve) => {
    const deadline = performance.now() + timeoutMs
    const timer = setInterval(() => {
      if (done()) {
        clearInterval(timer)
        resolve(performance.now())
      }
      else if (performance.now() > deadline) {
        clearInterval(timer)
        resolve('timeout')
      }
    }, 20)
  })
}

/**
 * N peers of `kind` split over `processes` child processes (storm-clients.mjs), started once
 * every process is loaded: one process holding every view (N² entries) would spend its time
 * collecting garbage, which no real client does.
 */
async function createShares({ kind, url, token, n, concurrency, processes }) {
  const shares = Array.from({ length: processes }, () => {
    const child = fork(fileURLToPath(new URL('./storm-clients.mjs', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const share = { child, ready: once(child, 'message'), complete: 0, bytes: 0, frames: 0, cpuMs: 0 }
    child.on('message', (report) => {
      Object.assign(share, report)
    })
    return share
  })
  await Promise.all(shares.map(share => share.ready))
  const sum = key => shares.reduce((total, share) => total + share[key], 0)
  const range = i => ({ from: Math.floor(n * i / processes), to: Math.floor(n * (i + 1) / processes) })
  return {
    start: () => shares.forEach(({ child }, i) => child.send({ cmd: 'start', kind, url, token, n, ...range(i), concurrency: Math.ceil(concurrency / processes) })),
    /** Every process builds its share of N views of N modules, in deltas of `perFrame` entries. */
    views: perFrame => shares.forEach(({ child }, i) => child.send({ cmd: 'views', n, perFrame, ...range(i) })),
    bytes: () => sum('bytes'),
    frames: () => sum('frames'),
    cpuMs: () => sum('cpuMs'),
    complete: () => sum('complete'),
    close: () => Promise.all(shares.map(({ child }) => {
      child.send({ cmd: 'close' })
      return once(child, 'exit')
    })),
  }
}

/**
 * A join storm of `kind` peers against a fresh `target` server: time until all are complete,
 * bytes, frames and CPU. `reconnect` (clients only) then restarts the server under them.
 */
async function shareStorm({ kind, target, token, n, concurrency, processes, timeoutMs, reconnect = false }) {
  let server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  const port = server.ports[0]
  const storm = await createShares({ kind, url: urlOf(target, port), token, n, concurrency, processes })
  try {
    const cpuBefore = cpuMsOf(server.pids)
    const startedAt = performance.now()
    storm.start()
    const convergedAt = await waitUntil(() => storm.complete() === n, timeoutMs)
    const join = {
      peers: n,
      converged: convergedAt !== 'timeout',
      convergedMs: convergedAt === 'timeout' ? null : round(convergedAt - startedAt, 0),
      convergedPeers: storm.complete(),
      registryBytesPerPeer: round(storm.bytes() / n, 0),
      framesPerPeer: round(storm.frames() / n, 0),
      serverCpuMs: cpuMsOf(server.pids) - cpuBefore,
      clientsCpuMs: storm.cpuMs(),
    }
    if (!reconnect)
      return { join }

    // The hub goes down under every client and comes back on the same port.
    const droppedAt = performance.now()
    await server.stop()
    await waitUntil(() => storm.complete() === 0, timeoutMs)
    server = await startTarget(target, { AUTHENTICATION_TOKEN: token }, { port })
    const upAt = performance.now()
    const recoveredAt = await waitUntil(() => storm.complete() === n, timeoutMs)
    return {
      join,
      reconnect: {
        peers: n,
        recovered: recoveredAt !== 'timeout',
        downMs: round(upAt - droppedAt, 0),
        recoverMs: recoveredAt === 'timeout' ? null : round(recoveredAt - droppedAt, 0),
        afterUpMs: recoveredAt === 'timeout' ? null : round(recoveredAt - upAt, 0),
        recoveredPeers: storm.complete(),
        serverCpuMs: cpuMsOf(server.pids),
      },
    }
  }
  finally {
    await storm.close()
    await server.stop()
  }
}

/** The load generator alone building N views of N modules (no network), in deltas of `perFrame`. */
async function viewsFloor({ n, processes, perFrame, timeoutMs }) {
  const shares = await createShares({ n, processes })
  try {
    const startedAt = performance.now()
    shares.views(perFrame)
    const doneAt = await waitUntil(() => shares.complete() === n, timeoutMs)
    return { views: n, entries: n * n, perFrame, ms: doneAt === 'timeout' ? null : round(doneAt - startedAt, 0), cpuMs: shares.cpuMs() }
  }
  finally {
    await shares.close()
  }
}

export async function storms({ target, token, n, concurrency = 500, processes = 4, timeoutMs = 120_000 }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  let airi
  try {
    const names = Array.from({ length: n }, (_, i) => `p${i}`)
    const cpuBefore = cpuMsOf(server.pids)
    const { peers, result } = await joinStorm({ target, ports: server.ports, token, names, concurrency, timeoutMs })
    closePeers(peers)
    airi = { ...result, serverCpuMs: cpuMsOf(server.pids) - cpuBefore }
  }
  finally {
    await server.stop()
  }
  const options = { token, n, concurrency, processes, timeoutMs }
  const bare = (await shareStorm({ ...options, kind: 'bare', target: targets.ws })).join
  const counting = (await shareStorm({ ...options, kind: 'counting', target })).join
  const quiet = (await shareStorm({ ...options, kind: 'quiet', target })).join
  const { join: client, reconnect } = await shareStorm({ ...options, kind: 'client', target, reconnect: true })
  const views = await viewsFloor({ n, processes, perFrame: Math.max(1, Math.round(n / client.framesPerPeer)), timeoutMs })
  const speedup = storm => airi.convergedMs && storm.convergedMs ? round(airi.convergedMs / storm.convergedMs, 1) : null
  return { n, processes, airi, bare, counting, quiet, client, reconnect, views, speedup: speedup(client), countingSpeedup: speedup(counting) }
}
