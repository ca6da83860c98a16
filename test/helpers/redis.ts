import type { Buffer } from 'node:buffer'
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'

/** A free TCP port on 127.0.0.1 (free when asked; good enough for a test). */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Kills it at once (SIGKILL): clients see the connection drop. */
  kill: () => Promise<void>
  /** Starts it again on the same port, empty. */
  start: () => Promise<void>
}

/** A real `redis-server` on a free port, without persistence; stop it with `kill()`. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined

  async function start(): Promise<void> {
    const process = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = process
    let output = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000)
      process.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer)
          resolve()
        }
      })
      process.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`redis-server exited with ${code}: ${output}`))
      })
      process.once('error', reject)
    })
  }

  async function kill(): Promise<void> {
    const process = child
    child = undefined
    if (!process || process.exitCode !== null || process.signalCode !== null)
      return
    process.kill('SIGKILL')
    await once(process, 'exit')
  }

  await start()
  return { port, url: `redis://127.0.0.1:${port}`, kill, start }
}
