import { defineHandler } from 'nitro'

// One of the app's own routes, served alongside the hub.
export default defineHandler(() => ({ hello: 'from the Nitro app' }))
