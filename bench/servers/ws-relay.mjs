// The ceiling: a bare `ws` server that speaks just enough of the AIRI frames to join
// (authenticate, announce, registry sync/deltas, heartbeat pong) and relays bench frames
// untouched: to everyone else, or (when the frame names a destination) to that module only.
import { Buffer } from 'node:buffer'
import process from 'node:process'
import { WebSocketServer } from 'ws'

const token = process.env.AUTHENTICATION_TOKEN
const BENCH = Buffer.from('{"json":{"type":"bench"')
const ROUTED = Buffer.from('{"json":{"type":"bench","route"')
const byName = new Map()
const modules = []

const frame = (type, data) => JSON.stringify({ json: { type, data } })
const startsWith = (data, prefix) => data.length > prefix.length && data.compare(prefix, 0, prefix.length, 0, prefix.length) === 0

const wss = new WebSocketServer({ port: Number(process.env.PORT), host: '127.0.0.1', backlog: 511 })

function control(ws, event) {
  switch (event.type) {
    case 'module:authenticate':
      if (event.data.token !== token)
        return ws.send(frame('error', { message: 'invalid token' }))
      ws.authenticated = true
      ws.send(frame('module:authenticated', { authenticated: true }))
      return ws.send(frame('registry:modules:sync', { modules }))
    case 'module:announce': {
      if (!ws.authenticated)
        return ws.send(frame('error', { message: 'not authenticated' }))
      const entry = { name: event.data.name, index: event.data.index, identity: event.data.identity }
      modules.push(entry)
      byName.set(entry.name, ws)
      ws.send(frame('registry:modules:sync', { modules }))
      const announced = frame('module:announced', entry)
      for (const client of wss.clients) {
        if (client !== ws && client.authenticated)
          client.send(announced)
      }
      return
    }
    case 'transport:connection:heartbeat':
      if (event.data.kind === 'ping')
        ws.send(frame('transport:connection:heartbeat', { kind: 'pong', message: 'pong', at: Date.now() }))
  }
}

wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    if (startsWith(data, ROUTED)) {
      const name = JSON.parse(data).json.route.destinations[0].slice('plugin:'.length)
      byName.get(name)?.send(data, { binary: false })
    }
    else if (startsWith(data, BENCH)) {
      for (const client of wss.clients) {
        if (client !== ws)
          client.send(data, { binary: false })
      }
    }
    else {
      control(ws, JSON.parse(data).json)
    }
  })
})
