import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ENV_OPTIONS } from '../../src/cli.ts'
import { onCleanup, RawPeer } from '../helpers/hub.ts'
import { freePort, LISTENING, ROOT, runCli, tempDir } from '../helpers/process.ts'

describe('hub-server command', () => {
  it('prints help naming every flag and variable, and the version', async () => {
    const help = runCli(['--help'])
    expect(await help.exitCode()).toBe(0)
    for (const option of ENV_OPTIONS) {
      expect(help.output).toContain(`--${option.flag} ${option.value}`)
      expect(help.output).toContain(option.env)
    }
    const version = runCli(['--version'])
    expect(await version.exitCode()).toBe(0)
    expect(version.output.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version)
  })

  it('resolves flags over env over .env over defaults', async () => {
    const port = await freePort()
    const cwd = tempDir({
      '.env': [
        `PORT=${await freePort()}`, // the flag wins
        'SERVER_INSTANCE_ID=from-dotenv', // env and then the flag win
        'AUTHENTICATION_TOKEN=dotenv-token', // env wins
        'LOG_FORMAT=json', // only here: beats the default
        '',
      ].join('\n'),
    })
    const hub = runCli(['--port', String(port), `--instance-id=from-flag`], {
      cwd,
      env: { SERVER_INSTANCE_ID: 'from-env', AUTHENTICATION_TOKEN: 'env-token' },
    })
    const [, url] = await hub.waitForOutput(LISTENING)
    expect(url).toBe(`ws://127.0.0.1:${port}/ws`)
    // LOG_FORMAT=json from .env: one JSON object per log line.
    const line = hub.output.split('\n').find(l => l.includes('listening on'))!
    expect(JSON.parse(line)).toMatchObject({ level: 'log', tag: 'hub' })

    const peer = await RawPeer.connect(url!)
    peer.send({ type: 'module:authenticate', data: { token: 'dotenv-token' } })
    expect((await peer.waitForType('error')).data.message).toBe('invalid token')
    peer.send({ type: 'module:authenticate', data: { token: 'env-token' } })
    const authenticated = await peer.waitForType('module:authenticated')
    expect(authenticated.metadata?.source).toEqual({ plugin: 'hub-server', instanceId: 'from-flag' })
  })

  it('uses .env when neither env nor flags say otherwise', async () => {
    const port = await freePort()
    const cwd = tempDir({ '.env': `PORT=${port}\nSERVER_INSTANCE_ID=from-dotenv\n` })
    const hub = runCli([], { cwd })
    const [, url] = await hub.waitForOutput(LISTENING)
    expect(url).toBe(`ws://127.0.0.1:${port}/ws`)
    const peer = await RawPeer.connect(url!)
    const authenticated = await peer.waitForType('module:authenticated') // no token: auth is off
    expect(authenticated.metadata?.source?.instanceId).toBe('from-dotenv')
  })

  it('refuses a bad flag value, a bad env value and an unknown flag with exit code 2', async () => {
    const badFlag = runCli(['--heartbeat-timeout', 'soon'])
    expect(await badFlag.exitCode()).toBe(2)
    expect(badFlag.output).toContain('Invalid HEARTBEAT_TIMEOUT_MS: "soon" (expected an integer >= 1; flag --heartbeat-timeout)')
    expect(badFlag.output).not.toMatch(LISTENING)

    const badEnv = runCli([], { env: { LOG_LEVEL: 'loud' } })
    expect(await badEnv.exitCode()).toBe(2)
    expect(badEnv.output).toContain('Invalid LOG_LEVEL: "loud"')

    const unknown = runCli(['--prot', '80'])
    expect(await unknown.exitCode()).toBe(2)
    expect(unknown.output).toContain('Unknown argument: --prot')
  })

  it('fails with exit code 1 when the port is already in use', async () => {
    const blocker = createServer()
    blocker.listen(0, '127.0.0.1')
    await once(blocker, 'listening')
    onCleanup(() => new Promise(resolve => blocker.close(resolve)))
    const { port } = blocker.address() as { port: number }

    const hub = runCli(['--port', String(port)])
    expect(await hub.exitCode()).toBe(1)
    expect(hub.output).toContain(`Port ${port} on 127.0.0.1 is already in use`)
    expect(hub.output).not.toMatch(LISTENING)
  })

  it('refuses a port it would be made to swap for another', async () => {
    // get-port-please treats 6000 (X11) as unsafe and would pick another port without a word.
    const hub = runCli(['--port', '6000'])
    expect(await hub.exitCode()).toBe(1)
    expect(hub.output).toContain('Port 6000 on 127.0.0.1 is already in use (or not allowed)')
    expect(hub.output).not.toMatch(LISTENING)
  })

  it('on SIGTERM closes every peer with 1001 "server shutdown" and exits 0', async () => {
    const hub = runCli(['--port', String(await freePort()), '--token', 't'])
    const [, url] = await hub.waitForOutput(LISTENING)
    const alpha = await RawPeer.connect(url!)
    const beta = await RawPeer.connect(url!)
    await alpha.join('alpha', { token: 't' })
    await beta.join('beta', { token: 't' })

    hub.child.kill('SIGTERM')
    expect(await alpha.waitForClose()).toEqual({ code: 1001, reason: 'server shutdown' })
    expect(await beta.waitForClose()).toEqual({ code: 1001, reason: 'server shutdown' })
    // The first peer closed was de-announced to the other before its turn came.
    expect(beta.received.find(e => e.type === 'module:de-announced')?.data).toMatchObject({ name: 'alpha', reason: 'server shutdown' })
    expect(await hub.exitCode(5000)).toBe(0)
    expect(hub.output).toContain('SIGTERM: shutting down')
    // It stopped accepting: nothing answers on the port any more.
    await expect(RawPeer.connect(url!)).rejects.toThrow()
  })
})
