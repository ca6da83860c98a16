import { createServer } from 'hub-server'

// One hub for the whole Nitro server. Options come from the environment (AUTHENTICATION_TOKEN,
// LOG_LEVEL, …) or from the object given here.
export const hub = createServer()
