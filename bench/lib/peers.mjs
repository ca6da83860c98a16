// Load-generator peers. Every target's peers authenticate, announce, keep a registry view
// (its size) and report bench events by sequence number; they differ only in the wire.
import { Buffer } from 'node:buffer'
import { performance } from 'node:perf_hooks'
import { io } from 'socket.io-client'
import WebSocket from 'ws'

const BENCH_TYPE = 'bench'
// AIRI peers skip JSON.parse for the two frames that dominate: registry deltas (counted) and
// bench events (only their sequence number is read). The load generator has one core for
// thousands of peers; this keeps it from being the first thing to saturate.
const ANNOUNCED = Buffer.from('{"json":{"type":"module:announced"')
const BENCH = Buffer.from('{"json":{"type":"bench"')
const SEQ = Buffer.from('"seq":')

const startsWith = (data, prefix) => data.length > prefix.length && data.compare(prefix, 0, prefix.length, 0, prefix.length) === 0

/** A JSON-safe string of `bytes` characters. */
export const padding = bytes => 'x'.repeat(Math.max(0, bytes))

function createView(name, onChange) {
  let size = 0
  let joined = false
  let resolveJoined
  const ready = new Promise(resolve => resolveJoined = resolve)
  return {
    ready,
    get size() { return size },
    sync(modules) {
      size = modules.length
      if (!joined && modules.some(m => m.name === name)) {
        joined = true
        resolveJoined()
      }
      onChange(size)
    },
    add() {
      onChange(++size)
    },
  }
}

/** A raw `ws` peer speaking AIRI superjson frames (the hub and the ws relay). */
function createAiriPeer({ url, name, token, onBench, onView = () => {}, respond = false }) {
  const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true })
  const view = createView(name, onView)
  const peer = { bytes: 0, ready: view.ready, view, closed: undefined }
  const send = event => ws.send(JSON.stringify({ json: event }))
  ws.on('open', () => send({ type: 'module:authenticate', data: { token } }))
  ws.on('message', (data) => {
    peer.bytes += data.length
    if (startsWith(data, ANNOUNCED))
      return view.add()
    if (startsWith(data, BENCH)) {
      // A responder answers each request with its data, as the reply (parentId = the request's id).
      if (respond) {
        const { data: payload, metadata } = JSON.parse(data).json
        return send({ type: BENCH_TYPE, data: payload, metadata: { event: { parentId: metadata.event.id } } })
      }
      const at = data.indexOf(SEQ) + SEQ.length
      return onBench?.(Number.parseInt(data.toString('latin1', at, at + 16)), performance.now())
    }
    const event = JSON.parse(data).json
    switch (event.type) {
      case 'module:authenticated':
        return send({ type: 'module:announce', data: { name, identity: { plugin: name, instanceId: name } } })
      case 'registry:modules:sync':
        return view.sync(event.data.modules)
      case 'transport:connection:heartbeat':
        if (event.data.kind === 'ping')
          send({ type: 'transport:connection:heartbeat', data: { kind: 'pong', message: 'pong' } })
    }
  })
  ws.on('close', (code) => {
    peer.closed = code
  })
  ws.on('error', () => {})
  return Object.assign(peer, {
    broadcast: (seq, pad) => ws.send(`{"json":{"type":"bench","data":{"seq":${seq},"pad":"${pad}"}}}`),
    sendTo: (target, seq, pad) => ws.send(`{"json":{"type":"bench","route":{"destinations":["plugin:${target}"]},"data":{"seq":${seq},"pad":"${pad}"}}}`),
    request: (target, seq, pad) => ws.send(`{"json":{"type":"bench","route":{"destinations":["plugin:${target}"],"reply":true},"data":{"seq":${seq},"pad":"${pad}"}}}`),
    pause: () => ws._socket.pause(),
    resume: () => ws._socket.resume(),
    close: () => ws.terminate(),
  })
}

/** A socket.io-client peer (websocket transport only). */
function createSocketIoPeer({ url, name, token, onBench, onView = () => {} }) {
  const socket = io(url, { transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true, perMessageDeflate: false })
  const view = createView(name, onView)
  const peer = { bytes: 0, ready: view.ready, view, closed: undefined }
  socket.io.on('open', () => {
    socket.io.engine.on('packet', (packet) => {
      if (typeof packet.data === 'string')
        peer.bytes += packet.data.length + 1
    })
  })
  socket.on('connect', () => socket.emit('module:announce', { name, identity: { plugin: name, instanceId: name } }))
  socket.on('registry:modules:sync', data => view.sync(data.modules))
  socket.on('module:announced', () => view.add())
  socket.on(BENCH_TYPE, data => onBench?.(data.seq, performance.now()))
  socket.on('disconnect', (reason) => {
    peer.closed = reason
  })
  return Object.assign(peer, {
    broadcast: (seq, pad) => socket.emit(BENCH_TYPE, { seq, pad }),
    sendTo: (target, seq, pad) => socket.emit('bench:to', target, { seq, pad }),
    pause: () => socket.io.engine.transport.ws._socket.pause(),
    resume: () => socket.io.engine.transport.ws._socket.resume(),
    close: () => socket.disconnect(),
  })
}

export const peerFactories = { airi: createAiriPeer, socketio: createSocketIoPeer }
