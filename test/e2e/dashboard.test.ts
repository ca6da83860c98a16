import type { Browser, Page } from 'playwright-core'
import type { RunningHub } from '../helpers/hub.ts'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'
import { outcome, phoenixSocket } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'
import { sdkClient } from '../helpers/sdk.ts'

// The dashboard in a real headless Chromium (`apt-get install chromium`; .ci/run installs it),
// read as an operator reads it: what the page shows. Screenshots land in test-results/dashboard/.

const TOKEN = 'dash-secret'
const SHOTS = join(import.meta.dirname, '../../test-results/dashboard')

let browser: Browser

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true })
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] })
}, 30_000)

afterAll(async () => {
  await browser?.close()
})

async function openPage(hub: RunningHub): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } })
  onCleanup(() => page.close())
  await page.goto(`http://127.0.0.1:${hub.port}/dashboard`)
  return page
}

/** Opens the dashboard and gives it the token; resolves once it is live. */
async function openDashboard(hub: RunningHub): Promise<Page> {
  const page = await openPage(hub)
  await page.locator('#token').fill(TOKEN)
  await page.locator('#token').press('Enter')
  await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 5000 })
  return page
}

const moduleRow = (page: Page, name: string) => page.locator(`.mrow[data-name="${name}"]`)
const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) })

describe('the dashboard in a real browser', () => {
  it('asks for the token, refuses a wrong one visibly, and opens with the right one', async () => {
    const hub = await startHub({ dashboard: { token: TOKEN } })
    const page = await openPage(hub)
    await page.locator('#gate.show').waitFor()
    await page.locator('#token').fill('not-the-token')
    await page.locator('#token').press('Enter')
    await expect.poll(() => page.locator('#token-error').textContent()).toBe('Wrong dashboard token')
    expect(await page.locator('#gate').isVisible()).toBe(true)
    await shot(page, 'token-refused')
    await page.locator('#token').fill(TOKEN)
    await page.locator('#token').press('Enter')
    await page.locator('#status', { hasText: 'live' }).waitFor()
    expect(await page.locator('#gate').isVisible()).toBe(false)
    expect(await page.locator('.node-row').count()).toBe(1)
    // The token stays for the tab's session: a reload goes straight in.
    await page.reload()
    await page.locator('#status', { hasText: 'live' }).waitFor()
    expect(await page.locator('#gate').isVisible()).toBe(false)
  })

  it('says it is open on loopback only when no token is configured', async () => {
    const hub = await startHub()
    const page = await openPage(hub)
    await page.locator('#status', { hasText: 'live' }).waitFor()
    expect(await page.locator('#auth-mode').textContent()).toBe('open on loopback (no token configured)')
  })

  it('shows an SDK client within a second of its announcement, unhealthy when it goes silent, gone (closed 4000) when the hub drops it; a Phoenix plugin with its protocol', async () => {
    const hub = await startHub({ dashboard: { token: TOKEN }, heartbeat: { readTimeout: 1500 }, modules: [{ name: 'tts', required: true }] })
    const page = await openDashboard(hub)
    await expect.poll(() => page.locator('#missing').textContent()).toBe('Required modules missing: tts')

    // The real 0.8.4 SDK; its own heartbeat is slow, so only the hub's probes keep it alive.
    const sdk = sdkClient(hub.url(), 'voice-sdk', { labels: { room: 'lobby' } })
    await until(() => hub.server.registry.find('voice-sdk'), 'the SDK module in the registry')
    await moduleRow(page, 'voice-sdk').waitFor({ timeout: 1000 })
    const row = moduleRow(page, 'voice-sdk')
    expect(await row.getAttribute('data-health')).toBe('healthy')
    expect(await row.getAttribute('data-protocol')).toBe('airi')
    expect(await row.textContent()).toContain('room=lobby')
    expect(await row.textContent()).toContain('voice-sdk-instance')

    const socket = phoenixSocket(hub.url('/plugin_socket'))
    const channel = socket.channel('plugin:phx-tools', {})
    expect((await outcome(channel.join())).status).toBe('ok')
    await moduleRow(page, 'phx-tools').waitFor()
    expect(await moduleRow(page, 'phx-tools').locator('span').last().textContent()).toBe('Phoenix')
    await expect.poll(() => page.locator('.node-row td[data-protocol="phoenix"]').textContent()).toBe('1')
    expect(await page.locator('.node-row td[data-protocol="airi"]').textContent()).toBe('1')
    await shot(page, 'modules')

    // Silent: it stops reading (a hung process), so the hub's probes go unanswered.
    ;(sdk.client as unknown as { websocket: { _socket: { pause: () => void } } }).websocket._socket.pause()
    await page.locator('.mrow[data-name="voice-sdk"][data-health="unhealthy"]').waitFor({ timeout: 5000 })
    await shot(page, 'unhealthy')
    await moduleRow(page, 'voice-sdk').waitFor({ state: 'detached', timeout: 5000 })
    await page.locator('.close-row', { hasText: 'voice-sdk' }).waitFor()
    expect(await page.locator('.close-row', { hasText: 'voice-sdk' }).textContent()).toContain('4000')

    // A plugin that leaves by itself is gone too.
    await new Promise<void>(resolve => socket.disconnect(() => resolve()))
    await moduleRow(page, 'phx-tools').waitFor({ state: 'detached' })
  })

  it('shows both nodes of a cluster on one real Redis, and the modules of each', async () => {
    const redis = await startRedis()
    onCleanup(() => redis.kill())
    const [a, b] = await startNodes(redis.url, 2, 3000, { dashboard: { token: TOKEN } })
    const onA = await RawPeer.connect(a!.url())
    await onA.join('speech-a')
    const onB = await RawPeer.connect(b!.url())
    await onB.join('vision-b', { identity: { plugin: 'vision', instanceId: 'vision-1', labels: { gpu: 'yes' } } })
    const page = await openDashboard(a!)
    await expect.poll(() => page.locator('.node-row').count()).toBe(2)
    const nodeA = a!.server.hub.cluster!.nodeId
    const nodeB = b!.server.hub.cluster!.nodeId
    expect(await page.locator(`.node-row[data-node="${nodeA}"]`).getAttribute('data-self')).toBe('this')
    await expect.poll(() => page.locator(`.node-row[data-node="${nodeB}"] td[data-modules]`).textContent()).toBe('1')
    expect(await moduleRow(page, 'vision-b').getAttribute('data-node')).toBe(nodeB)
    expect(await moduleRow(page, 'vision-b').getAttribute('data-protocol')).toBe('airi')
    expect(await moduleRow(page, 'speech-a').getAttribute('data-node')).toBe(nodeA)
    await shot(page, 'cluster')
    // A module leaving the other node leaves the page.
    await onB.close()
    await moduleRow(page, 'vision-b').waitFor({ state: 'detached' })
  })

  it('shows a realistic hub at a glance: two nodes, a dozen modules, traffic, a missing module, errors and closes', async () => {
    const redis = await startRedis()
    onCleanup(() => redis.kill())
    const [a, b] = await startNodes(redis.url, 2, 3000, { dashboard: { token: TOKEN }, heartbeat: { readTimeout: 4000 }, modules: [{ name: 'tts-elevenlabs', required: true }] })
    const modules: Array<[RunningHub, string, string, Record<string, string>]> = [
      [a!, 'stage-web', 'proj-airi:stage-web', { ui: 'web' }],
      [a!, 'discord-bot', 'airi-plugin-discord', { channel: 'discord', env: 'prod' }],
      [a!, 'telegram-bot', 'airi-plugin-telegram', { channel: 'telegram', env: 'prod' }],
      [a!, 'stt-whisper', 'airi-plugin-stt', { gpu: 'yes' }],
      [a!, 'memory-pgvector', 'airi-plugin-memory', { store: 'pgvector' }],
      [b!, 'minecraft-agent', 'airi-plugin-minecraft', { game: 'minecraft' }],
      [b!, 'factorio-agent', 'airi-plugin-factorio', { game: 'factorio' }],
      [b!, 'vision-yolo', 'airi-plugin-vision', { gpu: 'yes' }],
      [b!, 'stage-tamagotchi', 'proj-airi:stage-tamagotchi', { ui: 'desktop' }],
      [b!, 'twitter-poster', 'airi-plugin-twitter', { channel: 'twitter', env: 'staging' }],
    ]
    const peers = new Map<string, RawPeer>()
    for (const [hub, name, plugin, labels] of modules) {
      const peer = await RawPeer.connect(hub.url())
      await peer.join(name, { identity: { plugin, instanceId: `${name}-1`, labels } })
      peers.set(name, peer)
    }
    const phoenix = phoenixSocket(b!.url('/plugin_socket'))
    expect((await outcome(phoenix.channel('plugin:atomemo-tools', {}).join())).status).toBe('ok')
    const page = await openDashboard(a!)
    await expect.poll(() => page.locator('.mrow').count()).toBe(11)
    // Some traffic for the charts, a bad frame for the errors, a hung peer, a peer that leaves for the closes.
    ;(peers.get('minecraft-agent')!.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    for (let i = 0; i < 100; i++) {
      peers.get('discord-bot')!.send({ type: 'input:text', data: { text: `hello ${i}` }, route: { destinations: ['plugin:proj-airi:stage-web'] } })
      if (i % 20 < 12)
        peers.get('stage-web')!.send({ type: 'output:reply', data: { text: `hi ${i}` } })
      if (i % 3 === 0)
        peers.get('stt-whisper')!.send({ type: 'input:voice', data: { seconds: i } })
      if (i % 25 === 0)
        peers.get('telegram-bot')!.sendRaw('{not json')
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    await page.locator('.mrow[data-name="minecraft-agent"][data-health="unhealthy"]').waitFor({ timeout: 5000 })
    await peers.get('telegram-bot')!.close()
    await page.locator('.close-row', { hasText: 'telegram-bot' }).waitFor()
    await expect.poll(() => page.locator('#missing').textContent()).toBe('Required modules missing: tts-elevenlabs')
    await expect.poll(() => page.locator('#rates-legend').textContent()).toContain('input:text')
    await page.locator('.error-row').first().waitFor()
    expect(await page.locator('.node-row').count()).toBe(2)
    await shot(page, 'overview')
    await page.emulateMedia({ colorScheme: 'dark' })
    await shot(page, 'overview-dark')
  }, 60_000)

  it('explains routing: picks a sender, takes destinations, names the policy rule that left a peer out', async () => {
    const hub = await startHub({ dashboard: { token: TOKEN }, routing: { policy: { denyLabels: ['env=prod'] } } })
    const modules: Array<[string, string, Record<string, string>]> = [
      ['discord-bot', 'airi-plugin-discord', { env: 'dev' }],
      ['tts-dev', 'airi-plugin-tts', { env: 'dev' }],
      ['tts-prod', 'airi-plugin-tts', { env: 'prod' }],
      ['vision', 'airi-plugin-vision', { env: 'dev' }],
    ]
    const peers = new Map<string, RawPeer>()
    for (const [name, plugin, labels] of modules) {
      const peer = await RawPeer.connect(hub.url())
      await peer.join(name, { identity: { plugin, instanceId: `${name}-1`, labels } })
      peers.set(name, peer)
    }
    const page = await openDashboard(hub)
    await page.locator('#tab-explain').click()
    await page.locator('#explain-from').fill('discord-bot')
    await page.locator('#explain-type').fill('input:text')
    await page.locator('#explain-destinations').fill('["plugin:airi-plugin-tts"]')
    await page.locator('#explain-form button[type=submit]').click()
    await page.locator('.recipient-row').first().waitFor()
    const recipients = await page.locator('.recipient-row').allTextContents()
    expect(recipients).toHaveLength(1)
    expect(recipients[0]).toContain('tts-dev')
    const excluded = page.locator('.excluded-row', { hasText: 'tts-prod' })
    expect(await excluded.getAttribute('data-step')).toBe('policy')
    expect(await excluded.textContent()).toContain('policy denyLabels "env=prod"')
    expect(await page.locator('.excluded-row', { hasText: 'vision' }).getAttribute('data-step')).toBe('destinations')
    expect(await page.locator('.excluded-row', { hasText: 'discord-bot' }).getAttribute('data-step')).toBe('sender')
    await shot(page, 'explain')
    expect(peers.get('tts-dev')!.ofType('input:text')).toEqual([]) // explaining sends nothing

    // A pasted event, and a mistake said plainly.
    await page.locator('#explain-event').fill('{"type": "input:text", "route": {"destinations": ["label:env=prod"]}}')
    await page.locator('#explain-form button[type=submit]').click()
    await expect.poll(() => page.locator('.recipient-row').count()).toBe(0)
    await page.locator('#explain-from').fill('nobody')
    await page.locator('#explain-form button[type=submit]').click()
    await expect.poll(() => page.locator('#explain-error').textContent()).toBe('no peer or module "nobody" on any node')
  })

  it('stays responsive with 2000 modules: only the rows in sight are in the page, and filtering finds any of them', async () => {
    const hub = await startHub({ dashboard: { token: TOKEN }, limits: { maxModulesPerPeer: 200 } })
    const page = await openDashboard(hub)
    const peers = await Promise.all(Array.from({ length: 10 }, () => RawPeer.connect(hub.url())))
    for (const [p, peer] of peers.entries()) {
      for (let m = 0; m < 200; m++) {
        const name = `mod-${String(p * 200 + m).padStart(4, '0')}`
        peer.send({ type: 'extension:module:announce', data: { name, identity: { id: name, extension: { id: `plugin-${p}` }, labels: { shard: String(p) } } } })
      }
    }
    await until(() => hub.server.registry.size === 2000, '2000 modules', 20_000)
    await expect.poll(() => page.locator('#modules-count').textContent(), { timeout: 10_000 }).toBe('(2000)')
    expect(await page.locator('.mrow').count()).toBeLessThan(80)
    await page.locator('#viewport').evaluate((viewport) => {
      viewport.scrollTop = viewport.scrollHeight
    })
    await moduleRow(page, 'mod-1999').waitFor()
    await page.locator('#filter').fill('mod-1234')
    await expect.poll(() => page.locator('#modules-count').textContent()).toBe('(1 of 2000)')
    await moduleRow(page, 'mod-1234').waitFor()
    await page.locator('#filter').fill('')
    await shot(page, 'many-modules')
  }, 60_000)
})
