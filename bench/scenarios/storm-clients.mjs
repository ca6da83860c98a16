// One share of a client storm, in a process of its own (as clients are, in life): it joins
// `hub-server/client` peers c<from>…c<to - 1> (at most `concurrency` joining at a time) and
// reports to its parent, every 20 ms while anything changes, how many are open with a complete
// view of `n` modules and the bytes and frames they received. `close` ends it.
import process from 'node:process'
import { createClient } from 'hub-server/client'
import WebSocket from 'ws'

const clients = []
let bytes = 0
let frames = 0

function cpuMs() {
  const { user, system } = process.cpuUsage()
  return Math.round((user + system) / 1000)
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

function start({ url, token, from, to, n, concurrency }) {
  const queue = Array.from({ length: to - from }, (_, i) => from + i)
  const join = () => {
    if (queue.length === 0)
      return
    const client = createClient({ url, token, WebSocket: Counting, module: { name: `c${queue.shift()}` } })
    client.onError(() => {})
    // Each open lets the next client join, so that `concurrency` join at a time.
    let first = true
    client.onOpen(() => {
      if (first)
        join()
      first = false
    })
    clients.push(client)
  }
  for (let i = 0; i < concurrency; i++)
    join()
  let last = ''
  setInterval(() => {
    const complete = clients.filter(client => client.status === 'open' && client.modules.size === n).length
    const report = `${complete}/${bytes}`
    if (report !== last)
      process.send({ complete, bytes, frames, cpuMs: cpuMs() })
    last = report
  }, 20)
}

process.on('message', (message) => {
  if (message.cmd === 'start') {
    start(message)
  }
  else if (message.cmd === 'close') {
    for (const client of clients)
      client.close()
    process.exit(0)
  }
})
