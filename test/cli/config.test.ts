import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ENV_OPTIONS } from '../../src/cli.ts'
import { loadConfigFile, underEnv } from '../../src/config-file.ts'
import { createServer } from '../../src/server.ts'
import { onCleanup, RawPeer } from '../helpers/hub.ts'
import { freePort, LISTENING, ROOT, runCli, tempDir } from '../helpers/process.ts'

describe('config file', () => {
  it('hub-server.config.example.ts loads and validates, every option in it', async () => {
    const { file, options } = await loadConfigFile('hub-server.config.example.ts', ROOT)
    expect(file).toBe(join(ROOT, 'hub-server.config.example.ts'))
    expect(options.modules?.map(module => module.name)).toEqual(['brain', 'voice'])
    const server = createServer({ ...options, logger: { level: 'silent' }, env: {} })
    onCleanup(() => server.closeAllPeers())
    expect(server.hub.options.requiredTimeoutMs).toBe(4000)
    expect(server.hub.catalog.missing()).toEqual(['brain', 'voice'])
  })

  it('gives way to env, flags and .env (a set variable drops the file\'s option)', () => {
    const options = { instanceId: 'file', limits: { maxPeers: 5, maxLabels: 3 }, modules: [{ name: 'a' }] }
    expect(underEnv(options, { SERVER_INSTANCE_ID: 'env', MAX_PEERS: '9', LOG_LEVEL: '' }, ENV_OPTIONS)).toEqual({ limits: { maxLabels: 3 }, modules: [{ name: 'a' }] })
    expect(options.limits.maxPeers).toBe(5)
  })

  it('the CLI serves with hub-server.config.ts from its cwd: modules, required ones logged; flags and env win', async () => {
    const port = await freePort()
    const cwd = tempDir({
      'hub-server.config.ts': `export default {
        instanceId: 'from-file',
        auth: { token: 'file-token' },
        requiredTimeoutMs: 300,
        modules: [{ name: 'brain', token: 'brain-token', required: true, options: { model: 'large' } as Record<string, unknown> }],
      }\n`,
    })
    const hub = runCli(['--port', String(port), '--token', 'flag-token'], { cwd, env: { REQUIRED_TIMEOUT_MS: '200' } })
    const [, url] = await hub.waitForOutput(LISTENING)
    expect(hub.output).toContain(`config loaded from ${join(cwd, 'hub-server.config.ts')}`)
    await hub.waitForOutput(/required modules missing after 200 ms: brain; serving anyway/)
    const readyz = await fetch(`http://127.0.0.1:${port}/readyz`)
    expect([readyz.status, (await readyz.json() as { missing?: string[] }).missing]).toEqual([503, ['brain']])

    // The flag's token, not the file's; the file's instance id (no flag or env for it).
    const shared = await RawPeer.connect(url!)
    shared.send({ type: 'module:authenticate', data: { token: 'file-token' } })
    expect((await shared.waitForType('error')).data.message).toBe('invalid token')
    shared.send({ type: 'module:authenticate', data: { token: 'flag-token' } })
    expect((await shared.waitForType('module:authenticated')).metadata?.source?.instanceId).toBe('from-file')

    const brain = await RawPeer.connect(url!)
    await brain.join('brain', { token: 'brain-token' })
    expect((await brain.waitForType('module:configure')).data).toEqual({ config: { model: 'large' } })
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200)
  })

  it('a bad config file: exit code 2, its name and the field, no stack trace', async () => {
    const cwd = tempDir({
      'bad.yaml': 'modules:\n  - name: brain\n    required: yes please\n',
      'typo.json': '{ "modulez": [] }',
      'broken.ts': 'export default {',
    })
    const bad = runCli(['--config', 'bad.yaml'], { cwd })
    expect(await bad.exitCode()).toBe(2)
    expect(bad.output).toContain(`hub-server: ${join(cwd, 'bad.yaml')}: Invalid modules[0].required: "yes please" (expected true | false)`)
    expect(bad.output).not.toMatch(/^\s+at /m)

    const typo = runCli([], { cwd, env: { HUB_SERVER_CONFIG: 'typo.json' } })
    expect(await typo.exitCode()).toBe(2)
    expect(typo.output).toContain(`${join(cwd, 'typo.json')}: Unknown option modulez (expected one of`)

    const broken = runCli(['--config=broken.ts'], { cwd })
    expect(await broken.exitCode()).toBe(2)
    expect(broken.output).toContain(`hub-server: ${join(cwd, 'broken.ts')}: cannot be loaded (`)
    expect(broken.output).not.toMatch(/^\s+at /m)

    const missing = runCli(['--config', 'nowhere.ts'], { cwd })
    expect(await missing.exitCode()).toBe(2)
    expect(missing.output).toContain(`Config file not found: ${join(cwd, 'nowhere.ts')}`)
  })
})
