import { defineConfig } from 'nitro'

export default defineConfig({
  // Scan routes/ and plugins/ next to this file.
  serverDir: './',
  // The hub's /ws endpoint needs Nitro's WebSocket support (crossws).
  features: { websocket: true },
})
