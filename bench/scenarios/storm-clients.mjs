// One share of a storm, in a process of its own (as clients are, in life). `start` joins peers
// c<from>…c<to - 1> (at most `concurrency` joining at a time), of one `kind`:
// - `client`: `hub-server/client` peers, each keeping a live view (`client.modules`);
// - `quiet`: `hub-server/client` peers with `registry: 'none'` (complete once open: no view);
// - `counting`: raw `ws` peers asking for registry deltas that count the modules they are told of
//   without parsing the entries, as the bench's AIRI peers count `module:announced` frames;
// - `bare`: raw `ws` sockets that only open (the floor of any storm on this machine).
// It reports to its parent, every 20 ms while anything changes, how many are complete (a view
// of `n` modules; for `bare`, open) and the bytes and frames they received. `views` builds, with
// no network, as many views of `n` modules as the share has peers (JSON.parse and a Map, the least
// a client keeping a view does) and reports when done. `close` ends it.
import { Buffer } from 'node:buffer'
import process from 'node:process'
import { createClient } from 'hub-server/client'
import WebSocket from 'ws'

const peers = []
let bytes = 0
let frames = 0

/** CPU spent since the work began (loading this process does not count). */
let cpuAtStart = 0
function cpuMs() {
  const { user, system } = process.cpuUsage()
  return Math.round((user + system) / 1000) - cpuAtStart
}

class Counting extends WebSocket {
  constructor(address) {
    super(address, { perMessageDeflate: false })
    this.on('message', (data) => {
      bytes += data.length
      frames++
    })
  }
}

function joinClient({ url, token, name, n, joined, registry = 'delta' }) {
  const client = createClient({ url, token, WebSocket: Counting, module: { name }, registry })
  client.onError(() => {})
  // Each open lets the next peer join, so that `concurrency` join at a time.
  let first = true
  client.onOpen(() => {
    if (first)
      joined()
    first = false
  })
  return { complete: () => client.status === 'open' && (registry === 'none' || client.modules.size === n), close: () => client.close() }
}

const DELTA = Buffer.from('{"json":{"type":"registry:modules:delta"')
const REMOVED = Buffer.from('"removed":')
const ENTRY = Buffer.from('{"peer":')

/** Entries in a delta's `added` (a join storm has no removals): its `{"peer":` keys, counted in the bytes. */
function countAdded(data) {
  const end = data.indexOf(REMOVED)
  let count = 0
  for (let at = data.indexOf(ENTRY); at !== -1 && at < end; at = data.indexOf(ENTRY, at + ENTRY.length))
    count++
  return count
}

function joinCounting({ url, token, name, n, joined }) {
  const ws = new Counting(`${url}?registry=none`)
  let size = 0
  ws.on('open', () => {
    ws.send(JSON.stringify({ type: 'module:authenticate', data: { token, registry: { mode: 'delta' } } }))
    ws.send(JSON.stringify({ type: 'module:announce', data: { name, identity: { plugin: name, instanceId: name } } }))
    joined()
  })
  ws.on('message', (data) => {
    if (data.length > DELTA.length && data.compare(DELTA, 0, DELTA.length, 0, DELTA.length) === 0)
      return void (size += countAdded(data))
    const event = JSON.parse(data)
    const { type, data: payload } = event.json ?? event
    if (type === 'registry:modules:sync')
      size = payload.modules.length
    else if (type === 'transport:connection:heartbeat' && payload.kind === 'ping')
      ws.send(JSON.stringify({ type: 'transport:connection:heartbeat', data: { kind: 'pong' } }))
  })
  ws.on('error', () => {})
  return { complete: () => ws.readyState === WebSocket.OPEN && size === n, close: () => ws.terminate() }
}

function joinBare({ url, joined }) {
  const ws = new Counting(url)
  ws.on('open', joined)
  ws.on('error', () => {})
  return { complete: () => ws.readyState === WebSocket.OPEN, close: () => ws.terminate() }
}

const joiners = { client: joinClient, quiet: options => joinClient({ ...options, registry: 'none' }), counting: joinCounting, bare: joinBare }

function start({ kind, url, token, from, to, n, concurrency }) {
  const queue = Array.from({ length: to - from }, (_, i) => from + i)
  const join = () => {
    if (queue.length > 0)
      peers.push(joiners[kind]({ url, token, name: `c${queue.shift()}`, n, joined: join }))
  }
  for (let i = 0; i < concurrency; i++)
    join()
  let last = ''
  setInterval(() => {
    const complete = peers.filter(peer => peer.complete()).length
    const report = `${complete}/${bytes}`
    if (report !== last)
      process.send({ complete, bytes, frames, cpuMs: cpuMs() })
    last = report
  }, 20)
}

/** A random id of the length of the hub's peer ids (nanoid, 21 characters). */
const randomId = () => Array.from({ length: 21 }, () => 'abcdefghijklmnopqrstuvwxyz0123456789_-'[Math.floor(Math.random() * 38)]).join('')

/** `count` views of `n` modules, each fed by deltas of `perFrame` entries shaped as the hub's. */
function views({ from, to, n, perFrame }) {
  const entries = Array.from({ length: n }, (_, i) => ({ peer: randomId(), name: `c${i}`, identity: { plugin: `c${i}`, instanceId: `c${i}-${randomId().slice(0, 8)}`, labels: {} }, healthy: true }))
  const deltas = []
  for (let at = 0; at < n; at += perFrame) {
    const data = { epoch: randomId(), revision: at + perFrame, from: at, added: entries.slice(at, at + perFrame), removed: [], health: [] }
    deltas.push(Buffer.from(JSON.stringify({ type: 'registry:modules:delta', data, metadata: { source: { plugin: 'hub-server', instanceId: 'hub' }, event: { id: randomId() } } })))
  }
  const kept = []
  for (let i = from; i < to; i++) {
    const view = new Map()
    for (const delta of deltas) {
      for (const entry of JSON.parse(delta.toString()).data.added)
        view.set(`${entry.name}@${entry.peer}`, entry)
    }
    kept.push(view)
  }
  process.send({ complete: kept.length, cpuMs: cpuMs() })
}

process.on('message', (message) => {
  if (message.cmd !== 'close')
    cpuAtStart = cpuMs()
  if (message.cmd === 'start') {
    start(message)
  }
  else if (message.cmd === 'views') {
    views(message)
  }
  else if (message.cmd === 'close') {
    for (const peer of peers)
      peer.close()
    process.exit(0)
  }
})
process.send({ ready: true })
