import type { OutgoingHttpHeaders } from 'node:http'
import type { RunningHub } from '../helpers/hub.ts'
import { request } from 'node:http'
import { describe, expect, it } from 'vitest'
import { listenHub } from '../../src/listen.ts'
import { DEFAULT_PHOENIX_PATHS } from '../../src/protocol/phoenix.ts'
import { createServer } from '../../src/server.ts'
import { onCleanup, RawPeer, startHub, upgradeStatus } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'

/** Every WebSocket endpoint of a default hub: /ws and each Phoenix path, with and without `/websocket`. */
const ENDPOINTS = ['/ws', ...DEFAULT_PHOENIX_PATHS.flatMap(path => [path, `${path}/websocket`])]

/** The status a raw WebSocket upgrade to `path` gets: 101 when it opened, else the HTTP status it was refused with. */
function upgrade(port: number, path: string, headers: OutgoingHttpHeaders = {}): Promise<number> {
  return upgradeStatus(`ws://127.0.0.1:${port}${path}`, { headers: headers as Record<string, string> })
}

/** A plain HTTP GET with exactly these headers (fetch would not send a `Host` of our choosing). */
function get(port: number, path: string, headers: OutgoingHttpHeaders = {}): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode!, body }))
    })
    req.once('error', reject)
    req.end()
  })
}

async function metrics(hub: RunningHub): Promise<string> {
  return (await get(hub.port, '/metrics')).body
}

describe('origin check: pages from other origins cannot use the hub', () => {
  it('lets non-browser clients, the hub\'s own origin and localhost pages upgrade on /ws and every Phoenix path', async () => {
    const hub = await startHub()
    const origins = [undefined, `http://127.0.0.1:${hub.port}`, 'http://localhost:5173', 'https://127.0.0.2:8443', 'http://[::1]:3000', 'http://airi.localhost']
    for (const path of ENDPOINTS) {
      for (const origin of origins)
        expect(await upgrade(hub.port, path, origin ? { origin } : {}), `${path} from ${origin}`).toBe(101)
    }
  })

  it('answers a foreign Origin 403 before upgrading, on every endpoint: no peer, counted', async () => {
    const hub = await startHub()
    const foreign = [
      'http://evil.example',
      `http://evil.example:${hub.port}`,
      'null', // sandboxed frames, data: URLs
      'http://127.0.0.1.evil.example',
      'http://localhost.evil.example:5173',
      'file://',
    ]
    for (const path of ENDPOINTS) {
      for (const origin of foreign)
        expect(await upgrade(hub.port, `${path}?vsn=2.0.0`, { origin }), `${path} from ${origin}`).toBe(403)
    }
    expect(hub.server.hub.peers.size).toBe(0)
    expect(sample(await metrics(hub), 'hub_errors_total{reason="origin_refused"}')).toBe(ENDPOINTS.length * foreign.length)
  })

  it('logs a flood of refused origins and hosts at most once a second, the request\'s query never', async () => {
    const hub = await startHub()
    const warnings: string[] = []
    hub.server.hub.options.logger.warn = ((line: string) => { warnings.push(line) }) as typeof hub.server.hub.options.logger.warn
    for (let i = 0; i < 20; i++) {
      expect(await upgrade(hub.port, '/ws?token=secret-in-query', { origin: 'http://evil.example' })).toBe(403)
      expect((await get(hub.port, '/metrics?token=secret-in-query', { host: 'evil.example' })).status).toBe(421)
    }
    expect(warnings.length).toBeGreaterThan(0)
    expect(warnings.length).toBeLessThan(5) // 40 refusals within a second or so: not 40 lines
    expect(warnings.join('\n')).not.toContain('secret-in-query')
    expect(sample(await metrics(hub), 'hub_errors_total{reason="origin_refused"}')).toBe(20)
  })

  it('with the default config (no token) a page on evil.example neither reads the registry nor configures a module', async () => {
    const hub = await startHub()
    const victim = await RawPeer.connect(hub.url())
    await victim.join('victim', { identity: { plugin: 'victim', instanceId: 'v-1', labels: { secret: 'yes' } } })

    // The page's own origin, to the hub's address: 403, and it never gets a socket to send on.
    await expect(RawPeer.connect(hub.url(), { origin: 'https://evil.example' })).rejects.toThrow(/403/)
    // The same page after rebinding evil.example to 127.0.0.1: same-origin, but not a host this hub serves.
    const rebound = { host: `evil.example:${hub.port}`, origin: `http://evil.example:${hub.port}` }
    expect(await upgrade(hub.port, '/ws', rebound)).toBe(421)
    expect(await upgrade(hub.port, '/socket/websocket?vsn=2.0.0', rebound)).toBe(421)
    for (const path of ['/metrics', '/readyz', '/healthz']) {
      const response = await get(hub.port, path, rebound)
      expect(response.status, path).toBe(421)
      expect(response.body).not.toMatch(/hub_|victim|ready/)
    }

    expect(hub.server.hub.peers.size).toBe(1)
    expect(victim.ofType('module:configure')).toEqual([])
    const exposition = await metrics(hub)
    expect(sample(exposition, 'hub_errors_total{reason="origin_refused"}')).toBe(1)
    expect(sample(exposition, 'hub_errors_total{reason="host_refused"}')).toBe(5)
  })

  it('lets in the origins ALLOWED_ORIGINS lists (normalized), and any with *', async () => {
    const hub = await startHub({ env: { ALLOWED_ORIGINS: 'https://App.example, http://tools.example:8080' } })
    for (const origin of ['https://app.example', 'https://APP.example:443', 'http://tools.example:8080'])
      expect(await upgrade(hub.port, '/ws', { origin }), origin).toBe(101)
    for (const origin of ['http://app.example', 'https://app.example:8443', 'http://tools.example', 'https://sub.app.example'])
      expect(await upgrade(hub.port, '/ws', { origin }), origin).toBe(403)

    const open = await startHub({ http: { allowedOrigins: ['*'] } })
    expect(await upgrade(open.port, '/ws', { origin: 'https://evil.example' })).toBe(101)
    expect(await upgrade(open.port, '/socket/websocket', { origin: 'null' })).toBe(101)
  })

  it('answers browser requests from a foreign origin 403 on the ops endpoints; scrapers and local pages are served', async () => {
    const hub = await startHub()
    for (const path of ['/metrics', '/readyz', '/healthz']) {
      expect((await get(hub.port, path, { origin: 'https://evil.example' })).status, path).toBe(403)
      expect((await get(hub.port, path)).status, path).toBe(200)
      expect((await get(hub.port, path, { origin: 'http://localhost:5173' })).status, path).toBe(200)
    }
  })

  it('refuses bad ALLOWED_ORIGINS and ALLOWED_HOSTS entries at startup', () => {
    for (const value of ['evil.example', 'https://app.example/path', 'https://'])
      expect(() => createServer({ env: { ALLOWED_ORIGINS: value } }), value).toThrow(/Invalid ALLOWED_ORIGINS/)
    for (const value of ['https://hub.example', 'hub.example:6121', 'a b'])
      expect(() => createServer({ env: { ALLOWED_HOSTS: value } }), value).toThrow(/Invalid ALLOWED_HOSTS/)
  })
})

describe('host check: a DNS-rebinding page cannot reach a local hub', () => {
  it('with auth off on a loopback bind, serves loopback Hosts only and answers any other 421', async () => {
    const hub = await startHub()
    for (const host of [`localhost:${hub.port}`, `127.0.0.1:${hub.port}`, `[::1]:${hub.port}`, `airi.localhost:${hub.port}`, '127.1.2.3']) {
      expect((await get(hub.port, '/healthz', { host })).status, host).toBe(200)
      expect(await upgrade(hub.port, '/ws', { host }), host).toBe(101)
    }
    const foreign = [`evil.example:${hub.port}`, 'evil.example', `127.0.0.1.nip.io:${hub.port}`, 'localhost.evil.example', 'evil@127.0.0.1']
    for (const host of foreign) {
      for (const path of ['/metrics', '/readyz', '/healthz']) {
        const response = await get(hub.port, path, { host })
        expect(response.status, `${path} for ${host}`).toBe(421)
        expect(response.body).toContain('Misdirected Request')
      }
      expect(await upgrade(hub.port, '/ws', { host }), host).toBe(421)
      expect(await upgrade(hub.port, '/plugin_socket/websocket', { host }), host).toBe(421)
    }
    expect(sample(await metrics(hub), 'hub_errors_total{reason="host_refused"}')).toBe(foreign.length * 5)
  })

  it('serves what ALLOWED_HOSTS adds (.example.com with its subdomains); * turns the check off', async () => {
    const hub = await startHub({ env: { ALLOWED_HOSTS: 'hub.example, .example.com' } })
    for (const host of [`hub.example:${hub.port}`, 'HUB.example', 'example.com', 'a.b.example.com:80', 'localhost'])
      expect((await get(hub.port, '/healthz', { host })).status, host).toBe(200)
    for (const host of ['evil.example', 'notexample.com', 'hub.example.evil', 'example.com.evil'])
      expect((await get(hub.port, '/healthz', { host })).status, host).toBe(421)

    const open = await startHub({ http: { allowedHosts: ['*'] } })
    expect((await get(open.port, '/healthz', { host: 'evil.example' })).status).toBe(200)
  })

  it('is off with auth on or on a non-loopback bind, unless ALLOWED_HOSTS is set; a mounted app checks only then', async () => {
    const rebound = { host: 'evil.example' }
    const authenticated = await startHub({ auth: { token: 't' } })
    expect((await get(authenticated.port, '/healthz', rebound)).status).toBe(200)
    const listed = await startHub({ auth: { token: 't' }, http: { allowedHosts: ['hub.example'] } })
    expect((await get(listed.port, '/healthz', rebound)).status).toBe(421)

    const server = createServer({ logger: { level: 'silent' }, env: {} })
    const everywhere = await listenHub(server, { port: 0, host: '0.0.0.0', env: {} })
    onCleanup(everywhere.close)
    expect((await get(everywhere.port, '/healthz', rebound)).status).toBe(200)

    // Mounted (Nitro, any h3 host): no bind address is known, so only ALLOWED_HOSTS turns it on.
    const request = (): Request => new Request('http://evil.example/healthz', { headers: rebound })
    const mounted = createServer({ logger: { level: 'silent' }, env: {} })
    onCleanup(mounted.closeAllPeers)
    expect((await mounted.app.fetch(request())).status).toBe(200)
    const configured = createServer({ logger: { level: 'silent' }, env: { ALLOWED_HOSTS: 'hub.example' } })
    onCleanup(configured.closeAllPeers)
    expect((await configured.app.fetch(request())).status).toBe(421)
  })
})
