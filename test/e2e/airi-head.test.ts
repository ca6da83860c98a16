import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'
import { sdkClient, syncListing } from '../helpers/sdk.ts'

// Frames as AIRI's HEAD SDK (`packages/server-sdk`, not on npm) sends them: `createPayload`
// stamps every event with the client's own idea of its source, which the hub ignores.

const TOKEN = 'secret'

interface HeadModule {
  name: string
  identity: { id: string, extension: { id: string, labels?: Record<string, string> }, labels?: Record<string, string> }
}

/** A HEAD-SDK frame: its self-claimed source as `Client.createPayload` builds it. */
function headSend(peer: RawPeer, module: HeadModule, event: Omit<WireEvent, 'metadata'>): string {
  return peer.send({ ...event, metadata: { source: { kind: 'plugin', ...module.identity, plugin: { id: module.identity.extension.id } } } })
}

/** `Client.connect()` with `handshake: 'module'`: authenticate (with a token), announce, wait until its own module is confirmed. */
async function headConnect(hub: RunningHub, module: HeadModule, token?: string): Promise<{ peer: RawPeer, announceId: string }> {
  const peer = await RawPeer.connect(hub.url())
  if (token !== undefined) {
    headSend(peer, module, { type: 'module:authenticate', data: { token } })
    await peer.waitFor(e => e.type === 'module:authenticated' && e.data.authenticated === true)
  }
  const announceId = headSend(peer, module, {
    type: 'extension:module:announce',
    data: { name: module.name, identity: module.identity, possibleEvents: ['input:text'], configSchema: undefined, dependencies: [] },
  })
  // `consumePrepareMessage`: ready on its own `extension:module:announced`, or a sync naming it by name and identity.id.
  await peer.waitFor(e => (e.type === 'extension:module:announced' && e.data.name === module.name && e.data.identity?.id === module.identity.id)
    || (e.type === 'registry:modules:sync' && e.data.modules.some((m: HeadModule) => m.name === module.name && m.identity?.id === module.identity.id)))
  return { peer, announceId }
}

const stage: HeadModule = { name: 'stage-web', identity: { id: 'stage-1', extension: { id: 'proj-airi:stage-web' } } }
function headSource(module: HeadModule, labels: Record<string, string> = {}): Record<string, unknown> {
  return {
    id: module.identity.id,
    instanceId: module.identity.id,
    kind: 'plugin',
    plugin: { id: module.identity.extension.id },
    extension: module.identity.extension,
    labels,
  }
}

describe('aIRI HEAD client (extension generation)', () => {
  it('is confirmed after its announce: the announce echoed, and a sync naming it by name and identity.id', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const legacy = await RawPeer.connect(hub.url())
    await legacy.join('legacy', { token: TOKEN })
    const { peer, announceId } = await headConnect(hub, stage, TOKEN)

    const echo = await peer.waitForType('extension:module:announced')
    expect(echo.metadata?.event?.parentId).toBe(announceId)
    expect(echo.data).toEqual({ name: 'stage-web', identity: stage.identity, possibleEvents: ['input:text'], dependencies: [] })
    const sync = await peer.waitFor(e => e.type === 'registry:modules:sync' && e.data.modules.length === 2)
    expect(sync.data.modules).toContainEqual({ name: 'stage-web', identity: stage.identity })
    expect(sync.data.modules).toContainEqual({ name: 'legacy', identity: { plugin: 'legacy', instanceId: 'legacy-1', labels: {} } })

    // The 0.8.4 peer sees what it always saw: module:announced with a flat identity (and the HEAD name beside it).
    const announced = await legacy.waitFor(e => e.type === 'module:announced' && e.data.name === 'stage-web')
    expect(announced.data).toEqual({ name: 'stage-web', identity: { plugin: 'proj-airi:stage-web', instanceId: 'stage-1', labels: {} } })
    expect((await legacy.waitForType('extension:module:announced')).data.identity).toEqual({ plugin: 'proj-airi:stage-web', instanceId: 'stage-1', labels: {} })

    // Re-handshaking (a reconnect, a lost confirmation) is confirmed again and changes nothing for the others.
    const again = headSend(peer, stage, { type: 'extension:module:announce', data: { name: stage.name, identity: stage.identity } })
    await peer.waitFor(e => e.type === 'extension:module:announced' && e.metadata?.event?.parentId === again)
    await settle()
    expect(legacy.ofType('module:announced')).toHaveLength(1)
    expect(hub.server.registry.size).toBe(2)
  })

  it('announces HEAD modules to HEAD peers under both names with the identity as announced, and stamps a source stage-ui can label', async () => {
    const hub = await startHub()
    const { peer: watcher } = await headConnect(hub, stage)
    const plugin: HeadModule = { name: 'minecraft', identity: { id: 'mc-1', extension: { id: 'airi-plugin-minecraft', labels: { game: 'mc' } }, labels: { env: 'prod' } } }
    const { peer: bot } = await headConnect(hub, plugin)
    for (const type of ['extension:module:announced', 'module:announced']) {
      const event = await watcher.waitFor(e => e.type === type && e.data.name === 'minecraft')
      expect(event.data).toEqual({ name: 'minecraft', identity: plugin.identity })
    }
    // A trimmed label selector finds it.
    headSend(watcher, stage, { type: 'spark:command', data: { go: 1 }, route: { destinations: ['label: env = prod '] } } as WireEvent)
    const got = await bot.waitForType('spark:command')
    expect(got.metadata?.source).toEqual(headSource(stage))
    headSend(bot, plugin, { type: 'context:update', data: { text: 'mined' } })
    const update = await watcher.waitForType('context:update')
    const source = update.metadata!.source
    expect(source).toEqual(headSource(plugin, { game: 'mc', env: 'prod' }))
    expect(`${source.extension.id}:${source.id}`).toBe('airi-plugin-minecraft:mc-1') // stage-ui's getMetadataSourceLabel

    await bot.close()
    for (const type of ['extension:module:de-announced', 'module:de-announced']) {
      const event = await watcher.waitForType(type)
      expect(event.data).toEqual({ name: 'minecraft', identity: plugin.identity, reason: 'connection closed' })
    }
  })

  it('replays the manual extension-peer handshake: peer:authenticate, extension:announce, several modules on one socket', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const other = await RawPeer.connect(hub.url())
    await other.join('other', { token: TOKEN })
    const otherHead = (await headConnect(hub, stage, TOKEN)).peer
    const ext = await RawPeer.connect(hub.url())
    const extension = { id: 'airi-plugin-game' }
    const self: HeadModule = { name: extension.id, identity: { id: 'ext-client', extension } }

    const authId = headSend(ext, self, { type: 'peer:authenticate', data: { token: TOKEN, peerId: 'game-peer' } })
    const authenticated = await ext.waitForType('peer:authenticated')
    expect(authenticated.data).toEqual({ authenticated: true, peerId: 'game-peer' })
    expect(authenticated.metadata?.event?.parentId).toBe(authId)
    await ext.waitForType('registry:modules:sync')

    const announceId = headSend(ext, self, { type: 'extension:announce', data: { identity: extension, permissions: { events: ['input:text'] } } })
    const announced = await ext.waitForType('extension:announced')
    expect(announced.data).toEqual({ identity: extension, permissions: { events: ['input:text'] } })
    expect(announced.metadata?.event?.parentId).toBe(announceId)
    for (const peer of [other, otherHead]) {
      const seen = await peer.waitForType('extension:announced')
      expect(seen.data.identity).toEqual(extension)
      expect(seen.metadata?.source?.plugin).toBe('hub-server') // the hub's event, not a relayed one
    }

    // Before it announces modules, the peer is named by its alias and its extension.
    headSend(ext, self, { type: 'hello', data: {}, route: { destinations: ['module:stage-web'] } } as WireEvent)
    const hello = await otherHead.waitForType('hello')
    expect([hello.metadata?.source.id, hello.metadata?.source.extension.id]).toEqual(['game-peer', extension.id])

    const modules: HeadModule[] = ['chess', 'go', 'poker'].map(name => ({ name, identity: { id: `${name}-1`, extension, labels: { game: name } } }))
    for (const module of modules) {
      const id = headSend(ext, self, { type: 'extension:module:announce', data: { name: module.name, identity: module.identity, possibleEvents: [] } })
      await ext.waitFor(e => e.type === 'extension:module:announced' && e.metadata?.event?.parentId === id)
    }
    await until(() => hub.server.registry.size === 5, 'three modules of one socket in the registry')
    const sync = await ext.waitFor(e => e.type === 'registry:modules:sync' && e.data.modules.length === 5)
    for (const module of modules)
      expect(sync.data.modules).toContainEqual({ name: module.name, identity: module.identity })

    // Re-announcing one name replaces that module only.
    const go2 = { ...modules[1]!, identity: { ...modules[1]!.identity, labels: { game: 'go', level: 'pro' } } }
    headSend(ext, self, { type: 'extension:module:announce', data: { name: 'go', identity: go2.identity } })
    const replaced = await otherHead.waitForType('extension:module:de-announced')
    expect(replaced.data).toEqual({ name: 'go', identity: modules[1]!.identity, reason: 're-announcing' })
    await otherHead.waitFor(e => e.type === 'extension:module:announced' && e.data.name === 'go')
    expect(otherHead.ofType('extension:module:de-announced')).toHaveLength(1)
    expect(hub.server.registry.size).toBe(5)

    // The alias routes (peer:<id> and ids), and the peer picks which of its own modules sends.
    other.send({ type: 'move', data: { n: 1 }, route: { destinations: ['peer:game-peer'] } })
    other.send({ type: 'move', data: { n: 2 }, route: { destinations: [{ type: 'ids', ids: ['game-peer'] }] } })
    await ext.waitFor(e => e.type === 'move' && e.data.n === 2)
    expect(ext.ofType('move').map(e => e.data.n)).toEqual([1, 2])
    headSend(ext, modules[2]!, { type: 'deal', data: {}, route: { destinations: ['module:other'] } } as WireEvent)
    expect((await other.waitForType('deal')).metadata?.source).toEqual({ plugin: 'airi-plugin-game', instanceId: 'poker-1', labels: { game: 'poker' } })

    await ext.close()
    const gone = await otherHead.waitFor(() => otherHead.ofType('extension:module:de-announced').length === 4)
    expect(gone).toBeDefined()
    expect(otherHead.ofType('extension:module:de-announced').slice(1).map(e => [e.data.name, e.data.reason]).sort())
      .toEqual([['chess', 'connection closed'], ['go', 'connection closed'], ['poker', 'connection closed']])
    expect(other.ofType('module:de-announced').map(e => e.data.name).sort()).toEqual(['chess', 'go', 'go', 'poker'])
    expect(hub.server.registry.size).toBe(2)
  })

  it('tells the health of every module of a silent multi-module peer, each identity as announced', async () => {
    const hub = await startHub({ heartbeat: { readTimeout: 200 } })
    const { peer: watcher } = await headConnect(hub, stage)
    const legacy = await RawPeer.connect(hub.url())
    await legacy.join('legacy')
    // A peer that does not answer the hub's pings falls silent.
    const quiet = await RawPeer.connect(hub.url(), { autoPong: false })
    const modules: HeadModule[] = ['left', 'right'].map(name => ({ name, identity: { id: `${name}-1`, extension: { id: 'airi-plugin-hands' } } }))
    for (const module of modules)
      quiet.send({ type: 'extension:module:announce', data: { name: module.name, identity: module.identity } })
    await watcher.waitFor(() => watcher.ofType('registry:modules:health:unhealthy').length === 2)
    for (const module of modules) {
      const unhealthy = watcher.ofType('registry:modules:health:unhealthy').find(e => e.data.name === module.name)!
      expect(unhealthy.data).toEqual({ name: module.name, identity: module.identity, reason: 'heartbeat late' })
    }
    await legacy.waitFor(() => legacy.ofType('registry:modules:health:unhealthy').length === 2)
    expect(legacy.ofType('registry:modules:health:unhealthy').map(e => e.data.identity.plugin)).toEqual(['airi-plugin-hands', 'airi-plugin-hands'])
    quiet.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping', message: 'back' } })
    await watcher.waitFor(() => watcher.ofType('registry:modules:health:healthy').length === 2)
    expect(watcher.ofType('registry:modules:health:healthy').map(e => e.data.identity)).toEqual(modules.map(m => m.identity))
  })

  it('answers extension:authenticate with extension:authenticated, then a sync', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const peer = await RawPeer.connect(hub.url())
    const identity = { id: 'airi-plugin-x', labels: { tier: 'gold' } }
    const id = peer.send({ type: 'extension:authenticate', data: { identity, token: TOKEN } })
    const reply = await peer.waitForType('extension:authenticated')
    expect(reply.data).toEqual({ identity, authenticated: true })
    expect(reply.metadata?.event?.parentId).toBe(id)
    await peer.waitForType('registry:modules:sync')
    expect(peer.ofType('module:authenticated')).toHaveLength(0)
    peer.send({ type: 'extension:authenticate', data: { identity, token: 'wrong' } })
    expect((await peer.waitForType('error')).data).toEqual({ message: 'invalid token' })
  })

  it('refuses an alias that is another peer\'s id, and a module past the per-peer limit', async () => {
    const hub = await startHub({ limits: { maxModulesPerPeer: 2 } })
    const victim = await RawPeer.connect(hub.url())
    await victim.join('victim')
    const victimId = [...hub.server.registry.entries()][0]!.peerId
    const peer = await RawPeer.connect(hub.url())
    const id = peer.send({ type: 'peer:authenticate', data: { peerId: victimId } })
    const error = await peer.waitFor(e => e.type === 'error' && e.metadata?.event?.parentId === id)
    expect(error.data).toEqual({ message: 'reserved identity' })
    expect(peer.ofType('peer:authenticated')).toHaveLength(0)

    for (const name of ['a', 'b', 'c'])
      peer.send({ type: 'extension:module:announce', data: { name, identity: { id: name, extension: { id: 'x' } } } })
    await peer.waitFor(e => e.type === 'error' && e.data.message === 'limit exceeded: modules per peer')
    expect(peer.ofType('extension:module:announced').map(e => e.data.name)).toEqual(['a', 'b'])
  })

  it('configures a module named by its identity (ui:configure without moduleName)', async () => {
    const hub = await startHub()
    const { peer: ui } = await headConnect(hub, stage)
    const worker: HeadModule = { name: 'worker', identity: { id: 'worker-7', extension: { id: 'airi-plugin-worker' } } }
    const { peer } = await headConnect(hub, worker)
    const id = headSend(ui, stage, { type: 'ui:configure', data: { identity: worker.identity, config: { speed: 2 } } })
    const configure = await peer.waitForType('module:configure')
    expect(configure.data).toEqual({ config: { speed: 2 } })
    expect(configure.metadata?.event?.parentId).toBe(id)
    headSend(ui, stage, { type: 'ui:configure', data: { identity: { id: 'nobody', extension: { id: 'x' } }, config: {} } })
    expect((await ui.waitForType('error')).data.message).toMatch(/module not found/)
    headSend(ui, stage, { type: 'ui:configure', data: { config: {} } })
    await ui.waitFor(e => e.type === 'error' && e.data.message === 'invalid event format')
  })
})

describe('three AIRI generations on one hub', () => {
  it('see each other, route to each other and read each other\'s sources', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const old = sdkClient(hub.url(), 'old', { token: TOKEN }) // @proj-airi/server-sdk@0.8.4
    await old.waitFor(syncListing(['old']))
    const nested = await RawPeer.connect(hub.url())
    const nestedIdentity = { id: 'v9-1', kind: 'plugin', plugin: { id: 'v9-plugin', version: '0.9.0' }, labels: { gen: 'v9' } }
    await nested.join('v9', { token: TOKEN, identity: nestedIdentity })
    const head: HeadModule = { name: 'head', identity: { id: 'head-1', extension: { id: 'head-ext' }, labels: { gen: 'head' } } }
    const { peer: headPeer } = await headConnect(hub, head, TOKEN)
    await old.waitFor(e => e.type === 'module:announced' && e.data.name === 'v9')

    // Identities: 0.8.4 sees every module flat; later generations see each as announced.
    const oldView = (await old.waitFor(e => e.type === 'module:announced' && e.data.name === 'head')).data.identity
    expect(oldView).toEqual({ plugin: 'head-ext', instanceId: 'head-1', labels: { gen: 'head' } })
    const headSync = await headPeer.waitFor(e => e.type === 'registry:modules:sync' && e.data.modules.length === 3)
    expect(headSync.data.modules).toEqual(expect.arrayContaining([
      { name: 'old', identity: { plugin: 'old', instanceId: 'old-instance', labels: {} } },
      { name: 'v9', identity: nestedIdentity },
      { name: 'head', identity: head.identity },
    ]))

    old.client.send({ type: 'chat', data: { from: 'old' }, route: { destinations: ['plugin:head-ext', 'label:gen=v9'] } } as never)
    nested.send({ type: 'chat', data: { from: 'v9' }, route: { destinations: ['module:old', 'instance:head-1'] } })
    headSend(headPeer, head, { type: 'chat', data: { from: 'head' }, route: { destinations: ['old', 'v9-plugin'] } } as WireEvent)

    const fromTo = async (peer: { waitFor: RawPeer['waitFor'] }, from: string): Promise<Record<string, any>> =>
      (await peer.waitFor(e => e.type === 'chat' && e.data.from === from)).metadata!.source
    // 0.8.4 reads plugin + instanceId.
    expect(await fromTo(old, 'v9')).toEqual({ plugin: 'v9-plugin', instanceId: 'v9-1', version: '0.9.0', labels: { gen: 'v9' } })
    expect(await fromTo(old, 'head')).toEqual({ plugin: 'head-ext', instanceId: 'head-1', labels: { gen: 'head' } })
    // v0.9 reads id + plugin.id.
    const oldForV9 = await fromTo(nested, 'old')
    expect([oldForV9.id, oldForV9.plugin.id]).toEqual(['old-instance', 'old'])
    const headForV9 = await fromTo(nested, 'head')
    expect([headForV9.id, headForV9.plugin.id]).toEqual(['head-1', 'head-ext'])
    // HEAD reads id + extension.id.
    const oldForHead = await fromTo(headPeer, 'old')
    expect(`${oldForHead.extension.id}:${oldForHead.id}`).toBe('old:old-instance')
    const v9ForHead = await fromTo(headPeer, 'v9')
    expect(v9ForHead).toEqual({ ...nestedIdentity, instanceId: 'v9-1', extension: { id: 'v9-plugin', version: '0.9.0' } })
  })
})

describe('aIRI HEAD peers across hub nodes', () => {
  it('carries every module of a multi-module peer, its alias and its identities to the other node', async () => {
    const bus = createMemoryBus()
    const cluster = { prefix: 'airi-head', nodeTimeoutMs: 600, heartbeatMs: 50 }
    const a = await startHub({ backplane: createMemoryBackplane(bus), cluster })
    const b = await startHub({ backplane: createMemoryBackplane(bus), cluster })
    await until(() => a.server.hub.cluster!.nodes().length === 1 && b.server.hub.cluster!.nodes().length === 1, 'the nodes to know each other')
    const { peer: watcher } = await headConnect(b, stage)
    const legacy = await RawPeer.connect(b.url())
    await legacy.join('legacy')

    const ext = await RawPeer.connect(a.url())
    const extension = { id: 'airi-plugin-discord' }
    ext.send({ type: 'peer:authenticate', data: { peerId: 'discord-peer' } })
    await ext.waitForType('peer:authenticated')
    const modules: HeadModule[] = ['voice', 'text'].map(name => ({ name, identity: { id: `${name}-1`, extension } }))
    for (const module of modules)
      ext.send({ type: 'extension:module:announce', data: { name: module.name, identity: module.identity } })
    await until(() => b.server.registry.size === 4, 'node b to list both modules')
    for (const module of modules)
      expect((await watcher.waitFor(e => e.type === 'extension:module:announced' && e.data.name === module.name)).data.identity).toEqual(module.identity)
    const late = await RawPeer.connect(b.url())
    late.send({ type: 'peer:authenticate', data: {} })
    // Auth is off: the sync sent at the upgrade is in 0.8.4 form, the one answering the handshake in HEAD form.
    await late.waitForType('peer:authenticated')
    const sync = await late.waitFor(e => e.type === 'registry:modules:sync' && late.received.indexOf(e) > late.received.findIndex(f => f.type === 'peer:authenticated'))
    expect(sync.data.modules).toEqual(expect.arrayContaining(modules.map(m => ({ name: m.name, identity: m.identity }))))

    legacy.send({ type: 'ping:discord', data: {}, route: { destinations: ['peer:discord-peer'] } })
    await ext.waitForType('ping:discord')
    headSend(ext, modules[1]!, { type: 'message', data: { text: 'hi' }, route: { destinations: ['module:stage-web', 'module:legacy'] } } as WireEvent)
    expect((await watcher.waitForType('message')).metadata?.source).toEqual(headSource(modules[1]!))
    expect((await legacy.waitForType('message')).metadata?.source).toEqual({ plugin: 'airi-plugin-discord', instanceId: 'text-1', labels: {} })

    await ext.close()
    await until(() => b.server.registry.size === 2, 'node b to drop both modules')
    // The registry changes before the feed's frames reach the watcher's socket.
    await until(() => watcher.ofType('extension:module:de-announced').length === 2, 'the watcher to hear both de-announced')
    expect(watcher.ofType('extension:module:de-announced').map(e => e.data.name).sort()).toEqual(['text', 'voice'])
  })
})
