import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import process from 'node:process'
import { onCleanup } from './hub.ts'

export const ROOT = join(import.meta.dirname, '../..')

/** The URL in the CLI's "listening on" line. */
export const LISTENING = /listening on (ws:\/\/[^\s"]+)/

/** A temporary directory holding `files`, removed after the test. */
export function tempDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'hub-test-'))
  onCleanup(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files))
    writeFileSync(join(dir, name), text)
  return dir
}

/** A port that was free a moment ago (bound to port 0, then released). */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A real child process with its output captured; killed after the test if still running. */
export class RunningProcess {
  output = ''
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>

  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk) => { this.output += chunk })
    child.stderr?.on('data', (chunk) => { this.output += chunk })
    this.exited = once(child, 'exit').then(([code, signal]) => ({ code, signal }))
    onCleanup(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await this.exited
      }
    })
  }

  /** Waits until the output matches; fails with the output so far if the process exits first. */
  async waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const match = this.output.match(pattern)
      if (match)
        return match
      if (this.child.exitCode !== null)
        break
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    throw new Error(`output never matched ${pattern}; exit code ${this.child.exitCode}; output:\n${this.output}`)
  }

  /** Resolves to the exit code; fails if the process is still running after `timeoutMs`. */
  async exitCode(timeoutMs = 10_000): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms; output:\n${this.output}`)), timeoutMs)
    })
    try {
      return (await Promise.race([this.exited, timeout])).code
    }
    finally {
      clearTimeout(timer)
    }
  }
}

/** Runs a command with a clean environment (PATH only, plus `env`). */
export function run(command: string, args: string[], options: { cwd?: string, env?: Record<string, string> } = {}): RunningProcess {
  const child = spawn(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env.PATH, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return new RunningProcess(child)
}

/** Runs the built `hub-server` command (`node bin/hub-server.mjs`). */
export function runCli(args: string[] = [], options: { cwd?: string, env?: Record<string, string> } = {}): RunningProcess {
  return run(process.execPath, [join(ROOT, 'bin/hub-server.mjs'), ...args], options)
}
