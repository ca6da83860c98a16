// `npm run build && node bench/registry-modes.mjs [-- --n=2000] [--concurrency=200]`
// The registry modes of one hub process (bin/hub-server.mjs, pinned to core 0; this load
// generator to core 1), raw AIRI frames on 127.0.0.1, a fresh hub for each run:
//  - join: `--n` peers connect, authenticate (asking for the mode) and announce at once; the time
//    until every peer's registry view lists every module (`none`: until one delta watcher's does),
//    and the registry bytes each peer received;
//  - reconnect (airi, delta): the same peers all drop and reconnect at once, a delta peer naming
//    the revision it held; the time until every view is complete again, and the bytes it took.
// Prints a Markdown table.
/* eslint-disable antfu/no-top-level-await, no-console -- a script: one run, printed */
import { spawnSync } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import process from 'node:process'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { pinned, startTarget } from './lib/process.mjs'
import { round } from './lib/stats.mjs'
import { targets, TOKEN } from './lib/targets.mjs'

const { values: args } = parseArgs({
  options: {
    n: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '200' },
  },
})

if (!process.env.BENCH_PINNED) {
  const [command, argv] = pinned(1, process.execPath, process.argv.slice(1))
  const { status } = spawnSync(command, argv, { stdio: 'inherit', env: { ...process.env, BENCH_PINNED: '1' } })
  process.exit(status ?? 1)
}

const N = Number(args.n)
const CONCURRENCY = Number(args.concurrency)
const TIMEOUT_MS = 120_000

const keyOf = m => `${m.peer}/${m.name}/${m.index ?? ''}`

/**
 * A raw peer in one mode, keeping the view a client builds: `airi` from syncs and per-change
 * events, `delta` from syncs and deltas (checking each starts where the view is), `none` none.
 */
function createPeer({ url, name, mode, since, onView, announce = true }) {
  // Asked at the upgrade too: on a hub without auth the socket is admitted before its first frame.
  const ws = new WebSocket(mode === 'airi' ? url : `${url}?registry=none`, { perMessageDeflate: false })
  const view = new Map()
  // `synced`: a sync or delta arrived since it authenticated (a view held from before is not one).
  const peer = { name, mode, bytes: 0, view, epoch: undefined, revision: -1, broken: 0, synced: false }
  peer.opened = new Promise((resolve) => {
    ws.once('open', resolve)
    ws.once('error', resolve)
  })
  let authenticated = false
  const send = event => ws.send(JSON.stringify({ json: event }))
  ws.on('open', () => send({ type: 'module:authenticate', data: { token: TOKEN, ...(mode !== 'airi' && { registry: { mode, since: since && { epoch: since.epoch, revision: since.revision } } }) } }))
  if (since) {
    peer.epoch = since.epoch
    peer.revision = since.revision
    for (const [key, value] of since.view)
      view.set(key, value)
  }
  ws.on('message', (data) => {
    const event = JSON.parse(data).json
    if (event.type !== 'module:authenticated' && (event.type.startsWith('registry:') || event.type.endsWith('announced')))
      peer.bytes += data.length
    switch (event.type) {
      case 'module:authenticated':
        if (!authenticated && announce)
          send({ type: 'module:announce', data: { name, identity: { plugin: name, instanceId: name } } })
        authenticated = true
        return
      case 'registry:modules:sync':
        view.clear()
        for (const m of event.data.modules)
          view.set(mode === 'delta' ? keyOf(m) : m.name, m)
        peer.epoch = event.data.epoch
        peer.revision = event.data.revision
        break
      case 'registry:modules:delta':
        if (event.data.from !== peer.revision)
          peer.broken++
        for (const key of event.data.removed)
          view.delete(keyOf(key))
        for (const m of event.data.added)
          view.set(keyOf(m), m)
        peer.revision = event.data.revision
        break
      case 'module:announced':
        view.set(event.data.name, event.data)
        break
      case 'module:de-announced':
        view.delete(event.data.name)
        break
      default:
        return
    }
    peer.synced = true
    onView(peer)
  })
  ws.on('error', () => {})
  peer.close = () => ws.terminate()
  return peer
}

// The watcher's view changed: the storm under way checks whether it is complete.
let onWatcher = () => {}

/** Joins `names` in `mode` (at most CONCURRENCY connecting at once); resolves once `complete(peers)` (null ms on timeout). */
async function storm({ url, names, mode, since = () => undefined, complete }) {
  const peers = []
  const startedAt = performance.now()
  let resolveDone
  const done = new Promise(resolve => resolveDone = resolve)
  const check = () => peers.length === names.length && complete(peers) && resolveDone(performance.now())
  onWatcher = check
  const queue = [...names]
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, names.length) }, async () => {
    while (queue.length > 0) {
      const peer = createPeer({ url, name: queue[0], mode, since: since(queue.shift()), onView: check })
      peers.push(peer)
      await peer.opened
    }
  }))
  check()
  let timer
  const endedAt = await Promise.race([done, new Promise(resolve => timer = setTimeout(resolve, TIMEOUT_MS, undefined))])
  clearTimeout(timer)
  return { peers, ms: endedAt === undefined ? null : round(endedAt - startedAt, 0) }
}

/** Resolves once `probe()` holds (polled). */
async function until(probe) {
  while (!probe())
    await new Promise(resolve => setTimeout(resolve, 20))
}

const names = Array.from({ length: N }, (_, i) => `peer-${i}`)
// Each row is printed once measured: a run cut short still shows what it measured.
function row({ mode, run, ms, bytesPerPeer, broken }) {
  console.log(`| ${mode} | ${run} | ${ms ?? 'timeout'} | ${bytesPerPeer} | ${mode === 'delta' ? broken : '–'} |`)
}

console.log(`\n${N} peers, one hub process\n`)
console.log('| mode | run | every view complete (ms) | registry bytes per peer | deltas off their revision |')
console.log('|---|---|---:|---:|---:|')
for (const mode of ['airi', 'delta', 'none']) {
  const server = await startTarget(targets.hub)
  const url = `ws://127.0.0.1:${server.ports[0]}/ws`
  // A delta peer without a module watches the registry: a `none` storm is complete once its view is.
  const watcher = createPeer({ url, name: 'watcher', mode: 'delta', onView: () => onWatcher(), announce: false })
  try {
    const complete = mode === 'none' ? () => watcher.view.size >= N : peers => peers.every(peer => peer.synced && peer.view.size >= N)
    const join = await storm({ url, names, mode, complete })
    const bytes = join.peers.reduce((sum, peer) => sum + peer.bytes, 0)
    row({ mode, run: 'join', ms: join.ms, bytesPerPeer: round(bytes / N, 0), broken: join.peers.reduce((sum, p) => sum + p.broken, 0) })
    if (mode !== 'none') {
      // What each delta peer held (the view it recovers from); AIRI peers start afresh.
      const held = mode === 'delta' ? new Map(join.peers.map(peer => [peer.name, { epoch: peer.epoch, revision: peer.revision, view: peer.view }])) : new Map()
      for (const peer of join.peers)
        peer.close()
      // Every module is gone before the peers come back (a view complete must be of the new ones).
      await until(() => watcher.view.size === 0)
      const back = await storm({ url, names, mode, since: name => held.get(name), complete })
      const backBytes = back.peers.reduce((sum, peer) => sum + peer.bytes, 0)
      row({ mode, run: 'reconnect', ms: back.ms, bytesPerPeer: round(backBytes / N, 0), broken: back.peers.reduce((sum, p) => sum + p.broken, 0) })
      for (const peer of back.peers)
        peer.close()
    }
    else {
      for (const peer of join.peers)
        peer.close()
    }
  }
  finally {
    watcher.close()
    await server.stop()
  }
}
