import type { RunningHub } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { createServer } from '../../src/server.ts'
import { startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'
import { outcome, phoenixSocket, RawPhoenix, until, upgradeStatus } from '../helpers/phoenix.ts'
import { freePort, LISTENING, runCli } from '../helpers/process.ts'
import { startRedis } from '../helpers/redis.ts'

// Atomemo plugins in release mode (`HUB_MODE=release`, `NODE_ENV=production`) dial
// `<HUB_WS_URL>/release_socket` with no `api_key` (the SDK's transporter passes no params) and
// join `release_plugin:<name>__release__<version>`. A hub with a token admits them by the
// `phoenix.keyless` option: by name, on that path only.

const TOKEN = 'secret'
const OWN_TOKEN = 'vault-own-token'

async function releaseHub() {
  return startHub({
    auth: { token: TOKEN },
    modules: [{ name: 'vault', token: OWN_TOKEN }],
    phoenix: { keyless: { '/release_socket': ['search', 'vault', 'mailer'] } },
  })
}

type Hub = Awaited<ReturnType<typeof releaseHub>>
/** What the SDK's `phoenix` Socket dials in release mode: no params but `vsn`. */
const releaseUrl = (hub: Hub): string => hub.url('/release_socket/websocket?vsn=2.0.0')

async function watcher(hub: Hub): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url())
  await peer.join('watcher', { token: TOKEN })
  return peer
}

describe('atomemo release plugins without api_key (phoenix.keyless)', () => {
  it('admits a listed plugin by name on /release_socket, and it exchanges events with a native peer', async () => {
    const hub = await releaseHub()
    const watch = await watcher(hub)
    const plugin = await RawPhoenix.connect(releaseUrl(hub))
    expect(await plugin.request(['1', '1', 'release_plugin:search__release__1.2.0', 'phx_join', {}]))
      .toEqual(['1', '1', 'release_plugin:search__release__1.2.0', 'phx_reply', { status: 'ok', response: {} }])
    const announced = await watch.waitFor(e => e.type === 'module:announced' && e.data.name === 'search__release__1.2.0')
    expect(announced.data.identity).toMatchObject({ labels: { protocol: 'phoenix', topic: 'release_plugin' } })

    watch.send({ type: 'invoke_tool', data: { request_id: 'r1', tool_name: 'web' }, route: { destinations: ['module:search__release__1.2.0'], reply: true } })
    const [, , , , payload] = await plugin.waitFor(f => f[3] === 'invoke_tool', 'the request')
    expect(payload).toEqual({ request_id: 'r1', tool_name: 'web' })
    expect((await plugin.request(['1', '2', 'release_plugin:search__release__1.2.0', 'invoke_tool_response', { request_id: 'r1', data: { hits: 1 } }]))[4])
      .toEqual({ status: 'ok', response: { delivered: 1 } })
    expect((await watch.waitFor(e => e.type === 'invoke_tool_response')).data).toEqual({ request_id: 'r1', data: { hits: 1 } })

    // The real `phoenix` client as the SDK builds it in release mode: no params at all.
    const socket = phoenixSocket(hub.url('/release_socket'))
    expect(await outcome(socket.channel('release_plugin:mailer__release__0.1.0', {}).join())).toMatchObject({ status: 'ok' })
    await watch.waitFor(e => e.type === 'module:announced' && e.data.name === 'mailer__release__0.1.0')
  })

  it('refuses an unlisted name, a name with its own token and a name already connected; closes 4001 after auth.maxFailures', async () => {
    const hub = await releaseHub()
    const first = await RawPhoenix.connect(releaseUrl(hub))
    expect((await first.request(['1', '1', 'release_plugin:search__release__1.0.0', 'phx_join', {}]))[4].status).toBe('ok')

    const unauthorized = { status: 'error', response: { reason: 'unauthorized' } }
    const intruder = await RawPhoenix.connect(releaseUrl(hub))
    // Another version of a listed plugin that is connected is the same module: refused.
    expect((await intruder.request(['1', '1', 'release_plugin:search__release__9.9.9', 'phx_join', {}]))[4]).toEqual(unauthorized)
    expect((await intruder.request(['2', '2', 'release_plugin:evil', 'phx_join', {}]))[4]).toEqual(unauthorized)
    expect((await intruder.request(['3', '3', 'release_plugin:search', 'phx_join', {}]))[4]).toEqual(unauthorized)
    expect(await intruder.waitForClose()).toEqual({ code: 4001, reason: 'authentication failed' })

    const other = await RawPhoenix.connect(releaseUrl(hub))
    // A module the catalog gives its own token must present it, even when listed.
    expect((await other.request(['1', '1', 'release_plugin:vault', 'phx_join', {}]))[4]).toEqual(unauthorized)
    // A listed name with something before `__release__` that is not listed is not it.
    expect((await other.request(['2', '2', 'release_plugin:searchx__release__1.0.0', 'phx_join', {}]))[4]).toEqual(unauthorized)
    expect(hub.server.registry.size).toBe(1)
    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_errors_total{reason="keyless_refused"}')).toBe(5)

    // Once the first one left, the name is free again.
    await first.close()
    await until(() => hub.server.registry.size === 0, 'the first plugin gone')
    const next = await RawPhoenix.connect(releaseUrl(hub))
    expect((await next.request(['1', '1', 'release_plugin:search__release__1.0.1', 'phx_join', {}]))[4].status).toBe('ok')
    await settle()
    expect([...hub.server.registry.entries()].map(e => e.name)).toEqual(['search__release__1.0.1'])
  })

  it('still refuses upgrades without a key on any other path (403), and a wrong key on the keyless one', async () => {
    const hub = await releaseHub()
    for (const path of ['/socket', '/debug_socket', '/plugin_socket', '/debug_socket/websocket'])
      expect(await upgradeStatus(hub.url(`${path}?vsn=2.0.0`)), path).toBe(403)
    expect(await upgradeStatus(`${releaseUrl(hub)}&api_key=wrong`)).toBe(403)

    // With a good key the keyless path is an ordinary endpoint: any name, the module's own token too.
    const keyed = await RawPhoenix.connect(`${releaseUrl(hub)}&api_key=${OWN_TOKEN}`)
    expect((await keyed.request(['1', '1', 'release_plugin:vault', 'phx_join', {}]))[4].status).toBe('ok')
    const shared = await RawPhoenix.connect(`${releaseUrl(hub)}&api_key=${TOKEN}`)
    expect((await shared.request(['1', '1', 'release_plugin:anything', 'phx_join', {}]))[4].status).toBe('ok')
  })

  it('is configured by option or PHOENIX_KEYLESS, and refuses paths the gateway does not serve', async () => {
    const hub = await startHub({ auth: { token: TOKEN }, env: { PHOENIX_KEYLESS: '/release_socket:a, b ; /plugin_socket:c' } })
    for (const [path, name] of [['/release_socket', 'b'], ['/plugin_socket/websocket', 'c']]) {
      const socket = await RawPhoenix.connect(hub.url(`${path}?vsn=2.0.0`))
      expect((await socket.request(['1', '1', `plugin:${name}`, 'phx_join', {}]))[4].status, path).toBe('ok')
    }
    expect(await upgradeStatus(hub.url('/socket?vsn=2.0.0'))).toBe(403)

    expect(() => createServer({ phoenix: { keyless: { '/elsewhere': ['a'] } } })).toThrow('Invalid phoenix.keyless: "/elsewhere"')
    expect(() => createServer({ phoenix: { keyless: { '/release_socket': [] } } })).toThrow('Invalid phoenix.keyless./release_socket')
    expect(() => createServer({ env: { PHOENIX_KEYLESS: '/release_socket' } })).toThrow('Invalid PHOENIX_KEYLESS')
  })

  it('is set by the command\'s --phoenix-keyless flag', async () => {
    const hub = runCli(['--port', String(await freePort()), '--phoenix-keyless', '/release_socket:search'], { env: { AUTHENTICATION_TOKEN: TOKEN } })
    const [, url] = await hub.waitForOutput(LISTENING)
    const base = url!.replace(/\/ws$/, '')
    const plugin = await RawPhoenix.connect(`${base}/release_socket/websocket?vsn=2.0.0`)
    expect((await plugin.request(['1', '1', 'release_plugin:search__release__1.0.0', 'phx_join', {}]))[4].status).toBe('ok')
    expect(await upgradeStatus(`${base}/socket/websocket?vsn=2.0.0`)).toBe(403)
  })
})

describe('keyless admission on two hub nodes over one real Redis', () => {
  it('a listed name connected on one node is refused on the other until it leaves', async () => {
    const redis = await startRedis()
    onCleanup(() => redis.kill())
    const [a, b] = await startNodes(redis.url, 2, 2000, { auth: { token: TOKEN }, phoenix: { keyless: { '/release_socket': ['search'] } } }) as [RunningHub, RunningHub]
    const first = await RawPhoenix.connect(a.url('/release_socket/websocket?vsn=2.0.0'))
    expect((await first.request(['1', '1', 'release_plugin:search__release__1.0.0', 'phx_join', {}]))[4].status).toBe('ok')
    await until(() => b.server.registry.find('search__release__1.0.0'), 'node B to learn it')

    const second = await RawPhoenix.connect(b.url('/release_socket/websocket?vsn=2.0.0'))
    expect((await second.request(['1', '1', 'release_plugin:search__release__1.0.1', 'phx_join', {}]))[4]).toEqual({ status: 'error', response: { reason: 'unauthorized' } })
    await first.close()
    await until(() => b.server.registry.size === 0, 'node B to see it leave')
    expect((await second.request(['2', '2', 'release_plugin:search__release__1.0.1', 'phx_join', {}]))[4].status).toBe('ok')
  })
})
