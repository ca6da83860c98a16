import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { createMemoryBackplane, createMemoryBus } from '../../src/backplane/memory.ts'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/phoenix.ts'

// Frames as AIRI HEAD's `WebSocketExtensionPeer` (packages/server-sdk/src/extension-peer.ts)
// sends them with `handshake: 'manual'`: `peer:authenticate {token, peerId}`, then
// `extension:announce {identity, permissions}`, before (or without) any module; or
// `extension:authenticate {identity, token}`. Its client stamps a source the hub replaces.

const TOKEN = 'secret'
const game = { id: 'airi-plugin-game', version: '1.0.0', labels: { team: 'games', env: 'prod' } }

/** The self-claimed source `Client.createPayload` adds to every event. */
const claimed = { kind: 'plugin', id: 'whatever', plugin: { id: 'whatever' } }

/** `authenticatePeer({token, peerId})` then `announceExtension({permissions})`, waiting for each answer. */
async function extensionPeer(hub: RunningHub, peerId: string, extension = game): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url())
  peer.send({ type: 'peer:authenticate', data: { token: TOKEN, peerId }, metadata: { source: claimed } })
  await peer.waitForType('peer:authenticated')
  peer.send({ type: 'extension:announce', data: { identity: extension, permissions: { events: ['game:move'] } }, metadata: { source: claimed } })
  await peer.waitForType('extension:announced')
  return peer
}

/** A 0.8.4-style peer with one module. */
async function modulePeer(hub: RunningHub, name: string, labels: Record<string, string> = {}): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url())
  await peer.join(name, { token: TOKEN, identity: { plugin: name, instanceId: `${name}-1`, labels } })
  return peer
}

/** Sends one event per destination list and says which of `peers` got it; a ping answered after it closes the round. */
async function reached(sender: RawPeer, peers: Record<string, RawPeer>, destinations: unknown[]): Promise<string[]> {
  const type = `probe:${Math.random().toString(36).slice(2)}`
  sender.send({ type, data: {}, route: { destinations } } as WireEvent)
  const ping = sender.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } })
  await sender.waitFor(e => e.type === 'transport:connection:heartbeat' && e.metadata?.event?.parentId === ping)
  await settle()
  return Object.entries(peers).filter(([, peer]) => peer.ofType(type).length > 0).map(([name]) => name).sort()
}

describe('aIRI HEAD extension peer without modules', () => {
  it('is routed to by its extension\'s labels and id, by strings and expressions', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const ext = await extensionPeer(hub, 'game-peer')
    const prod = await modulePeer(hub, 'prod-bot', { env: 'prod' })
    const sender = await modulePeer(hub, 'sender')
    const peers = { ext, prod }

    expect(await reached(sender, peers, ['label:team=games'])).toEqual(['ext'])
    expect(await reached(sender, peers, ['label: env = prod '])).toEqual(['ext', 'prod'])
    expect(await reached(sender, peers, ['label:team'])).toEqual(['ext'])
    expect(await reached(sender, peers, ['plugin:airi-plugin-game'])).toEqual(['ext'])
    expect(await reached(sender, peers, ['airi-plugin-*'])).toEqual(['ext'])
    expect(await reached(sender, peers, [{ type: 'label', selectors: ['team=games', 'env=prod'] }])).toEqual(['ext'])
    expect(await reached(sender, peers, [{ type: 'plugin', plugins: ['airi-plugin-game'] }])).toEqual(['ext'])
    expect(await reached(sender, peers, [{ type: 'and', all: [{ type: 'label', selectors: ['env=prod'] }, { type: 'label', selectors: ['team'], inverted: true }] }])).toEqual(['prod'])
    // It has no module: module destinations never name it.
    expect(await reached(sender, peers, ['module:airi-plugin-game', { type: 'module', modules: ['airi-plugin-game'] }])).toEqual([])
  })

  it('takes its labels from extension:authenticate too, and is stamped as its extension when it sends', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const ext = await RawPeer.connect(hub.url())
    ext.send({ type: 'extension:authenticate', data: { identity: game, token: TOKEN }, metadata: { source: claimed } })
    expect((await ext.waitForType('extension:authenticated')).data).toEqual({ identity: game, authenticated: true })
    const head = await RawPeer.connect(hub.url())
    head.send({ type: 'peer:authenticate', data: { token: TOKEN } })
    await head.waitForType('peer:authenticated')
    const legacy = await modulePeer(hub, 'legacy')

    expect(await reached(legacy, { ext, head }, ['label:team=games'])).toEqual(['ext'])

    ext.send({ type: 'game:move', data: { to: 'e4' }, metadata: { source: claimed } })
    const seen = await head.waitForType('game:move')
    // stage-ui names it `${source.extension.id}:${source.id}`: the extension, and the peer.
    expect(seen.metadata?.source).toMatchObject({ extension: { id: game.id, version: game.version }, plugin: { id: game.id }, labels: game.labels, kind: 'plugin' })
    expect(seen.metadata?.source.id).toBe(seen.metadata?.source.instanceId)
    expect(seen.metadata?.source.id).not.toBe('whatever')
    expect((await legacy.waitForType('game:move')).metadata?.source).toMatchObject({ plugin: game.id, labels: game.labels })
  })

  it('meets the routing policy by its extension\'s labels and id', async () => {
    const hub = await startHub({ auth: { token: TOKEN }, routing: { policy: { allowLabels: ['team=games'], denyPlugins: ['airi-plugin-blocked'] } } })
    const ext = await extensionPeer(hub, 'game-peer')
    const blocked = await extensionPeer(hub, 'blocked-peer', { ...game, id: 'airi-plugin-blocked' })
    const bare = await RawPeer.connect(hub.url())
    bare.send({ type: 'peer:authenticate', data: { token: TOKEN, peerId: 'bare-peer' } })
    await bare.waitForType('peer:authenticated')
    const sender = await modulePeer(hub, 'sender')

    expect(await reached(sender, { ext, blocked, bare }, ['*'])).toEqual(['ext'])
  })

  it('goes by its modules once it has them', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const ext = await extensionPeer(hub, 'game-peer')
    const sender = await modulePeer(hub, 'sender')
    const chess = { name: 'chess', identity: { id: 'chess-1', extension: { id: game.id }, labels: { board: 'chess' } } }
    ext.send({ type: 'extension:module:announce', data: chess })
    await ext.waitForType('extension:module:announced')

    // The module announced an extension without labels: the extension's own no longer apply.
    expect(await reached(sender, { ext }, ['label:team=games'])).toEqual([])
    expect(await reached(sender, { ext }, ['label:board=chess'])).toEqual(['ext'])
    expect(await reached(sender, { ext }, ['instance:game-peer'])).toEqual([])
    ext.send({ type: 'game:move', data: {} })
    expect((await sender.waitForType('game:move')).metadata?.source).toMatchObject({ plugin: game.id, instanceId: 'chess-1' })
  })
})

describe('aliases inside ids expressions', () => {
  it('match when nested in and/or and when inverted, for peers with and without modules', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    // Two HEAD peers with a module each, aliased by peer:authenticate; one aliased peer with no module.
    const headWithModule = async (peerId: string): Promise<RawPeer> => {
      const peer = await RawPeer.connect(hub.url())
      peer.send({ type: 'peer:authenticate', data: { token: TOKEN, peerId } })
      await peer.waitForType('peer:authenticated')
      peer.send({ type: 'extension:module:announce', data: { name: peerId, identity: { id: `${peerId}-1`, extension: { id: 'bots' }, labels: { env: 'prod' } } } })
      await peer.waitForType('extension:module:announced')
      return peer
    }
    const alpha = await headWithModule('alpha')
    const beta = await headWithModule('beta')
    const gamma = await RawPeer.connect(hub.url())
    gamma.send({ type: 'peer:authenticate', data: { token: TOKEN, peerId: 'gamma' } })
    await gamma.waitForType('peer:authenticated')
    const sender = await modulePeer(hub, 'sender')
    const peers = { alpha, beta, gamma }

    expect(await reached(sender, peers, [{ type: 'ids', ids: ['alpha', 'gamma'] }])).toEqual(['alpha', 'gamma'])
    expect(await reached(sender, peers, [{ type: 'or', any: [{ type: 'ids', ids: ['alpha'] }, { type: 'ids', ids: ['gamma'] }] }])).toEqual(['alpha', 'gamma'])
    expect(await reached(sender, peers, [{ type: 'and', all: [{ type: 'label', selectors: ['env=prod'] }, { type: 'ids', ids: ['alpha'], inverted: true }] }])).toEqual(['beta'])
    expect(await reached(sender, peers, [{ type: 'and', all: [{ type: 'ids', ids: ['beta', 'gamma'] }, { type: 'or', any: [{ type: 'ids', ids: ['gamma'], inverted: true }] }] }])).toEqual(['beta'])
  })

  it('match peers of another hub node, and a remote extension peer by its labels', async () => {
    const bus = createMemoryBus()
    const cluster = { prefix: 'airi-ext', nodeTimeoutMs: 600, heartbeatMs: 50 }
    const a = await startHub({ auth: { token: TOKEN }, backplane: createMemoryBackplane(bus), cluster })
    const b = await startHub({ auth: { token: TOKEN }, backplane: createMemoryBackplane(bus), cluster })
    await until(() => a.server.hub.cluster!.nodes().length === 1 && b.server.hub.cluster!.nodes().length === 1, 'the nodes to know each other')

    const ext = await extensionPeer(a, 'game-peer')
    const other = await modulePeer(a, 'other', { env: 'prod' })
    const sender = await modulePeer(b, 'sender')
    await until(() => b.server.registry.size === 2, 'node b to list node a\'s module')

    // The extension's identity came after the peer's first state: it travels as a change of it.
    const send = (type: string, destinations: unknown[]): string => sender.send({ type, data: {}, route: { destinations } } as WireEvent)
    send('by-label', ['label:team=games'])
    await ext.waitForType('by-label')
    send('prod-but-alias', [{ type: 'and', all: [{ type: 'label', selectors: ['env=prod'] }, { type: 'ids', ids: ['game-peer'], inverted: true }] }])
    await other.waitForType('prod-but-alias')
    send('nested-alias', [{ type: 'or', any: [{ type: 'ids', ids: ['game-peer'] }] }])
    await ext.waitForType('nested-alias')
    await settle()
    expect([ext.ofType('prod-but-alias'), other.ofType('by-label'), other.ofType('nested-alias')]).toEqual([[], [], []])
  })
})
