// `npm run build && npm run soak [-- --minutes=3] [--storm=3000] [--concurrency=50] [--out=<dir>]`
// Two soak runs against one `bin/hub-server.mjs` process (pinned to core 0; this load generator
// to core 1), traffic on 127.0.0.1 only:
//  - churn: connect → authenticate → announce → close cycles (half clean closes, half dropped
//    sockets) for `--minutes`; the hub's RSS sampled every 5 s and its slope after warm-up, then
//    the peers, modules and file descriptors left once the last peer is gone;
//  - reconnect storm: `--storm` peers join, then all drop at once and reconnect at once; the time
//    until every new peer's registry view is complete, and how many the hub closed (must be 0).
// Prints a Markdown summary and writes bench/results/<stamp>-soak.json.
import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import process from 'node:process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { memoryOf, pinned, startTarget } from './lib/process.mjs'
import { round } from './lib/stats.mjs'
import { targets, TOKEN } from './lib/targets.mjs'

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    storm: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '50' },
    out: { type: 'string', default: fileURLToPath(new URL('./results/', import.meta.url)) },
  },
})

if (!process.env.BENCH_PINNED) {
  const [command, argv] = pinned(1, process.execPath, process.argv.slice(1))
  const { status } = spawnSync(command, argv, { stdio: 'inherit', env: { ...process.env, BENCH_PINNED: '1' } })
  process.exit(status ?? 1)
}

const MIB = 2 ** 20
const SAMPLE_MS = 5000
// The first fifth of the churn (at least one sample) is warm-up: heaps and pools still grow.
const WARM_UP_SHARE = 0.2
const JOIN_CONCURRENCY = 500
const RETRY_MS = 250
const log = text => process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${text}\n`)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const frame = event => JSON.stringify({ json: event })
const AUTHENTICATE = frame({ type: 'module:authenticate', data: { token: TOKEN } })
const announce = (name, instanceId) => frame({ type: 'module:announce', data: { name, identity: { plugin: name, instanceId } } })

/** A string field of a registry delta, read without parsing the frame. */
function field(text, name) {
  const key = `"${name}":"`
  const at = text.indexOf(key) + key.length
  return text.slice(at, text.indexOf('"', at))
}

/**
 * A peer keeping the registry view a client builds (a sync replaces it; deltas edit it), keyed
 * by name and instance id. Deltas are read without JSON.parse: the load generator has one core.
 */
function createPeer(url, name, instanceId, onView) {
  const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true })
  const peer = { ws, view: new Set(), closedByHub: undefined, terminated: false }
  ws.on('open', () => {
    ws.send(AUTHENTICATE)
    ws.send(announce(name, instanceId))
  })
  ws.on('message', (data) => {
    const text = data.toString()
    if (text.startsWith('{"json":{"type":"module:announced"'))
      peer.view.add(`${field(text, 'name')}/${field(text, 'instanceId')}`)
    else if (text.startsWith('{"json":{"type":"module:de-announced"'))
      peer.view.delete(`${field(text, 'name')}/${field(text, 'instanceId')}`)
    else if (text.startsWith('{"json":{"type":"registry:modules:sync"'))
      peer.view = new Set(JSON.parse(text).json.data.modules.map(m => `${m.name}/${m.identity.instanceId}`))
    else if (text.startsWith('{"json":{"type":"transport:connection:heartbeat"') && text.includes('"ping"'))
      ws.send(frame({ type: 'transport:connection:heartbeat', data: { kind: 'pong', message: 'pong' } }))
    else
      return
    onView?.(peer)
  })
  ws.on('close', (code) => {
    if (!peer.terminated)
      peer.closedByHub = code
  })
  ws.on('error', () => {})
  peer.opened = new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  peer.terminate = () => {
    peer.terminated = true
    ws.terminate()
  }
  return peer
}

async function eachLimited(items, limit, task) {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length)
      await task(items[next++])
  }))
}

/** The hub's own counts, over a connection closed right after (so it holds no fd of ours). */
async function metricsOf(port) {
  const text = await new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', chunk => body += chunk)
      response.on('end', () => resolve(body))
    }).on('error', reject)
  })
  const value = name => Number(text.match(new RegExp(`^${name} (\\S+)$`, 'm'))?.[1] ?? Number.NaN)
  return {
    peers: value('hub_peers_connected'),
    modules: value('hub_modules_announced'),
    deltasSkipped: value('hub_registry_deltas_skipped_total'),
    repairs: value('hub_registry_repairs_total'),
  }
}

const fdsOf = pid => readdirSync(`/proc/${pid}/fd`).length

async function waitFor(done, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!(await done())) {
    if (Date.now() > deadline)
      return false
    await sleep(100)
  }
  return true
}

/** Least-squares slope of (minute, MiB) points. */
function slope(points) {
  const n = points.length
  if (n < 2)
    return null
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0)
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0)
  return sxx === 0 ? null : sxy / sxx
}

/** One life: connect, authenticate, announce, see itself in the registry, then close or drop. */
function cycle(url, i) {
  return new Promise((resolve) => {
    const name = `churn-${i}`
    const peer = createPeer(url, name, name, ({ view }) => {
      if (!view.has(`${name}/${name}`))
        return
      peer.terminated = true
      if (i % 2 === 0)
        peer.ws.close()
      else
        peer.ws._socket.destroy()
    })
    peer.ws.once('close', resolve)
    peer.ws.once('error', resolve)
  })
}

async function churn({ url, port, pid, minutes, concurrency }) {
  const metrics0 = await metricsOf(port)
  const baseline = { fds: fdsOf(pid), rss: memoryOf([pid]).rss, ...metrics0 }
  const started = performance.now()
  const end = started + minutes * 60_000
  const samples = []
  let cycles = 0
  const sampler = setInterval(() => {
    samples.push({ minute: round((performance.now() - started) / 60_000, 3), rssMiB: round(memoryOf([pid]).rss / MIB, 1), cycles })
    log(`churn: ${cycles} cycles, hub RSS ${samples.at(-1).rssMiB} MiB`)
  }, SAMPLE_MS)
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end)
      await cycle(url, cycles++)
  }))
  clearInterval(sampler)
  const settled = await waitFor(async () => (await metricsOf(port)).peers === baseline.peers && fdsOf(pid) <= baseline.fds, 30_000)
  const after = await metricsOf(port)
  const warmUp = Math.max(1, Math.floor(samples.length * WARM_UP_SHARE))
  const steady = samples.slice(warmUp)
  return {
    minutes,
    concurrency,
    cycles,
    cyclesPerSec: round(cycles / (minutes * 60), 0),
    settled,
    baseline: { peers: baseline.peers, modules: baseline.modules, fds: baseline.fds, rssMiB: round(baseline.rss / MIB, 1) },
    left: { peers: after.peers - baseline.peers, modules: after.modules - baseline.modules, fds: fdsOf(pid) - baseline.fds },
    rssMiB: { first: samples[0]?.rssMiB ?? null, last: samples.at(-1)?.rssMiB ?? null, max: Math.max(...samples.map(s => s.rssMiB)) },
    rssSlopeMiBPerMin: round(slope(steady.map(s => [s.minute, s.rssMiB])), 3),
    warmUpSamples: warmUp,
    samples,
  }
}

async function storm({ url, port, pid, size }) {
  const names = Array.from({ length: size }, (_, i) => `storm-${i}`)
  // An upgrade the hub refused (e.g. 408: it was too busy to read the request within its headers
  // deadline) is tried again, as a client's reconnect would; the retries are reported.
  let retries = 0
  const join = async (generation) => {
    const peers = []
    await eachLimited(names, JOIN_CONCURRENCY, async (name) => {
      while (true) {
        const peer = createPeer(url, name, `${name}-${generation}`)
        try {
          await peer.opened
          peers.push(peer)
          return
        }
        catch {
          retries++
          await sleep(RETRY_MS)
        }
      }
    })
    return peers
  }
  const complete = (peers, generation) => {
    const want = new Set(names.map(name => `${name}/${name}-${generation}`))
    return peers.every(peer => peer.view.size === want.size && [...want].every(key => peer.view.has(key)))
  }

  log(`storm: ${size} peers joining`)
  let started = performance.now()
  const first = await join(1)
  await waitFor(() => complete(first, 1), 300_000)
  const joinMs = performance.now() - started
  const before = await metricsOf(port)
  const joinRetries = retries

  log(`storm: ${size} peers drop and reconnect at once`)
  started = performance.now()
  for (const peer of first)
    peer.terminate()
  const second = await join(2)
  const converged = await waitFor(() => complete(second, 2), 300_000)
  const convergedMs = performance.now() - started
  const after = await metricsOf(port)
  const memory = memoryOf([pid])
  const closed = second.filter(peer => peer.closedByHub !== undefined)
  for (const peer of second)
    peer.terminate()
  return {
    peers: size,
    joinMs: round(joinMs, 0),
    converged,
    convergedMs: converged ? round(convergedMs, 0) : null,
    connectRetries: { join: joinRetries, reconnect: retries - joinRetries },
    closedByHub: closed.length,
    closeCodes: [...new Set(closed.map(peer => peer.closedByHub))],
    deltasSkipped: after.deltasSkipped - before.deltasSkipped,
    repairs: after.repairs - before.repairs,
    hubPeakRssMiB: round(memory.peak / MIB, 1),
  }
}

async function main() {
  const minutes = Number(args.minutes)
  const stormSize = Number(args.storm)
  const hub = await startTarget(targets.hub, { AUTHENTICATION_TOKEN: TOKEN })
  const [port] = hub.ports
  const [pid] = hub.pids
  const url = `ws://127.0.0.1:${port}/ws`
  let result
  try {
    log(`churn for ${minutes} min, ${args.concurrency} at a time (hub pid ${pid})`)
    const churnResult = await churn({ url, port, pid, minutes, concurrency: Number(args.concurrency) })
    const stormResult = await storm({ url, port, pid, size: stormSize })
    result = { date: new Date().toISOString(), node: process.version, churn: churnResult, storm: stormResult }
  }
  finally {
    await hub.stop()
  }

  const { churn: c, storm: s } = result
  process.stdout.write(`
## Soak (${result.date.slice(0, 16)}Z, Node ${result.node})

| churn | |
|---|---|
| duration, concurrency | ${c.minutes} min, ${c.concurrency} peers at a time |
| cycles (connect → authenticate → announce → close/drop) | ${c.cycles} (${c.cyclesPerSec}/s) |
| hub RSS first / max / last sample | ${c.rssMiB.first} / ${c.rssMiB.max} / ${c.rssMiB.last} MiB |
| RSS slope after warm-up (least squares) | ${c.rssSlopeMiBPerMin} MiB/min |
| left behind: peers / modules / fds | ${c.left.peers} / ${c.left.modules} / ${c.left.fds} |

| reconnect storm | |
|---|---|
| peers | ${s.peers} |
| first join, all views complete | ${s.joinMs} ms |
| drop all + reconnect all, all views complete | ${s.converged ? `${s.convergedMs} ms` : 'did not converge'} |
| upgrades refused and retried (join / reconnect) | ${s.connectRetries.join} / ${s.connectRetries.reconnect} |
| peers closed by the hub | ${s.closedByHub}${s.closeCodes.length ? ` (${s.closeCodes.join(', ')})` : ''} |
| registry deltas coalesced / repair syncs | ${s.deltasSkipped} / ${s.repairs} |
| hub peak RSS | ${s.hubPeakRssMiB} MiB |

`)
  mkdirSync(args.out, { recursive: true })
  const file = join(args.out, `${result.date.slice(0, 19).replaceAll(':', '-')}-soak.json`)
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
  log(`wrote ${file}`)
  process.exit(c.left.peers === 0 && c.left.modules === 0 && s.converged && s.closedByHub === 0 ? 0 : 1)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
