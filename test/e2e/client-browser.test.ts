import type { AddressInfo } from 'node:net'
import type { Browser, Page } from 'playwright-core'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { join, normalize } from 'node:path'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createClient } from '../../src/client/index.ts'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'

// The client as a browser loads it: the ES modules `npm run build` emitted in dist/client (built
// by test/setup/build.ts), valibot mapped by an import map, `WebSocket` the page's own.

const root = join(import.meta.dirname, '../..')
const token = 'secret'

const PAGE = `<!doctype html>
<script type="importmap">{ "imports": { "valibot": "/valibot.js" } }</script>
<script type="module">
import { createClient } from '/client/index.js'
window.log = []
const client = createClient({ url: decodeURIComponent(location.hash.slice(1)), token: '${token}', module: { name: 'page', labels: { ui: 'web' } }, reconnect: { initialDelayMs: 50 } })
client.onOpen(info => log.push(info.reconnected ? 'reopen' : 'open'))
client.onModules(() => log.push('modules ' + [...client.modules.values()].map(m => m.name).sort().join(',')))
client.on('hello', (data, event) => log.push('hello ' + data.text + ' from ' + event.from.plugin))
client.respond('page:add', ({ a, b }) => ({ sum: a + b }))
window.client = client
</script>`

/** Serves the page, the built client and valibot, from a localhost origin the hub accepts. */
async function startPageServer(): Promise<number> {
  const files: Record<string, string> = { '/valibot.js': join(root, 'node_modules/valibot/dist/index.mjs') }
  const server = createServer((request, response) => {
    const path = new URL(request.url!, 'http://page').pathname
    if (path === '/')
      return response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE)
    const file = files[path] ?? (path.startsWith('/client/') && path.endsWith('.js') ? join(root, 'dist', normalize(path)) : undefined)
    if (!file)
      return response.writeHead(404).end()
    response.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(file))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  onCleanup(() => new Promise(resolve => server.close(resolve)))
  return (server.address() as AddressInfo).port
}

let browser: Browser

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
}, 30_000)

afterAll(async () => {
  await browser?.close()
})

async function logged(page: Page, entry: string): Promise<string[]> {
  await page.waitForFunction(e => (globalThis as unknown as { log: string[] }).log.includes(e), entry, { timeout: 10_000 })
  return page.evaluate(() => (globalThis as unknown as { log: string[] }).log)
}

describe('hub-server/client in a real browser', () => {
  it('connects, announces, receives, requests and answers from a Chromium page', async () => {
    const hub = await startHub({ auth: { token } })
    const airi = await RawPeer.connect(hub.url())
    await airi.join('legacy', { token })
    const node = createClient({ url: hub.url(), token, WebSocket, module: { name: 'node' } })
    onCleanup(() => node.close())
    node.respond('node:time', () => ({ now: 42 }))
    await until(() => node.status === 'open', 'the node client to open')

    const pagePort = await startPageServer()
    const page = await browser.newPage()
    onCleanup(() => page.close())
    const errors: string[] = []
    page.on('pageerror', error => errors.push(error.message))
    await page.goto(`http://127.0.0.1:${pagePort}/#${encodeURIComponent(hub.url())}`)
    await logged(page, 'open')
    await logged(page, 'modules legacy,node,page')
    // Both the AIRI peer and the Node client see the page's module, labels and all.
    await airi.waitFor(e => e.type === 'module:announced' && e.data.name === 'page')
    await until(() => node.find('page'), 'the node client to see the page')
    expect(node.find('page')!.identity).toMatchObject({ plugin: 'page', labels: { ui: 'web' } })

    airi.send({ type: 'hello', data: { text: 'hi' }, route: { destinations: ['label:ui=web'] } })
    await logged(page, 'hello hi from legacy')
    expect(await node.request('page:add', { a: 20, b: 22 })).toEqual({ sum: 42 })
    expect(await page.evaluate(() => (globalThis as any).client.request('node:time', {}))).toEqual({ now: 42 })
    expect(await page.evaluate(() => (globalThis as any).client.status)).toBe('open')
    expect(errors).toEqual([])
  })
})
