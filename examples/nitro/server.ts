import { createServer } from 'hub-server'

// The hub as Nitro's server entry: /ws, /healthz, /readyz and /metrics answer the requests
// that the app's own routes (routes/) did not claim. Options come from the environment
// (AUTHENTICATION_TOKEN, LOG_LEVEL, …) or from the object given here.
export const hub = createServer()
export default hub.app
