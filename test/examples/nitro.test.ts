import type { WireEvent } from '../helpers/hub.ts'
import { join } from 'node:path'
import process from 'node:process'
import { Client } from '@proj-airi/server-sdk'
import { beforeAll, describe, expect, it } from 'vitest'
import { onCleanup, RawPeer } from '../helpers/hub.ts'
import { freePort, ROOT, run } from '../helpers/process.ts'

const EXAMPLE = join(ROOT, 'examples/nitro')

/** Runs a command as a user would in a shell (their whole environment), failing on a non-zero exit. */
async function sh(command: string, args: string[]): Promise<void> {
  const child = run(command, args, { cwd: EXAMPLE, env: process.env as Record<string, string> })
  const code = await child.exitCode(240_000)
  if (code !== 0)
    throw new Error(`${command} ${args.join(' ')} exited with ${code}:\n${child.output}`)
}

describe('the Nitro example (examples/nitro)', () => {
  // `npm install && npm run build`, exactly as the README says (the package itself was built by
  // the global setup, as `file:../..` needs dist/). A cold install downloads Nitro: be patient.
  beforeAll(async () => {
    await sh('npm', ['install', '--no-audit', '--no-fund'])
    await sh('npm', ['run', 'build'])
  }, 300_000)

  it('serves the hub at /ws beside the app\'s own routes, to a real @proj-airi/server-sdk client', async () => {
    const port = await freePort()
    const server = run(process.execPath, ['.output/server/index.mjs'], {
      cwd: EXAMPLE,
      env: { PORT: String(port), HOST: '127.0.0.1', AUTHENTICATION_TOKEN: 'nitro-secret', LOG_LEVEL: 'warn' },
    })
    await server.waitForOutput(/Listening on/)
    const http = `http://127.0.0.1:${port}`

    // The app's own route and the hub's endpoints share the port.
    expect(await (await fetch(`${http}/hello`)).json()).toEqual({ hello: 'from the Nitro app' })
    expect((await fetch(`${http}/healthz`)).status).toBe(200)

    // A raw peer joins first: it sees the SDK client announced and gets what the client sends.
    const peer = await RawPeer.connect(`ws://127.0.0.1:${port}/ws`)
    await peer.join('watcher', { token: 'nitro-secret' })
    const received: WireEvent[] = []
    const client = new Client({
      name: 'nitro-sdk',
      url: `ws://127.0.0.1:${port}/ws`,
      token: 'nitro-secret',
      identity: { plugin: 'nitro-sdk', instanceId: 'nitro-sdk-1' },
      autoReconnect: false,
      onAnyMessage: event => received.push(event as WireEvent),
    })
    onCleanup(() => client.close())

    await peer.waitFor(e => e.type === 'module:announced' && e.data.name === 'nitro-sdk')
    expect(received.find(e => e.type === 'module:authenticated')?.data).toEqual({ authenticated: true })
    client.send({ type: 'chat:hello', data: { text: 'through Nitro' } } as never)
    const routed = await peer.waitForType('chat:hello')
    expect(routed.data).toEqual({ text: 'through Nitro' })
    expect(routed.metadata?.source).toMatchObject({ plugin: 'nitro-sdk', instanceId: 'nitro-sdk-1' })

    // SIGTERM: peers are told 1001 "server shutdown" and the server exits cleanly.
    server.child.kill('SIGTERM')
    expect(await peer.waitForClose()).toEqual({ code: 1001, reason: 'server shutdown' })
    expect(await server.exitCode(10_000)).toBe(0)
  }, 60_000)
})
