// A bot on the hub with `hub-server/client`: it answers `weather:forecast` requests, greets
// whoever says hello, and asks another module for the time.
//
//   HUB_URL=ws://localhost:6121/ws HUB_TOKEN=secret node examples/client/weather-bot.mjs
//
// In Node 20 the client needs a WebSocket implementation (`npm install ws`); browsers and
// Node ≥ 22 have a global one.
import process from 'node:process'
import { createClient } from 'hub-server/client'
import WebSocket from 'ws'

const log = line => process.stdout.write(`${line}\n`)

const client = createClient({
  url: process.env.HUB_URL ?? 'ws://localhost:6121/ws',
  token: process.env.HUB_TOKEN,
  module: { name: 'weather', labels: { kind: 'bot' } },
  WebSocket,
})

// Requests of this type, sent by anyone without `to`, come to this bot.
client.respond('weather:forecast', ({ city }) => {
  if (!city)
    throw new Error('which city?')
  return { city, forecast: 'sunny', celsius: 21 }
})

client.on('chat:hello', async ({ name }, event) => {
  log(`hello from ${name} (${event.from?.plugin})`)
  await client.emit('chat:hello', { name: 'weather' }, { to: `plugin:${event.from?.plugin}` })
})

client.onOpen(async ({ reconnected }) => {
  log(`${reconnected ? 'back' : 'ready'}: ${[...client.modules.values()].map(module => module.name).join(', ')}`)
  try {
    const { now } = await client.request('clock:now', {}, { timeoutMs: 2000 })
    log(`the clock says ${now}`)
  }
  catch (error) {
    log(`no time: ${error.code} (${error.message})`)
  }
})
client.onModules(({ added, removed }) => {
  for (const module of added)
    log(`+ ${module.name}`)
  for (const module of removed)
    log(`- ${module.name}`)
})
client.onClose(({ code, willReconnect }) => log(`closed ${code}${willReconnect ? ', reconnecting' : ''}`))
client.onError(error => console.error(`error: ${error.message}`))

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    client.close()
    process.exit(0)
  })
}
