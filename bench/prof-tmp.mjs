import { performance } from 'node:perf_hooks'
import { createClient } from 'hub-server/client'
import WebSocket from 'ws'
import { startTarget } from './lib/process.mjs'
import { targets, TOKEN, urlOf } from './lib/targets.mjs'

const n = Number(process.argv[2] ?? 2000)
const target = targets.hub
const server = await startTarget(target, { AUTHENTICATION_TOKEN: TOKEN })
const url = urlOf(target, server.ports[0])
const clients = []
let frames = 0
class Counting extends WebSocket { constructor(a) { super(a, { perMessageDeflate: false }); this.on('message', () => frames++) } }
const t0 = performance.now()
const queue = Array.from({ length: n }, (_, i) => i)
await Promise.all(Array.from({ length: 500 }, async () => {
  while (queue.length) {
    const i = queue.shift()
    const c = createClient({ url, token: TOKEN, WebSocket: Counting, module: { name: `c${i}` } })
    clients.push(c)
    await new Promise(r => c.onOpen(r))
  }
}))
const t1 = performance.now()
while (clients.some(c => c.modules.size < n)) await new Promise(r => setTimeout(r, 20))
const t2 = performance.now()
console.log({ joinedMs: t1 - t0, completeMs: t2 - t0, frames, framesPerClient: frames / n })
clients.forEach(c => c.close())
await server.stop()
process.exit(0)
