import type WebSocket from 'ws'
import type { DeltaEntry as Entry } from '../helpers/delta-view.ts'
import type { WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { metric } from '../helpers/cluster.ts'
import { isRegistry, names, viewOf } from '../helpers/delta-view.ts'
import { RawPeer, settle, startHub, upgradeStatus } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'

const TOKEN = 'secret'

interface Since { epoch: string, revision: number }

/** Connects and authenticates asking for `registry`; resolves with the reply. */
async function connect(url: string, registry?: Record<string, unknown>): Promise<{ peer: RawPeer, reply: WireEvent }> {
  const peer = await RawPeer.connect(url)
  peer.send({ type: 'module:authenticate', data: { token: TOKEN, registry } })
  return { peer, reply: await peer.waitForType('module:authenticated') }
}

/** An AIRI peer (no capability) that announced `name`. */
async function airiPeer(url: string, name: string, options?: WebSocket.ClientOptions): Promise<RawPeer> {
  const peer = await RawPeer.connect(url, options)
  await peer.join(name, { token: TOKEN })
  return peer
}

/** Waits until the peer's view lists exactly `expected` (names, sorted). */
function viewing(peer: RawPeer, expected: string[]): Promise<unknown> {
  return until(() => JSON.stringify(names(peer)) === JSON.stringify([...expected].sort()), `a view of [${expected}] (has [${names(peer)}])`)
}

describe('registry deltas (module:authenticate {registry: {mode: "delta"}})', () => {
  it('echoes the mode, starts with a full sync carrying epoch and revision, then one delta per turn', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    await airiPeer(hub.url(), 'first')
    const { peer, reply } = await connect(hub.url(), { mode: 'delta' })
    expect(reply.data).toEqual({ authenticated: true, registry: { mode: 'delta' } })
    const sync = await peer.waitForType('registry:modules:sync')
    expect(sync.data).toEqual({ epoch: expect.any(String), revision: expect.any(Number), modules: [{ peer: expect.any(String), name: 'first', identity: { plugin: 'first', instanceId: 'first-1', labels: {} }, healthy: true }] })

    // An extension peer's three modules in one frame batch, and gone with its socket: one turn each way.
    const extension = await RawPeer.connect(hub.url())
    extension.send({ type: 'extension:authenticate', data: { token: TOKEN, identity: { id: 'ext' } } })
    await extension.waitForType('extension:authenticated')
    const socket = (extension.ws as unknown as { _socket: { cork: () => void, uncork: () => void } })._socket
    socket.cork()
    for (const name of ['a', 'b', 'c'])
      extension.send({ type: 'extension:module:announce', data: { name, identity: { id: name, extension: { id: 'ext' } } } })
    socket.uncork()
    await viewing(peer, ['first', 'a', 'b', 'c'])
    expect(viewOf(peer).deltas).toHaveLength(1)
    const added = viewOf(peer).deltas[0]!.data
    expect(added.added.map((entry: Entry) => entry.name).sort()).toEqual(['a', 'b', 'c'])
    expect(added.added[0]).toEqual({ peer: expect.any(String), name: expect.any(String), identity: { id: added.added[0].name, extension: { id: 'ext' } }, healthy: true })
    expect(added.revision - added.from).toBe(3)

    await extension.close()
    await viewing(peer, ['first'])
    const deltas = viewOf(peer).deltas
    expect(deltas).toHaveLength(2)
    expect(deltas[1]!.data.removed).toHaveLength(3)
    expect(deltas[1]!.data.added).toEqual([])
  })

  it('sees its own module like any other, and health and removal of a silent peer', async () => {
    const hub = await startHub({ auth: { token: TOKEN }, heartbeat: { readTimeout: 400 } })
    const { peer } = await connect(hub.url(), { mode: 'delta' })
    const alive = setInterval(() => peer.send({ type: 'transport:connection:heartbeat', data: { kind: 'ping' } }), 100)
    try {
      peer.send({ type: 'module:announce', data: { name: 'watcher', identity: { plugin: 'watcher', instanceId: 'w' } } })
      await viewing(peer, ['watcher'])
      // A peer that does not answer the hub's pings falls silent.
      const silent = await airiPeer(hub.url(), 'silent', { autoPong: false })
      await viewing(peer, ['silent', 'watcher'])
      const silentKey = [...viewOf(peer).modules.keys()].find(key => key.includes('/silent/'))!
      await until(() => viewOf(peer).modules.get(silentKey)?.healthy === false, 'the silent module unhealthy')
      expect(viewOf(peer).deltas.some(delta => delta.data.health.some((change: { name: string, healthy: boolean }) => change.name === 'silent' && !change.healthy))).toBe(true)
      await silent.waitForClose()
      await viewing(peer, ['watcher'])
      expect(viewOf(peer).modules.get([...viewOf(peer).modules.keys()][0]!)!.healthy).toBe(true)
    }
    finally {
      clearInterval(alive)
    }
  })

  it('recovers by revision: only the gap when the log holds it, else the full registry', async () => {
    const hub = await startHub({ auth: { token: TOKEN }, limits: { registryLogEntries: 4 } })
    const stays = await airiPeer(hub.url(), 'stays')
    const leaves = await airiPeer(hub.url(), 'leaves')
    const first = await connect(hub.url(), { mode: 'delta' })
    await viewing(first.peer, ['stays', 'leaves'])
    const held = viewOf(first.peer)
    const since: Since = { epoch: held.epoch!, revision: held.revision }
    await first.peer.close()

    await leaves.close()
    const joins = await airiPeer(hub.url(), 'joins')
    await stays.waitFor(event => event.type === 'module:announced' && event.data.name === 'joins')
    const back = await connect(hub.url(), { mode: 'delta', since })
    const delta = await back.peer.waitForType('registry:modules:delta')
    expect(delta.data).toMatchObject({ epoch: since.epoch, from: since.revision, revision: since.revision + 2, removed: [{ name: 'leaves' }], added: [{ name: 'joins' }], health: [] })
    // The gap alone: the module that stayed is not sent again, and no full sync comes.
    await settle()
    expect(back.peer.ofType('registry:modules:sync')).toEqual([])
    expect([...viewOf(back.peer, held).modules.values()].map(entry => entry.name).sort()).toEqual(['joins', 'stays'])
    expect(await metric(hub, 'hub_registry_delta_syncs_total{kind="delta"}')).toBe(1)

    // Five more changes: revision `since` is older than the four the log keeps.
    for (let i = 0; i < 5; i++)
      await airiPeer(hub.url(), `more-${i}`)
    await joins.close()
    const late = await connect(hub.url(), { mode: 'delta', since })
    await viewing(late.peer, ['stays', ...Array.from({ length: 5 }, (_, i) => `more-${i}`)])
    expect(late.peer.ofType('registry:modules:sync')).toHaveLength(1)
    expect(late.peer.ofType('registry:modules:delta')).toEqual([])
    expect(await metric(hub, 'hub_registry_delta_syncs_total{kind="full"}')).toBe(2)
  })

  it('sends a full sync instead of a gap that would carry more than the registry holds', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const stays = await airiPeer(hub.url(), 'stays')
    const gone = await Promise.all(['a', 'b', 'c'].map(name => airiPeer(hub.url(), name)))
    const first = await connect(hub.url(), { mode: 'delta' })
    await viewing(first.peer, ['stays', 'a', 'b', 'c'])
    const held = viewOf(first.peer)
    await first.peer.close()

    await Promise.all(gone.map(peer => peer.close()))
    await until(() => stays.ofType('module:de-announced').length === 3, 'the three de-announced')
    // Three removals (half an entry each) against a registry of one: the registry is the smaller answer.
    const back = await connect(hub.url(), { mode: 'delta', since: { epoch: held.epoch!, revision: held.revision } })
    const sync = await back.peer.waitForType('registry:modules:sync')
    expect(sync.data.modules.map((entry: Entry) => entry.name)).toEqual(['stays'])
    await settle()
    expect(back.peer.ofType('registry:modules:delta')).toEqual([])
  })

  it('gives a full sync to a revision of another epoch (a restarted hub)', async () => {
    const before = await startHub({ auth: { token: TOKEN } })
    const old = await connect(before.url(), { mode: 'delta' })
    await old.peer.waitForType('registry:modules:sync')
    const since: Since = { epoch: viewOf(old.peer).epoch!, revision: viewOf(old.peer).revision }
    await before.close()

    const after = await startHub({ auth: { token: TOKEN } })
    await airiPeer(after.url(), 'fresh')
    const back = await connect(after.url(), { mode: 'delta', since })
    const sync = await back.peer.waitForType('registry:modules:sync')
    expect(sync.data.epoch).not.toBe(since.epoch)
    expect(sync.data.modules.map((entry: Entry) => entry.name)).toEqual(['fresh'])
    expect(back.peer.ofType('registry:modules:delta')).toEqual([])
  })

  it('tells modules of the same name apart by their peer', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const { peer } = await connect(hub.url(), { mode: 'delta' })
    const one = await airiPeer(hub.url(), 'twin')
    await airiPeer(hub.url(), 'twin')
    await viewing(peer, ['twin', 'twin'])
    await one.close()
    await viewing(peer, ['twin'])
  })

  it('leaves AIRI peers beside it with today\'s per-change events', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const airi = await airiPeer(hub.url(), 'airi')
    const { peer } = await connect(hub.url(), { mode: 'delta' })
    const other = await airiPeer(hub.url(), 'other')
    await other.close()
    await airi.waitFor(event => event.type === 'module:de-announced' && event.data.name === 'other')
    expect(airi.received.filter(isRegistry).map(event => [event.type, event.data.name ?? event.data.modules.map((m: { name: string }) => m.name).join()]))
      .toEqual([['registry:modules:sync', ''], ['registry:modules:sync', 'airi'], ['module:announced', 'other'], ['module:de-announced', 'other']])
    await viewing(peer, ['airi'])
  })

  it('refuses a malformed capability as an invalid event, naming the frame', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const peer = await RawPeer.connect(hub.url())
    const id = peer.send({ type: 'module:authenticate', data: { token: TOKEN, registry: { mode: 'some' } } })
    const error = await peer.waitForType('error')
    expect(error.data.message).toBe('invalid event format')
    expect(error.metadata?.event?.parentId).toBe(id)
    expect(peer.ofType('module:authenticated')).toEqual([])
  })
})

describe('registry opt-out (module:authenticate {registry: {mode: "none"}})', () => {
  it('gets no registry traffic at all, while routing to it works', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    await airiPeer(hub.url(), 'before')
    const { peer, reply } = await connect(hub.url(), { mode: 'none' })
    expect(reply.data).toEqual({ authenticated: true, registry: { mode: 'none' } })
    peer.send({ type: 'module:announce', data: { name: 'bot', identity: { plugin: 'bot', instanceId: 'bot-1' } } })
    const sender = await airiPeer(hub.url(), 'sender')
    await sender.waitFor(event => event.type === 'registry:modules:sync' && event.data.modules.some((m: { name: string }) => m.name === 'bot'))
    sender.send({ type: 'bot:hello', data: { hi: 1 }, route: { destinations: ['module:bot'] } })
    expect((await peer.waitForType('bot:hello')).data).toEqual({ hi: 1 })
    await sender.close()
    await settle()
    expect(peer.received.filter(isRegistry)).toEqual([])
  })
})

describe('the registry mode asked at the upgrade (/ws?registry=delta|none)', () => {
  it('admits a peer of a hub without auth in that mode: no AIRI sync, ever', async () => {
    const hub = await startHub()
    await airiPeer(hub.url(), 'first')
    const quiet = await RawPeer.connect(`${hub.url()}?registry=none`)
    const watching = await RawPeer.connect(`${hub.url()}?registry=delta`)
    expect((await quiet.waitForType('module:authenticated')).data).toEqual({ authenticated: true, registry: { mode: 'none' } })
    expect((await watching.waitForType('module:authenticated')).data).toEqual({ authenticated: true, registry: { mode: 'delta' } })
    await viewing(watching, ['first'])
    // An AIRI client that only changed its URL: it announces and is routed to as ever.
    quiet.send({ type: 'module:announce', data: { name: 'bot', identity: { plugin: 'bot', instanceId: 'bot-1' } } })
    await viewing(watching, ['bot', 'first'])
    watching.send({ type: 'bot:hello', data: {}, route: { destinations: ['module:bot'] } })
    await quiet.waitForType('bot:hello')
    await settle()
    expect(quiet.received.filter(isRegistry)).toEqual([])
  })

  it('holds the registry back until the in-band authentication asks to recover', async () => {
    const hub = await startHub()
    await airiPeer(hub.url(), 'stays')
    const first = await RawPeer.connect(`${hub.url()}?registry=delta`)
    await viewing(first, ['stays'])
    const held = viewOf(first)
    await first.close()
    await airiPeer(hub.url(), 'joins')

    // What our client does on reconnect: nothing of the registry at connect, then only the gap.
    const back = await RawPeer.connect(`${hub.url()}?registry=none`)
    await back.waitForType('module:authenticated')
    back.send({ type: 'module:authenticate', data: { registry: { mode: 'delta', since: { epoch: held.epoch, revision: held.revision } } } })
    await until(() => back.ofType('module:authenticated').length === 2 && viewOf(back, held).modules.size === 2, 'the recovered view')
    expect(back.received.filter(isRegistry).map(event => [event.type, event.data.from])).toEqual([['registry:modules:delta', held.revision]])
  })

  it('refuses another mode at the upgrade with 400', async () => {
    const hub = await startHub()
    expect(await upgradeStatus(`${hub.url()}?registry=all`)).toBe(400)
  })
})

describe('a delta peer naming revisions the log does not hold', () => {
  it('gets a full sync each time, and is logged once, however often it asks', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const lines: string[] = []
    hub.server.hub.options.logger.info = ((line: string) => { lines.push(line) }) as typeof hub.server.hub.options.logger.info
    await airiPeer(hub.url(), 'stays')
    const { peer } = await connect(hub.url(), { mode: 'delta' })
    const { epoch, revision } = (await peer.waitForType('registry:modules:sync')).data as Since
    // A revision of this epoch the hub never had, asked again and again (a reconnect loop, or on purpose).
    const since = { epoch, revision: revision + 1000 }
    for (let i = 0; i < 10; i++) {
      peer.send({ type: 'module:authenticate', data: { token: TOKEN, registry: { mode: 'delta', since } } })
      await until(() => peer.ofType('registry:modules:sync').length === i + 2, `full sync ${i + 2}`)
    }
    expect(await metric(hub, 'hub_registry_delta_syncs_total{kind="full"}')).toBe(11)
    expect(lines.filter(line => line.includes('which the log does not hold'))).toHaveLength(1)
  })
})
