import type { RunningHub } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'
import { RawPhoenix } from '../helpers/phoenix.ts'
import { sdkClient } from '../helpers/sdk.ts'

const SHARED = 'shared-token'
const VOICE = 'voice-token'

async function metrics(hub: RunningHub): Promise<string> {
  return (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
}

async function readyz(hub: RunningHub): Promise<{ status: number, body: any }> {
  const response = await fetch(`http://127.0.0.1:${hub.port}/readyz`)
  return { status: response.status, body: await response.json() }
}

/** Sends an announce of `name`; resolves to its event id. */
async function announce(peer: RawPeer, name: string): Promise<string> {
  return peer.send({ type: 'module:announce', data: { name, identity: { plugin: name, instanceId: `${name}-1` } } })
}

async function authenticated(hub: RunningHub, token: string | undefined, url = hub.url()): Promise<RawPeer> {
  const peer = await RawPeer.connect(url)
  peer.send({ type: 'module:authenticate', data: { token } })
  await peer.waitForType('module:authenticated')
  return peer
}

function errorFor(peer: RawPeer, parentId: string): Promise<unknown> {
  return peer.waitFor(event => event.type === 'error' && event.metadata?.event?.parentId === parentId).then(event => event.data)
}

describe('known modules: credentials', () => {
  it('admits a protected name only with its own token, and that token only for that name', async () => {
    const hub = await startHub({ auth: { token: SHARED }, modules: [{ name: 'voice', token: VOICE }] })

    // The right token: announced, listed.
    const voice = await authenticated(hub, VOICE)
    await voice.join('voice')
    expect(hub.server.registry.find('voice')?.peerId).toBeDefined()

    // Its token for another name: refused, with the announce as parentId.
    const wrongName = await authenticated(hub, VOICE)
    expect(await errorFor(wrongName, await announce(wrongName, 'impostor'))).toEqual({ message: 'token not valid for module impostor' })

    // The shared token on the protected name: refused; on any other name: admitted.
    const shared = await authenticated(hub, SHARED)
    expect(await errorFor(shared, await announce(shared, 'voice'))).toEqual({ message: 'token not valid for module voice' })
    await shared.join('chat')

    const names = [...hub.server.registry.entries()].map(entry => entry.name).sort()
    expect(names).toEqual(['chat', 'voice'])
    expect([...hub.server.registry.lookup('module', 'voice')]).toHaveLength(1)
    expect(sample(await metrics(hub), 'hub_errors_total{reason="module_forbidden"}')).toBe(2)
  })

  it('takes a module token at the upgrade (?token=)', async () => {
    const hub = await startHub({ auth: { token: SHARED }, modules: [{ name: 'voice', token: VOICE }] })
    const peer = await RawPeer.connect(`${hub.url()}?token=${VOICE}`)
    await peer.join('voice')
    expect(await errorFor(peer, await announce(peer, 'other'))).toEqual({ message: 'token not valid for module other' })
    // Still its module: a refused announce replaces nothing.
    expect([...hub.server.registry.entries()].map(entry => entry.name)).toEqual(['voice'])
  })

  it('with module tokens but no shared token, a peer without a token may announce only unprotected names', async () => {
    const hub = await startHub({ modules: [{ name: 'voice', token: VOICE }] })
    const anonymous = await RawPeer.connect(hub.url())
    await anonymous.join('chat')
    expect(await errorFor(anonymous, await announce(anonymous, 'voice'))).toEqual({ message: 'token not valid for module voice' })
    const voice = await authenticated(hub, VOICE)
    await voice.join('voice')
  })

  it('a Phoenix socket with a module token as api_key joins that topic only', async () => {
    const hub = await startHub({ auth: { token: SHARED }, modules: [{ name: 'voice', token: VOICE, options: { model: 'fast' } }] })
    const socket = await RawPhoenix.connect(`${hub.url('/socket/websocket')}?vsn=2.0.0&api_key=${VOICE}`)
    const joined = await socket.request(['1', '1', 'plugin:voice', 'phx_join', {}])
    expect(joined[4]).toEqual({ status: 'ok', response: { config: { model: 'fast' } } })
    const refused = await socket.request(['2', '2', 'plugin:other', 'phx_join', {}])
    expect(refused[4].status).toBe('error')
    expect(hub.server.registry.find('other')).toBeUndefined()
  })
})

describe('known modules: required', () => {
  it('/readyz is 503 naming the missing modules, 200 once announced, 503 again when one leaves', async () => {
    const hub = await startHub({ modules: [{ name: 'brain', required: true }, { name: 'voice', required: true }, { name: 'extra' }] })
    expect(await readyz(hub)).toEqual({ status: 503, body: { status: 'not ready', checks: { listening: true, modules: false }, missing: ['brain', 'voice'] } })

    const brain = await RawPeer.connect(hub.url())
    await brain.join('brain')
    expect((await readyz(hub)).body.missing).toEqual(['voice'])
    expect(sample(await metrics(hub), 'hub_required_modules_missing')).toBe(1)

    const voice = await RawPeer.connect(hub.url())
    await voice.join('voice')
    expect(await readyz(hub)).toEqual({ status: 200, body: { status: 'ready', checks: { listening: true, modules: true } } })

    await voice.close()
    await expect.poll(async () => (await readyz(hub)).body).toEqual({ status: 'not ready', checks: { listening: true, modules: false }, missing: ['voice'] })
  })

  it('hub.ready() resolves once every required module is announced, and rejects naming the missing after requiredTimeoutMs', async () => {
    const hub = await startHub({ requiredTimeoutMs: 3000, modules: [{ name: 'brain', required: true }] })
    const ready = hub.server.hub.ready()
    const brain = await RawPeer.connect(hub.url())
    await brain.join('brain')
    await expect(ready).resolves.toBeUndefined()

    const late = await startHub({ requiredTimeoutMs: 200, modules: [{ name: 'brain', required: true }, { name: 'voice', required: true }] })
    await expect(late.server.hub.ready()).rejects.toThrow('required modules missing after 200 ms: brain, voice')
    // Still serving: a module may come later.
    const voice = await RawPeer.connect(late.url())
    await voice.join('voice')
    expect((await readyz(late)).body.missing).toEqual(['brain'])
  })
})

describe('known modules: options and labels', () => {
  it('configures a module with its options after it announces and after every re-announce (0.8.4 SDK)', async () => {
    const hub = await startHub({ auth: { token: SHARED }, modules: [{ name: 'voice', token: VOICE, options: { model: 'fast', speed: 2 } }, { name: 'echo', options: { loud: true } }] })
    // The SDK authenticates with its module token, then announces once.
    const sdk = sdkClient(hub.url(), 'voice', { token: VOICE })
    await sdk.waitFor(event => event.type === 'module:configure')
    await settle()
    expect(sdk.ofType('module:configure').map(event => event.data)).toEqual([{ config: { model: 'fast', speed: 2 } }])

    // A raw peer re-announcing: configured each time; a module without options never is.
    const raw = await authenticated(hub, SHARED)
    await raw.join('echo')
    await raw.join('echo', { identity: { plugin: 'echo', instanceId: 'echo-2' } })
    await raw.join('other')
    await settle()
    expect(raw.ofType('module:configure').map(event => event.data)).toEqual([{ config: { loud: true } }, { config: { loud: true } }])
  })

  it('a Phoenix join reply carries no config when the module has none', async () => {
    const hub = await startHub({ modules: [{ name: 'voice', options: { model: 'fast' } }] })
    const socket = await RawPhoenix.connect(`${hub.url('/socket/websocket')}?vsn=2.0.0`)
    expect((await socket.request(['1', '1', 'plugin:other', 'phx_join', {}]))[4]).toEqual({ status: 'ok', response: {} })
    expect((await socket.request(['2', '2', 'plugin:voice', 'phx_join', {}]))[4]).toEqual({ status: 'ok', response: { config: { model: 'fast' } } })
  })

  it('merges configured labels over announced ones, so a policy can rely on them', async () => {
    const hub = await startHub({
      modules: [{ name: 'prod-db', labels: { env: 'prod' } }],
      routing: { policy: { denyLabels: ['env=prod'] } },
    })
    // It claims env=dev; the configuration says prod, and prod is what routing sees.
    const db = await RawPeer.connect(hub.url())
    await db.join('prod-db', { identity: { plugin: 'prod-db', instanceId: 'db-1', labels: { env: 'dev', team: 'data' } } })
    expect(hub.server.registry.find('prod-db')?.identity.labels).toEqual({ env: 'prod', team: 'data' })
    const listener = await RawPeer.connect(hub.url())
    await listener.join('listener')

    const sender = await RawPeer.connect(hub.url())
    await sender.join('sender')
    sender.send({ type: 'custom:ping', data: { n: 1 } })
    await listener.waitForType('custom:ping')
    await settle()
    expect(db.ofType('custom:ping')).toEqual([])
  })

  it('refuses a bad modules option naming the field', async () => {
    await expect(startHub({ modules: [{ name: 'a' }, { name: 'b', token: 7 as unknown as string }] })).rejects.toThrow('Invalid modules[1].token: 7 (expected a string)')
    await expect(startHub({ auth: { token: SHARED }, modules: [{ name: 'a', token: SHARED }] })).rejects.toThrow('Invalid modules[0].token: "<redacted>"')
    await expect(startHub({ modules: [{ name: 'a' }, { name: 'a' }] })).rejects.toThrow('Invalid modules[1].name: "a" (expected a name no other module has)')
  })
})
