import type { AddressInfo } from 'node:net'
import type { Browser, Page } from 'playwright-core'
import type { RunningHub } from '../helpers/hub.ts'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'
import { sample } from '../helpers/metrics.ts'

// A real headless Chromium (`apt-get install chromium`; .ci/run installs it): it sends the
// Origin and Host a browser really sends, which is what the hub's checks are for. `*.test`
// names resolve to 127.0.0.1 inside the browser, so a page can have an origin of its own.

/** Opens the WebSocket URL after `#` and records what happens, for the test to read. */
const PAGE = `<!doctype html><script>
window.events = []
const ws = new WebSocket(decodeURIComponent(location.hash.slice(1)))
ws.onopen = () => events.push('open')
ws.onerror = () => events.push('error')
ws.onclose = event => events.push('close ' + event.code)
ws.onmessage = (message) => {
  const frame = JSON.parse(message.data)
  const event = frame.json ?? frame
  events.push(event.type === 'registry:modules:sync' ? 'sync ' + event.data.modules.map(m => m.name).join(',') : event.type)
}
</script>`

let browser: Browser

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--host-resolver-rules=MAP *.test 127.0.0.1'],
  })
}, 30_000)

afterAll(async () => {
  await browser?.close()
})

/** A page server of its own: another origin than the hub's. */
async function startPageServer(): Promise<number> {
  const server = createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  onCleanup(() => new Promise(resolve => server.close(resolve)))
  return (server.address() as AddressInfo).port
}

/** A hub with a module in its registry, for a page to (not) see. */
async function hubWithWatcher(options: Parameters<typeof startHub>[0] = {}): Promise<RunningHub> {
  const hub = await startHub(options)
  const watcher = await RawPeer.connect(hub.url())
  await watcher.join('watcher')
  return hub
}

async function open(url: string): Promise<Page> {
  const page = await browser.newPage()
  onCleanup(() => page.close())
  await page.goto(url)
  return page
}

/** Waits until the page's socket logged an event starting with `prefix`; returns all it logged. */
async function eventsUntil(page: Page, prefix: string): Promise<string[]> {
  await page.waitForFunction(p => (globalThis as unknown as { events: string[] }).events.some(e => e.startsWith(p)), prefix, { timeout: 10_000 })
  return page.evaluate(() => (globalThis as unknown as { events: string[] }).events)
}

describe('a real browser', () => {
  it('cannot open the hub from a page on another origin: the page sees the socket fail, the hub registers nothing', async () => {
    const hub = await hubWithWatcher()
    const pagePort = await startPageServer()
    const page = await open(`http://page.test:${pagePort}/#${encodeURIComponent(hub.url())}`)
    const events = await eventsUntil(page, 'close')
    expect(events).toEqual(['error', 'close 1006'])
    expect(hub.server.hub.peers.size).toBe(1) // the watcher only
    const metrics = await (await fetch(`http://127.0.0.1:${hub.port}/metrics`)).text()
    expect(sample(metrics, 'hub_errors_total{reason="origin_refused"}')).toBe(1)
  })

  it('connects from that page once ALLOWED_ORIGINS lists its origin, and gets the registry', async () => {
    const pagePort = await startPageServer()
    const hub = await hubWithWatcher({ env: { ALLOWED_ORIGINS: `http://page.test:${pagePort}` } })
    const page = await open(`http://page.test:${pagePort}/#${encodeURIComponent(hub.url())}`)
    const events = await eventsUntil(page, 'sync')
    expect(events.slice(0, 2)).toEqual(['open', 'module:authenticated'])
    expect(events).toContain('sync watcher')
  })

  it('connects from a page the hub serves itself (same origin), under a name ALLOWED_HOSTS lists', async () => {
    const hub = await hubWithWatcher({ http: { allowedHosts: ['hub.test'] } })
    hub.server.app.get('/page', () => new Response(PAGE, { headers: { 'content-type': 'text/html' } }))
    const origin = `hub.test:${hub.port}`
    const page = await open(`http://${origin}/page#${encodeURIComponent(`ws://${origin}/ws`)}`)
    expect(await eventsUntil(page, 'sync')).toContain('sync watcher')
  })

  it('gets 421 for a rebound name: a DNS-rebinding page cannot read /metrics', async () => {
    const hub = await hubWithWatcher()
    const page = await browser.newPage()
    onCleanup(() => page.close())
    const response = await page.goto(`http://evil.test:${hub.port}/metrics`)
    expect(response?.status()).toBe(421)
    expect(await page.content()).not.toContain('hub_modules_announced')
  })
})
