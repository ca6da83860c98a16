import type { RunningHub } from '../helpers/hub.ts'
import { request } from 'node:http'
import { describe, expect, it } from 'vitest'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'
import { freePort, runCli } from '../helpers/process.ts'

const base = (hub: RunningHub, path = '/dashboard'): string => `http://127.0.0.1:${hub.port}${path}`
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** Server-sent events of one stream, parsed as they arrive; closed after the test. */
async function openStream(url: string, headers: Record<string, string> = {}): Promise<{ status: number, events: Array<{ event: string, data: any }>, close: () => void }> {
  const controller = new AbortController()
  onCleanup(() => controller.abort())
  const response = await fetch(url, { headers, signal: controller.signal })
  const events: Array<{ event: string, data: any }> = []
  if (response.ok) {
    void (async () => {
      const decoder = new TextDecoder()
      let buffer = ''
      try {
        for await (const chunk of response.body!) {
          buffer += decoder.decode(chunk, { stream: true })
          for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const event = /^event: (.*)$/m.exec(block)![1]!
            events.push({ event, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) })
          }
        }
      }
      catch {} // aborted
    })()
  }
  return { status: response.status, events, close: () => controller.abort() }
}

/** A GET with a Host header of our choosing (fetch does not let one set it). */
function getWithHost(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { host } }, (response) => {
      response.resume()
      resolve(response.statusCode!)
    }).on('error', reject).end()
  })
}

describe('dashboard over HTTP', () => {
  it('serves one self-contained page without any data in it', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' } })
    const response = await fetch(base(hub))
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    expect(response.headers.get('content-security-policy')).toContain('default-src \'none\'')
    const html = await response.text()
    expect(html).toContain('<title>hub-server dashboard</title>')
    // Nothing from elsewhere: no CDN, no external script or stylesheet.
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/)
  })

  it('asks for the token on data requests: 401 without one, 403 with a wrong one, the stream with the right one', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' } })
    const missing = await fetch(`${base(hub)}/api/stream`)
    expect(missing.status).toBe(401)
    expect(missing.headers.get('www-authenticate')).toBe('Bearer')
    expect((await missing.json() as { error: string }).error).toMatch(/token is required/)
    const wrong = await fetch(`${base(hub)}/api/stream`, { headers: bearer('nope') })
    expect(wrong.status).toBe(403)
    expect((await wrong.json() as { error: string }).error).toBe('Wrong dashboard token')
    const stream = await openStream(`${base(hub)}/api/stream`, bearer('secret'))
    expect(stream.status).toBe(200)
    const snapshot = await until(() => stream.events.find(e => e.event === 'snapshot'), 'a snapshot')
    expect(snapshot.data.topology.nodes).toHaveLength(1)
    expect(snapshot.data.modules).toEqual([])
  })

  it('falls back on the metrics token, then the authentication token', async () => {
    const metrics = await startHub({ metrics: { token: 'metrics-token' }, auth: { token: 'auth-token' } })
    expect((await fetch(`${base(metrics)}/api/stream`, { headers: bearer('auth-token') })).status).toBe(403)
    expect((await openStream(`${base(metrics)}/api/stream`, bearer('metrics-token'))).status).toBe(200)
    const auth = await startHub({ auth: { token: 'auth-token' } })
    expect((await openStream(`${base(auth)}/api/stream`, bearer('auth-token'))).status).toBe(200)
    const env = await startHub({ env: { DASHBOARD_TOKEN: 'env-token', AUTHENTICATION_TOKEN: 'auth-token' } })
    expect((await fetch(`${base(env)}/api/stream`, { headers: bearer('auth-token') })).status).toBe(403)
    expect((await openStream(`${base(env)}/api/stream`, bearer('env-token'))).status).toBe(200)
  })

  it('without any token, answers on a loopback host only and says why elsewhere', async () => {
    const hub = await startHub({ http: { allowedHosts: ['hub.example'] } })
    expect((await openStream(`${base(hub)}/api/stream`)).status).toBe(200)
    expect(await getWithHost(hub.port, '/dashboard/api/stream', 'hub.example')).toBe(403)
    // Not behind a trusted proxy: the header is not believed.
    expect((await openStream(`${base(hub)}/api/stream`, { 'x-forwarded-for': '203.0.113.9' })).status).toBe(200)
  })

  it('without any token behind a proxy, refuses a client that is not on this machine', async () => {
    const hub = await startHub({ trustProxy: true })
    const refused = await fetch(`${base(hub)}/api/stream`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
    expect(refused.status).toBe(403)
    expect((await refused.json() as { error: string }).error).toMatch(/loopback host only/)
  })

  it('is off with DASHBOARD_ENABLED=false, and moves with DASHBOARD_PATH', async () => {
    const off = await startHub({ env: { DASHBOARD_ENABLED: 'false' } })
    expect((await fetch(base(off))).status).toBe(404)
    expect((await fetch(`${base(off)}/api/stream`)).status).toBe(404)
    const moved = await startHub({ env: { DASHBOARD_PATH: '/ops/hub' } })
    expect((await fetch(base(moved, '/ops/hub'))).status).toBe(200)
    expect((await fetch(base(moved))).status).toBe(404)
    await expect(startHub({ env: { DASHBOARD_PATH: 'no-slash' } })).rejects.toThrow(/Invalid DASHBOARD_PATH/)
  })

  it('streams a module announced, then its leaving, in batches', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' } })
    const stream = await openStream(`${base(hub)}/api/stream`, bearer('secret'))
    await until(() => stream.events.find(e => e.event === 'snapshot'), 'a snapshot')
    const peer = await RawPeer.connect(hub.url())
    await peer.join('watched', { identity: { plugin: 'watched-plugin', instanceId: 'w-1', labels: { env: 'test' } } })
    const upsert = await until(() => stream.events.flatMap(e => e.data.modules?.upsert ?? []).find((row: any) => row.name === 'watched'), 'the module in an update')
    expect(upsert).toMatchObject({ plugin: 'watched-plugin', instance: 'w-1', labels: { env: 'test' }, healthy: true, protocol: 'airi', node: 'this node' })
    expect(upsert.since).toBeGreaterThan(Date.now() - 10_000)
    await peer.close()
    await until(() => stream.events.some(e => e.data.modules?.remove?.includes(upsert.k)), 'the module removed')
    const close = await until(() => stream.events.flatMap(e => e.data.closes ?? []).find((record: any) => record.peer.includes('watched')), 'the close')
    expect(close).toMatchObject({ code: 1005, protocol: 'airi' })
  })

  it('runs nothing for pages once the last one is gone', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' }, metrics: { enabled: false } })
    expect(hub.server.hub.observers.has('topology')).toBe(false)
    expect(hub.server.hub.observers.has('received')).toBe(false)
    const stream = await openStream(`${base(hub)}/api/stream`, bearer('secret'))
    await until(() => stream.events.length > 0, 'a snapshot')
    expect(hub.server.hub.observers.has('topology')).toBe(true)
    expect(hub.server.hub.observers.has('received')).toBe(true)
    stream.close()
    await until(() => !hub.server.hub.observers.has('topology') && !hub.server.hub.observers.has('received'), 'the stream let go')
  })

  it('ends open pages when the hub closes, so shutdown does not wait for them', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' } })
    const response = await fetch(`${base(hub)}/api/stream`, { headers: bearer('secret') })
    const reader = response.body!.getReader()
    await reader.read() // the snapshot
    await hub.close()
    let done = false
    while (!done)
      done = (await reader.read()).done
    expect(done).toBe(true)
  })

  it('drops a page that does not read, like any slow consumer, and stops working for it', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' }, metrics: { enabled: false }, limits: { maxBufferedBytes: 64 * 1024, maxModulesPerPeer: 400 } })
    const errors: string[] = []
    hub.server.hub.observers.on('error', reason => errors.push(reason))
    // In process, so that nothing (no socket buffer) reads the stream: its queue only grows.
    const response = await hub.server.app.fetch(new Request('http://127.0.0.1/dashboard/api/stream', { headers: { ...bearer('secret'), host: '127.0.0.1' } }))
    expect(response.status).toBe(200)
    const peer = await RawPeer.connect(hub.url())
    for (let i = 0; i < 400; i++)
      peer.send({ type: 'extension:module:announce', data: { name: `m${i}`, identity: { id: `m${i}`, extension: { id: 'bulk' }, labels: { note: 'x'.repeat(200) } } } })
    await until(() => errors.includes('slow_consumer'), 'the page dropped', 10_000)
    await until(() => !hub.server.hub.observers.has('topology'), 'nothing left running for pages')
    // What was queued is still readable, then the stream ends.
    let done = false
    const reader = response.body!.getReader()
    while (!done)
      done = (await reader.read()).done
    expect(done).toBe(true)
    expect(peer.closed).toBeUndefined() // the peers are not affected
  })

  it('is announced by the command, served from the built package with the token it was given', async () => {
    const port = await freePort()
    const cli = runCli(['--port', String(port), '--dashboard-token', 'cli-token'])
    const [, url] = await cli.waitForOutput(/dashboard on (http:\/\/\S+)/)
    expect(url).toBe(`http://127.0.0.1:${port}/dashboard`)
    expect((await fetch(url!)).status).toBe(200)
    expect((await fetch(`${url}/api/stream`, { headers: bearer('wrong') })).status).toBe(403)
    expect((await openStream(`${url}/api/stream`, bearer('cli-token'))).status).toBe(200)
  })

  it('explains a route as JSON for scripts, and answers a bad request 400 saying why', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' }, routing: { policy: { denyLabels: ['env=prod'] } }, limits: { maxPayloadBytes: 4096 } })
    const sender = await RawPeer.connect(hub.url())
    await sender.join('sender')
    const prod = await RawPeer.connect(hub.url())
    await prod.join('tts-prod', { identity: { plugin: 'tts', instanceId: 'tts-1', labels: { env: 'prod' } } })
    const dev = await RawPeer.connect(hub.url())
    await dev.join('tts-dev', { identity: { plugin: 'tts', instanceId: 'tts-2', labels: { env: 'dev' } } })
    const explain = (body: string, headers: Record<string, string> = bearer('secret')): Promise<Response> =>
      fetch(`${base(hub)}/api/explain`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })

    const response = await explain(JSON.stringify({ from: 'sender', event: { type: 'say', route: { destinations: ['plugin:tts'] } } }))
    expect(response.status).toBe(200)
    const result = await response.json() as { recipients: Array<{ modules: Array<{ name: string }>, protocol?: string }>, excluded: Array<{ modules: Array<{ name: string }>, step: string, reason: string }> }
    expect(result.recipients.map(peer => peer.modules[0]!.name)).toEqual(['tts-dev'])
    expect(result.recipients[0]!.protocol).toBe('airi')
    expect(result.excluded.map(peer => [peer.modules[0]!.name, peer.step, peer.reason])).toEqual(expect.arrayContaining([
      ['sender', 'sender', expect.any(String)],
      ['tts-prod', 'policy', 'policy denyLabels "env=prod"'],
    ]))
    expect(prod.ofType('say')).toEqual([]) // nothing was delivered

    const error = async (response: Response): Promise<[number, string]> => [response.status, (await response.json() as { error: string }).error]
    expect((await explain('{}', {})).status).toBe(401)
    expect((await explain('{}', bearer('nope'))).status).toBe(403)
    expect(await error(await explain('{not json'))).toEqual([400, expect.stringMatching(/^The body must be JSON/)])
    expect(await error(await explain(JSON.stringify({ event: { data: {} } })))).toEqual([400, expect.stringMatching(/^Invalid explain request: .* at event\.type$/)])
    expect(await error(await explain(JSON.stringify({ from: 'nobody', event: { type: 'say' } })))).toEqual([400, 'no peer or module "nobody" on any node'])
    expect(await error(await explain(JSON.stringify({ event: { type: 'say', data: { pad: 'x'.repeat(5000) } } })))).toEqual([413, 'The body is over 4096 bytes'])
    // Chunked, with no length to judge by: cut while reading.
    const chunks = new ReadableStream({
      pull(controller) {
        controller.enqueue(new TextEncoder().encode('x'.repeat(1000)))
      },
    })
    const chunked = await fetch(`${base(hub)}/api/explain`, { method: 'POST', headers: bearer('secret'), body: chunks, duplex: 'half' } as RequestInit)
    expect(await error(chunked)).toEqual([413, 'The body is over 4096 bytes'])
    // The hub is fine: it still explains.
    expect((await explain(JSON.stringify({ event: { type: 'say' } }))).status).toBe(200)
  })

  it('answers a route nested past the hub\'s limits 400, as a peer\'s frame would be refused, and never 500', async () => {
    const hub = await startHub({ dashboard: { token: 'secret' } })
    // 30 000 nested `and`s (690 kB, under maxPayloadBytes): deeper than any stack that recurses into it.
    const deep = `${'{"type":"and","all":['.repeat(30_000)}{"type":"ids","ids":["x"]}${']}'.repeat(30_000)}`
    const explain = (body: string): Promise<Response> => fetch(`${base(hub)}/api/explain`, { method: 'POST', headers: bearer('secret'), body })
    for (const body of [
      `{"event":{"type":"say","route":{"destinations":[${deep}]}}}`,
      `{"event":{"type":"say","data":{"destinations":[${deep}]}}}`,
    ]) {
      const response = await explain(body)
      expect([response.status, await response.json()]).toEqual([400, { error: 'limit exceeded: expression depth' }])
    }
    // hub.explain, as an embedder calls it, answers the same.
    const parsed = JSON.parse(`{"type":"say","route":{"destinations":[${'{"type":"and","all":['.repeat(2000)}{"type":"ids","ids":["x"]}${']}'.repeat(2000)}]}}`)
    expect(await hub.server.hub.explain({ event: parsed })).toMatchObject({ code: 'limit_exceeded', message: 'limit exceeded: expression depth' })
    expect((await explain(JSON.stringify({ event: { type: 'say' } }))).status).toBe(200)
  })
})
