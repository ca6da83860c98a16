import process from 'node:process'
import { definePlugin } from 'nitro'
import { hub } from '../server.ts'

// Say goodbye to every peer with 1001 "server shutdown" instead of dropping their sockets.
// Nitro's node server waits for open connections to end before it calls `close`, and a
// WebSocket never ends by itself, so peers are closed on the signal already.
export default definePlugin((nitroApp) => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => hub.closeAllPeers())
  nitroApp.hooks.hook('close', () => hub.closeAllPeers())
})
