import { hub } from './hub.ts'

// The hub as Nitro's server entry: /ws, /healthz, /readyz and /metrics answer the requests
// that the app's own routes (routes/) did not claim.
export default hub.app
