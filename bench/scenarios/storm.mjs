// Storms of `hub-server/client` peers beside the same storm of AIRI-protocol peers, in one run:
// - join storm: N peers connect, authenticate and announce at once (at most `concurrency`
//   joining at a time); time until every peer's view holds every module, registry bytes per peer;
// - reconnect storm: the hub process is stopped (SIGTERM) and started again on the same port under N
//   connected clients; time until every client is back, re-announced, and its view complete.
// The clients are the built package (`hub-server/client` = dist/client, `npm run build`), with
// their default backoff (1 s → 30 s, jitter 0.5), in a few processes (storm-clients.mjs).
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { cpuMsOf, startTarget } from '../lib/process.mjs'
import { round } from '../lib/stats.mjs'
import { urlOf } from '../lib/targets.mjs'
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
 * N clients split over `processes` child processes (storm-clients.mjs): one process holding
 * every view (N² entries) would spend its time collecting garbage, which no real client does.
 */
function createClients({ url, token, n, concurrency, processes }) {
  const shares = Array.from({ length: processes }, () => {
    const child = fork(fileURLToPath(new URL('./storm-clients.mjs', import.meta.url)), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const share = { child, complete: 0, bytes: 0, frames: 0, cpuMs: 0 }
    child.on('message', (report) => {
      Object.assign(share, report)
    })
    return share
  })
  const sum = key => shares.reduce((total, share) => total + share[key], 0)
  return {
    start: () => shares.forEach(({ child }, i) => child.send({
      cmd: 'start',
      url,
      token,
      n,
      from: Math.floor(n * i / processes),
      to: Math.floor(n * (i + 1) / processes),
      concurrency: Math.ceil(concurrency / processes),
    })),
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

async function clientStorms({ target, token, n, concurrency, processes, timeoutMs }) {
  const server = await startTarget(target, { AUTHENTICATION_TOKEN: token })
  const port = server.ports[0]
  let restarted
  const storm = createClients({ url: urlOf(target, port), token, n, concurrency, processes })
  try {
    const cpuBefore = cpuMsOf(server.pids)
    const startedAt = performance.now()
    storm.start()
    const convergedAt = await waitUntil(() => storm.complete() === n, timeoutMs)
    const bytes = storm.bytes()
    const join = {
      peers: n,
      converged: convergedAt !== 'timeout',
      convergedMs: convergedAt === 'timeout' ? null : round(convergedAt - startedAt, 0),
      convergedPeers: storm.complete(),
      registryBytes: bytes,
      registryBytesPerPeer: round(bytes / n, 0),
      framesPerPeer: round(storm.frames() / n, 0),
      serverCpuMs: cpuMsOf(server.pids) - cpuBefore,
      clientsCpuMs: storm.cpuMs(),
    }

    // The hub goes down under every client and comes back on the same port.
    const droppedAt = performance.now()
    await server.stop()
    await waitUntil(() => storm.complete() === 0, timeoutMs)
    restarted = await startTarget(target, { AUTHENTICATION_TOKEN: token }, { port })
    const upAt = performance.now()
    const recoveredAt = await waitUntil(() => storm.complete() === n, timeoutMs)
    const reconnect = {
      peers: n,
      recovered: recoveredAt !== 'timeout',
      downMs: round(upAt - droppedAt, 0),
      recoverMs: recoveredAt === 'timeout' ? null : round(recoveredAt - droppedAt, 0),
      afterUpMs: recoveredAt === 'timeout' ? null : round(recoveredAt - upAt, 0),
      recoveredPeers: storm.complete(),
      serverCpuMs: cpuMsOf(restarted.pids),
    }
    return { join, reconnect }
  }
  finally {
    await storm.close()
    await (restarted ?? server).stop()
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
  const { join, reconnect } = await clientStorms({ target, token, n, concurrency, processes, timeoutMs })
  return { n, processes, airi, client: join, reconnect, speedup: airi.convergedMs && join.convergedMs ? round(airi.convergedMs / join.convergedMs, 1) : null }
}
