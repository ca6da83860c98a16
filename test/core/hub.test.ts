import type { Destination } from '../../src/types.ts'
import type { FakePeer } from '../helpers/fake-connection.ts'
import { describe, expect, it, vi } from 'vitest'
import { HubError } from '../../src/errors.ts'
import { connectPeer, identityOf, joinPeer, nextTurn, useSocketFreeHubs } from '../helpers/fake-connection.ts'

// Socket-free: each hub is driven through its public interface by fake connections.
const hubOf = useSocketFreeHubs()

/** What a refusal tells the gateway: its code and message (`undefined` when the call was taken). */
const refusalOf = (error: HubError | undefined): { code: string, message: string } | undefined => error && { code: error.code, message: error.message }

const namesIn = (peer: FakePeer, type: string): unknown[] => peer.connection.ofType(type).map(event => event.data.name)

describe('authentication', () => {
  it('admits every peer at once when no token is configured, then sends it the registry', async () => {
    const hub = hubOf()
    const peer = connectPeer(hub)
    expect(peer.session.authenticated).toBe(true)
    expect(peer.connection.ofType('module:authenticated').map(event => event.data)).toEqual([{ authenticated: true }])
    await nextTurn()
    expect(peer.connection.ofType('registry:modules:sync').map(event => event.data)).toEqual([{ modules: [] }])
  })

  it('answers a bad token with the refusal, and a good one with module:authenticated', () => {
    const hub = hubOf({ auth: { token: 'secret' } })
    const peer = connectPeer(hub)
    expect(peer.connection.events).toEqual([])

    expect(refusalOf(hub.authenticate(peer.session, 'wrong', 'a1'))).toEqual({ code: 'invalid_token', message: 'invalid token' })
    // The core writes no error frame: the gateway maps the refusal to its own.
    expect(peer.connection.events).toEqual([])
    expect(peer.connection.failures).toEqual([])
    expect(peer.session.authenticated).toBe(false)

    expect(hub.authenticate(peer.session, 'secret', 'a2')).toBeUndefined()
    const [authenticated] = peer.connection.ofType('module:authenticated')
    expect(authenticated?.data).toEqual({ authenticated: true })
    expect(authenticated?.metadata?.event?.parentId).toBe('a2')
    expect(peer.connection.closes).toEqual([])
  })

  it('admits a peer whose token came with the upgrade without asking again', () => {
    const hub = hubOf({ auth: { token: 'secret' } })
    expect(connectPeer(hub, { token: 'secret' }).session.authenticated).toBe(true)
    const wrong = connectPeer(hub, { token: 'wrong' })
    expect(wrong.session.authenticated).toBe(false)
    // A wrong token at the upgrade is not yet a failure: the peer may still authenticate.
    expect(wrong.connection.events).toEqual([])
  })

  it('closes a peer with 4001 after maxFailures bad tokens, telling it why first, and forgets it', () => {
    const hub = hubOf({ auth: { token: 'secret', maxFailures: 2 } })
    const peer = connectPeer(hub)
    expect(hub.authenticate(peer.session, 'wrong-1', 'a1')?.code).toBe('invalid_token')
    expect(peer.connection.closes).toEqual([])
    expect(peer.connection.failures).toEqual([])
    expect(hub.authenticate(peer.session, 'wrong-2', 'a2')?.code).toBe('invalid_token')
    expect(peer.connection.closes).toEqual([{ code: 4001, reason: 'authentication failed' }])
    // The last refusal closes the peer: the core fails it on the connection before the close.
    expect(peer.connection.failures).toEqual([{ code: 'invalid_token', message: 'invalid token', parentId: 'a2' }])
    expect(peer.session.state).toBe('closed')
    expect(hub.peers.has(peer.session.id)).toBe(false)
  })

  it('refuses what a peer sends before it authenticated', () => {
    const hub = hubOf({ auth: { token: 'secret' } })
    const listener = connectPeer(hub, { token: 'secret' })
    const peer = connectPeer(hub)
    const notAuthenticated = { code: 'not_authenticated', message: 'not authenticated' }
    expect(refusalOf(hub.announce(peer.session, { name: 'early', identity: identityOf('early') }))).toEqual(notAuthenticated)
    expect(refusalOf(hub.publish(peer.session, { type: 'hello', data: {}, metadata: { event: { id: 'p1' } } }) as HubError)).toEqual(notAuthenticated)
    expect(refusalOf(hub.registerConsumer(peer.session, { event: 'hello' }))).toEqual(notAuthenticated)
    expect(refusalOf(hub.configure(peer.session, { moduleName: 'x', config: {} }))).toEqual(notAuthenticated)
    expect(peer.connection.events).toEqual([])
    expect(hub.registry.size).toBe(0)
    expect(listener.connection.ofType('hello')).toEqual([])
  })

  it('closes a peer still pending at the authentication deadline with 4001, and only that one', () => {
    vi.useFakeTimers()
    // Timers start when the hub starts serving (its first peer): fake time must be installed by then.
    const hub = hubOf({ auth: { token: 'secret', timeoutMs: 1000 } })
    const pending = connectPeer(hub)
    const admitted = connectPeer(hub)
    hub.authenticate(admitted.session, 'secret')

    vi.advanceTimersByTime(999)
    expect(pending.connection.closes).toEqual([])
    // The deadline is checked by the liveness sweep (every half of it): closed by then.
    vi.advanceTimersByTime(500)
    expect(pending.connection.closes).toEqual([{ code: 4001, reason: 'authentication failed' }])
    expect(hub.peers.has(pending.session.id)).toBe(false)
    expect(admitted.connection.closes).toEqual([])
    expect(hub.peers.has(admitted.session.id)).toBe(true)
  })
})

describe('refusals', () => {
  it('counts every refusal once, the core\'s own and those a gateway makes, and writes no frame for either', () => {
    const hub = hubOf({ auth: { token: 'secret' } })
    const counted: string[] = []
    hub.observers.on('error', reason => counted.push(reason))
    const peer = connectPeer(hub)
    hub.authenticate(peer.session, 'wrong')
    hub.publish(peer.session, { type: 'hello', data: {} })
    const own = new HubError('rate_limited', 'rate limited')
    expect(hub.refuse(peer.session, own)).toBe(own)
    expect(counted).toEqual(['invalid_token', 'not_authenticated', 'rate_limited'])
    expect(peer.connection.events).toEqual([])
    expect(peer.connection.failures).toEqual([])
  })
})

describe('announce and the registry feed', () => {
  it('lists a module in the registry, syncs its peer, and tells the others once', async () => {
    const hub = hubOf()
    const watcher = connectPeer(hub)
    const worker = joinPeer(hub, 'worker', { labels: { env: 'prod' } })
    await nextTurn()

    expect([...hub.registry.entries()].map(entry => [entry.name, entry.peerId])).toEqual([['worker', worker.session.id]])
    const [sync] = worker.connection.ofType('registry:modules:sync')
    expect(sync?.data).toEqual({ modules: [{ name: 'worker', identity: { plugin: 'worker', instanceId: 'worker-1', labels: { env: 'prod' } } }] })
    expect(watcher.connection.ofType('module:announced').map(event => event.data)).toEqual([
      { name: 'worker', identity: { plugin: 'worker', instanceId: 'worker-1', labels: { env: 'prod' } } },
    ])
    // The announcer does not hear of its own module as news.
    expect(worker.connection.ofType('module:announced')).toEqual([])

    // A late peer learns it from its sync.
    const late = connectPeer(hub)
    await nextTurn()
    expect(late.connection.ofType('registry:modules:sync').map(event => event.data.modules)).toEqual([[
      { name: 'worker', identity: { plugin: 'worker', instanceId: 'worker-1', labels: { env: 'prod' } } },
    ]])
  })

  it('takes a repeated announce as a no-op, and a different one as a replacement', async () => {
    const hub = hubOf()
    const watcher = connectPeer(hub)
    const peer = joinPeer(hub, 'first')
    hub.announce(peer.session, { name: 'first', identity: identityOf('first') })
    expect(namesIn(watcher, 'module:announced')).toEqual(['first'])
    expect(watcher.connection.ofType('module:de-announced')).toEqual([])

    hub.announce(peer.session, { name: 'second', identity: identityOf('second') })
    expect(watcher.connection.ofType('module:de-announced').map(event => [event.data.name, event.data.reason])).toEqual([['first', 're-announcing']])
    expect(namesIn(watcher, 'module:announced')).toEqual(['first', 'second'])
    expect([...hub.registry.entries()].map(entry => entry.name)).toEqual(['second'])
    expect(peer.session.modules.map(entry => entry.name)).toEqual(['second'])
  })

  it('keeps several modules of one peer side by side, replacing only the one of the same name and index', () => {
    const hub = hubOf()
    const watcher = connectPeer(hub)
    const peer = connectPeer(hub)
    hub.announce(peer.session, { name: 'speech', index: 0, identity: identityOf('speech'), alongside: true })
    hub.announce(peer.session, { name: 'speech', index: 1, identity: identityOf('speech-b'), alongside: true })
    hub.announce(peer.session, { name: 'vision', identity: identityOf('vision'), alongside: true })
    expect(peer.session.modules.map(entry => [entry.name, entry.index])).toEqual([['speech', 0], ['speech', 1], ['vision', undefined]])

    hub.announce(peer.session, { name: 'speech', index: 1, identity: identityOf('speech-c'), alongside: true })
    expect(watcher.connection.ofType('module:de-announced').map(event => [event.data.name, event.data.index, event.data.reason])).toEqual([['speech', 1, 're-announcing']])
    expect(peer.session.modules.map(entry => entry.identity.pluginId)).toEqual(['speech', 'vision', 'speech-c'])
    expect(hub.registry.size).toBe(3)
  })

  it('de-announces every module of a peer that leaves, to the others, with the reason', () => {
    const hub = hubOf()
    const watcher = connectPeer(hub)
    const peer = connectPeer(hub)
    hub.announce(peer.session, { name: 'a', identity: identityOf('a'), alongside: true })
    hub.announce(peer.session, { name: 'b', identity: identityOf('b'), alongside: true })
    hub.disconnect(peer.session)
    expect(watcher.connection.ofType('module:de-announced').map(event => [event.data.name, event.data.reason])).toEqual([['a', 'connection closed'], ['b', 'connection closed']])
    expect(hub.registry.size).toBe(0)
    expect(hub.peers.has(peer.session.id)).toBe(false)
  })

  it('refuses the hub\'s own identity', () => {
    const hub = hubOf({ instanceId: 'the-hub' })
    const peer = connectPeer(hub)
    const reserved = { code: 'reserved_identity', message: 'reserved identity' }
    expect(refusalOf(hub.announce(peer.session, { name: 'fake', identity: { pluginId: 'hub-server', instanceId: 'x', labels: {} } }))).toEqual(reserved)
    expect(refusalOf(hub.announce(peer.session, { name: 'fake', identity: { pluginId: 'x', instanceId: 'the-hub', labels: {} } }))).toEqual(reserved)
    expect(hub.registry.size).toBe(0)
  })
})

describe('publish', () => {
  it('refuses reserved types, and routes nothing', () => {
    const hub = hubOf()
    const sender = joinPeer(hub, 'sender')
    const other = joinPeer(hub, 'other')
    for (const type of ['module:announced', 'registry:modules:sync', 'error', 'phx_join', 'transport:connection:heartbeat'])
      expect(refusalOf(hub.publish(sender.session, { type, data: {}, metadata: { event: { id: `id-${type}` } } }) as HubError)).toEqual({ code: 'reserved_event', message: 'reserved event type' })
    expect(other.connection.ofType('error')).toEqual([])
    expect(other.connection.ofType('registry:modules:sync')).toEqual([])
  })

  it('broadcasts an event without destinations to every authenticated peer but the sender, stamping the sender', () => {
    const hub = hubOf({ auth: { token: 'secret' } })
    const sender = joinPeer(hub, 'sender', { token: 'secret', labels: { env: 'prod' } })
    const a = joinPeer(hub, 'a', { token: 'secret' })
    const listener = connectPeer(hub, { token: 'secret' })
    const pending = connectPeer(hub)
    const at = new Date(5)
    // The claimed source is ignored: the registry is authoritative.
    const delivered = hub.publish(sender.session, { type: 'news', data: { at }, metadata: { source: { plugin: 'forged', instanceId: 'forged' }, event: { id: 'n1' } } })

    expect(delivered).toBe(2)
    for (const peer of [a, listener]) {
      const [news] = peer.connection.ofType('news')
      expect(news?.data).toEqual({ at })
      expect(news?.metadata?.event?.id).toBe('n1')
      expect(news?.metadata?.source).toMatchObject({ id: 'sender-1', instanceId: 'sender-1', plugin: { id: 'sender' }, labels: { env: 'prod' } })
    }
    expect(sender.connection.ofType('news')).toEqual([])
    expect(pending.connection.events).toEqual([])
  })

  it('routes to the destinations it names, each peer once', () => {
    const hub = hubOf()
    const sender = joinPeer(hub, 'sender')
    const peers = {
      workerProd: joinPeer(hub, 'worker-prod', { labels: { env: 'prod' } }),
      workerTest: joinPeer(hub, 'worker-test', { labels: { env: 'test' } }),
      ui: joinPeer(hub, 'ui', { labels: { env: 'prod', role: 'ui' } }),
      bare: connectPeer(hub),
    }
    const reached = (destinations: Destination[]): string[] => {
      const type = `probe:${JSON.stringify(destinations)}`
      hub.publish(sender.session, { type, data: {}, route: { destinations } })
      return Object.entries(peers).filter(([, peer]) => peer.connection.ofType(type).length > 0).map(([name]) => name)
    }

    expect(reached([`peer:${peers.bare.session.id}`])).toEqual(['bare'])
    expect(reached(['label:env=prod'])).toEqual(['workerProd', 'ui'])
    expect(reached(['label:env!=prod'])).toEqual(['workerTest'])
    expect(reached(['worker-*'])).toEqual(['workerProd', 'workerTest'])
    expect(reached(['plugin:ui', 'module:ui', 'u?'])).toEqual(['ui'])
    expect(reached(['instance:worker-test-1'])).toEqual(['workerTest'])
    expect(reached([{ type: 'and', all: [{ type: 'glob', glob: 'worker-*' }, { type: 'label', selectors: ['env=prod'] }] }])).toEqual(['workerProd'])
    expect(reached(['*'])).toEqual(['workerProd', 'workerTest', 'ui', 'bare'])
    expect(reached(['nobody'])).toEqual([])
    // Destinations may also ride in data.
    hub.publish(sender.session, { type: 'in-data', data: { destinations: ['plugin:ui'] } })
    expect(Object.values(peers).map(peer => peer.connection.ofType('in-data').length)).toEqual([0, 0, 1, 0])
    // Several matches of one peer: still one delivery; never the sender.
    expect(reached(['plugin:ui', 'label:role=ui', 'sender'])).toEqual(['ui'])
    expect(peers.ui.connection.ofType('probe:["plugin:ui","label:role=ui","sender"]')).toHaveLength(1)
    expect(sender.connection.events.filter(event => event.type.startsWith('probe:'))).toEqual([])
  })

  it('withholds events from peers the policy denies, whatever the destinations', () => {
    const hub = hubOf({ routing: { policy: { denyLabels: ['env=test'], denyPlugins: ['blocked*'] } } })
    const sender = joinPeer(hub, 'sender')
    const denied = joinPeer(hub, 'denied', { labels: { env: 'test' } })
    const blocked = joinPeer(hub, 'blocked-one')
    const open = joinPeer(hub, 'open', { labels: { env: 'prod' } })
    expect(hub.publish(sender.session, { type: 'all', data: {} })).toBe(1)
    expect(hub.publish(sender.session, { type: 'named', data: {}, route: { destinations: ['plugin:denied', 'plugin:blocked-one', 'plugin:open'] } })).toBe(1)
    expect([denied, blocked, open].map(peer => peer.connection.types().filter(type => type === 'all' || type === 'named'))).toEqual([[], [], ['all', 'named']])
  })
  it('closes a recipient that stopped reading with 1013 and de-announces it, the others served as usual', () => {
    const hub = hubOf({ limits: { maxBufferedBytes: 1000 } })
    const watcher = joinPeer(hub, 'watcher')
    const sender = joinPeer(hub, 'sender')
    const stuck = joinPeer(hub, 'stuck')
    stuck.connection.waiting = 1001
    expect(hub.publish(sender.session, { type: 'news', data: {} })).toBe(2)
    expect(stuck.connection.closes).toEqual([{ code: 1013, reason: 'slow consumer' }])
    expect(watcher.connection.ofType('news')).toHaveLength(1)
    expect(watcher.connection.ofType('module:de-announced').map(event => [event.data.name, event.data.reason])).toEqual([['stuck', 'connection closed']])
    expect([...hub.registry.entries()].map(entry => entry.name)).toEqual(['watcher', 'sender'])
    expect(watcher.connection.closes).toEqual([])
  })
})

describe('consumer delivery', () => {
  it('delivers an event with a delivery to exactly one registered consumer, never the sender', () => {
    const hub = hubOf()
    const sender = joinPeer(hub, 'sender')
    const consumers = ['c1', 'c2', 'c3'].map(name => joinPeer(hub, name))
    const bystander = joinPeer(hub, 'bystander')
    hub.registerConsumer(sender.session, { event: 'job', group: 'workers' })
    for (const consumer of consumers)
      expect(hub.registerConsumer(consumer.session, { event: 'job', group: 'workers' })).toBeUndefined()

    for (let i = 0; i < 6; i++)
      expect(hub.publish(sender.session, { type: 'job', data: { i }, route: { delivery: { group: 'workers', selection: 'round-robin' } } })).toBe(1)
    expect(consumers.map(consumer => consumer.connection.ofType('job').map(event => event.data.i))).toEqual([[0, 3], [1, 4], [2, 5]])
    expect(sender.connection.ofType('job')).toEqual([])
    expect(bystander.connection.ofType('job')).toEqual([])
  })

  it('sends chat input to one consumer once any registered, and to everyone before', () => {
    const hub = hubOf()
    const sender = joinPeer(hub, 'sender')
    const [a, b] = [joinPeer(hub, 'a'), joinPeer(hub, 'b')]
    hub.publish(sender.session, { type: 'input:text', data: { text: 'before' } })
    expect([a, b].map(peer => peer.connection.ofType('input:text').length)).toEqual([1, 1])

    hub.registerConsumer(b.session, { event: 'input:text', group: 'chat-ingestion' })
    hub.publish(sender.session, { type: 'input:text', data: { text: 'after' } })
    expect([a, b].map(peer => peer.connection.ofType('input:text').map(event => event.data.text))).toEqual([['before'], ['before', 'after']])
  })

  it('fails a required delivery nobody can take on the sender\'s connection, naming the event, and skips a consumer that left', () => {
    const hub = hubOf()
    const sender = joinPeer(hub, 'sender')
    const consumer = joinPeer(hub, 'consumer')
    hub.registerConsumer(consumer.session, { event: 'job' })
    hub.disconnect(consumer.session)
    expect(hub.publish(sender.session, { type: 'job', data: {}, metadata: { event: { id: 'j1' } }, route: { delivery: { mode: 'consumer', required: true } } })).toBe(0)
    expect(sender.connection.failures).toEqual([{ code: 'no_consumer', message: 'no consumer registered for requested event delivery', parentId: 'j1' }])
    expect(consumer.connection.ofType('job')).toEqual([])
  })
})
