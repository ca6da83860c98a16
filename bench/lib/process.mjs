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

/** Starts `command args` pinned to core 0 on `port`; resolves once it accepts connections. */
async function startProcess(command, args, port, env, { quiet = false } = {}) {
  const [pinnedCommand, pinnedArgs] = pinned(0, command, args)
  const child = spawn(pinnedCommand, pinnedArgs, {
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'inherit'],
  })
  const exited = new Promise(resolve => child.once('exit', resolve))
  // Up to 15 s: on a loaded machine (other processes on core 0) a hub can take seconds to start.
  for (let attempt = 0; attempt < 300; attempt++) {
    if (child.exitCode !== null)
      throw new Error(`${command} ${args.join(' ')} exited with ${child.exitCode}`)
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
  throw new Error(`${command} ${args.join(' ')} did not listen on ${port}`)
}

/** Starts `node script` on `port` (a free one by default) with `env`; `{ port, pid, stop }`. */
async function startServer(script, env = {}, port = undefined) {
  // BENCH_SERVER_NODE_ARGS reach the servers only, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
  const nodeArgs = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)
  return startProcess(process.execPath, [...nodeArgs, script], port ?? await freePort(), env)
}

/**
 * A target's servers: one process, or `target.nodes` hub nodes over a redis-server of their
 * own, all on core 0: `{ ports, pids, stop }`. `ports` lists every node, `pids` every process
 * (redis-server too, so CPU and memory figures count it). A single-process target may be given
 * its `port` (to restart it where its clients reconnect).
 */
export async function startTarget(target, env = {}, { port } = {}) {
  if (!target.nodes) {
    const server = await startServer(target.script, { ...target.env, ...env }, port)
    return { ports: [server.port], pids: [server.pid], stop: server.stop }
  }
  const redisPort = await freePort()
  const redis = await startProcess('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], redisPort, {}, { quiet: true })
  const nodes = []
  try {
    for (let i = 0; i < target.nodes; i++)
      nodes.push(await startServer(target.script, { ...target.env, ...env, REDIS_URL: `redis://127.0.0.1:${redisPort}` }))
  }
  catch (error) {
    await Promise.all([...nodes, redis].map(p => p.stop()))
    throw error
  }
  return {
    ports: nodes.map(n => n.port),
    pids: [...nodes.map(n => n.pid), redis.pid],
    async stop() {
      await Promise.all(nodes.map(n => n.stop()))
      await redis.stop()
    },
  }
}

/** Current and peak resident memory of processes, summed, in bytes (Linux /proc). */
export function memoryOf(pids) {
  let rss = 0
  let peak = 0
  for (const pid of pids) {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = name => Number(status.match(new RegExp(`${name}:\\s+(\\d+)`))?.[1] ?? Number.NaN) * 1024
    rss += kib('VmRSS')
    peak += kib('VmHWM')
  }
  return { rss, peak }
}

const TICKS_PER_SECOND = 100

/** CPU time (user + system) processes have used so far, summed, in ms (Linux /proc, 10 ms resolution). */
export function cpuMsOf(pids) {
  let ms = 0
  for (const pid of pids) {
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    ms += (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
  }
  return ms
}
