// Server processes: each target runs alone, pinned to core 0 when `taskset` exists.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import process from 'node:process'

const STOP_GRACE_MS = 5000

export const hasTaskset = spawnSync('taskset', ['-V']).status === 0

/** `command` pinned to `core` when possible. */
export function pinned(core, command, args) {
  return hasTaskset ? ['taskset', ['-c', String(core), command, ...args]] : [command, args]
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => socket.end(() => resolve(true)))
    socket.once('error', () => resolve(false))
  })
}

/** Starts `node script` on a free port with `env`, pinned to core 0; resolves once it accepts connections. */
export async function startServer(script, env = {}) {
  const port = await freePort()
  // BENCH_SERVER_NODE_ARGS reach the servers only, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)
  const [command, args] = pinned(0, process.execPath, [...nodeArgs, script])
  const child = spawn(command, args, {
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const exited = new Promise(resolve => child.once('exit', resolve))
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null)
      throw new Error(`${script} exited with ${child.exitCode}`)
    if (await canConnect(port)) {
      return {
        port,
        pid: child.pid,
        /** SIGTERM (so `--cpu-prof` can write its profile), SIGKILL after a grace period. */
        async stop() {
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS)
          await exited
          clearTimeout(timer)
        },
      }
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  child.kill('SIGKILL')
  throw new Error(`${script} did not listen on ${port}`)
}

/** Current and peak resident memory of a process, in bytes (Linux /proc). */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = name => Number(status.match(new RegExp(`${name}:\\s+(\\d+)`))?.[1] ?? Number.NaN) * 1024
  return { rss: kib('VmRSS'), peak: kib('VmHWM') }
}

const TICKS_PER_SECOND = 100

/** CPU time (user + system) a process has used so far, in ms (Linux /proc, 10 ms resolution). */
export function cpuMsOf(pid) {
  // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
}
