import process from 'node:process'
import { listenHub } from './listen.ts'
import { createServer } from './server.ts'

/** `hub-server`: serves the hub on PORT/HOST until SIGINT/SIGTERM. */
export async function main(): Promise<void> {
  const server = createServer()
  const { logger } = server.hub.options
  const listener = await listenHub(server)
  logger.log(`hub-server listening on ${listener.url.replace(/^http/, 'ws')}ws`)
  const stop = async (): Promise<void> => {
    await listener.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}
