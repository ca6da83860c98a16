import type { ExplainResult } from '../../src/core/explain.ts'
import type { RoutingMiddleware } from '../../src/core/middleware.ts'
import type { Hub } from '../../src/hub.ts'
import { describe, expect, it } from 'vitest'
import { HubError } from '../../src/errors.ts'
import { startNodes } from '../helpers/cluster.ts'
import { onCleanup, RawPeer, settle, startHub } from '../helpers/hub.ts'
import { phoenixSocket, until } from '../helpers/phoenix.ts'
import { startRedis } from '../helpers/redis.ts'
import { sdkClient } from '../helpers/sdk.ts'

// A real hub with real peers: the 0.8.4 SDK, raw AIRI frames, the `phoenix` client. Explain is
// asked through `hub.explain` (the dashboard serves the same answer as JSON), then the same event
// is really sent, and who got it must be who explain said would.

const TOKEN = 'secret'

async function explain(hub: Hub, request: Parameters<Hub['explain']>[0]): Promise<ExplainResult> {
  const result = await hub.explain(request)
  if (result instanceof HubError)
    throw result
  return result
}

/** Peers by first module name (peer id when none): `recipient`, or the step and reason that excluded it. */
function verdicts(result: ExplainResult): Record<string, string> {
  const named = (peer: { peerId: string, modules: { name: string }[] }): string => peer.modules[0]?.name ?? peer.peerId
  return Object.fromEntries([
    ...result.recipients.map(peer => [named(peer), 'recipient']),
    ...result.excluded.map(peer => [named(peer), `${peer.step}: ${peer.reason}`]),
  ])
}

/** A raw AIRI 0.8.4 peer that authenticated and announced `name` with these labels. */
async function airiPeer(url: string, name: string, labels: Record<string, string> = {}): Promise<RawPeer> {
  const peer = await RawPeer.connect(url)
  await peer.join(name, { token: TOKEN, identity: { plugin: name, instanceId: `${name}-1`, labels } })
  return peer
}

describe('hub.explain on a real hub', () => {
  it('names the step that excluded each peer (destinations, policy rule, middleware, unauthenticated), and the real route agrees', async () => {
    // Named by its binding, as `middleware #1 (mute)` shows it.
    const mute: RoutingMiddleware = (context, next) => {
      context.recipients = context.recipients.filter(peer => peer.module?.name !== 'app-muted')
      return next()
    }
    const running = await startHub({
      auth: { token: TOKEN },
      routing: { policy: { allowPlugins: ['app-*', 'sender'], denyLabels: ['env=prod'] }, middleware: [mute] },
    })
    const { hub } = running.server
    const sender = sdkClient(running.url(), 'sender', { token: TOKEN })
    const tts = await airiPeer(running.url(), 'app-tts', { env: 'dev', voice: 'on' })
    const vision = await airiPeer(running.url(), 'app-vision', { env: 'prod' })
    const rogue = await airiPeer(running.url(), 'rogue')
    const muted = await airiPeer(running.url(), 'app-muted')
    const socket = phoenixSocket(running.url('/socket'), { authToken: TOKEN })
    const channel = socket.channel('plugin:app-phx', {})
    const phoenixGot: unknown[] = []
    channel.on('greet', (payload) => {
      phoenixGot.push(payload)
    })
    channel.join()
    const pending = await RawPeer.connect(running.url())
    await until(() => ['sender', 'app-phx'].every(name => hub.registry.find(name)), 'the SDK and Phoenix modules')

    const destinations = ['plugin:app-tts', 'label:voice=on', 'app-v*', { type: 'plugin', plugins: ['rogue', 'app-muted'] }]
    const result = await explain(hub, { from: 'sender', event: { type: 'greet', data: { hello: 1 }, route: { destinations } } })
    expect(result.sender).toMatchObject({ modules: [{ name: 'sender' }] })
    expect(result.sender?.node).toBeUndefined()
    const pendingId = [...hub.peers.values()].find(session => !session.authenticated)!.id
    expect(verdicts(result)).toEqual({
      'sender': 'sender: the sender: an event is never echoed to it',
      'app-tts': 'recipient',
      'app-vision': 'policy: policy denyLabels "env=prod"',
      'rogue': 'policy: policy allowPlugins ("app-*", "sender"): plugin "rogue" matches none',
      'app-muted': 'middleware: middleware #1 (mute) removed it from the recipients',
      'app-phx': `destinations: destinations: no destination matches (plugin:app-tts, label:voice=on, app-v*, ${JSON.stringify(destinations[3])})`,
      [pendingId]: 'unauthenticated: not authenticated: routing skips it',
    })

    // The same event, really sent: only app-tts gets it.
    sender.client.send({ type: 'greet', data: { hello: 1 }, route: { destinations } } as never)
    await tts.waitForType('greet')
    await settle()
    expect([vision, rogue, muted, pending].map(peer => peer.ofType('greet').length)).toEqual([0, 0, 0, 0])
    expect(phoenixGot).toEqual([])

    // The Phoenix plugin, by the labels its gateway gives it.
    const toPhoenix = await explain(hub, { from: 'sender', event: { type: 'greet', route: { destinations: ['label:protocol=phoenix'] } } })
    expect(verdicts(toPhoenix)['app-phx']).toBe('recipient')
    expect(toPhoenix.recipients).toHaveLength(1)
    sender.client.send({ type: 'greet', data: { to: 'phx' }, route: { destinations: ['label:protocol=phoenix'] } } as never)
    await until(() => phoenixGot.length === 1, 'the Phoenix plugin to get it')
  })

  it('shows which consumer a delivery would pick, without taking its turn', async () => {
    const running = await startHub({ auth: { token: TOKEN } })
    const { hub } = running.server
    const sender = await airiPeer(running.url(), 'sender')
    const workers = [await airiPeer(running.url(), 'worker-a'), await airiPeer(running.url(), 'worker-b')]
    for (const worker of workers)
      worker.send({ type: 'module:consumer:register', data: { event: 'job', group: 'workers' } })
    await airiPeer(running.url(), 'bystander')
    await until(() => hub.consumers.handlers('job').length === 2, 'both consumers')
    const route = { delivery: { group: 'workers', selection: 'round-robin' } }

    for (let i = 0; i < 2; i++) {
      const result = await explain(hub, { from: 'sender', event: { type: 'job', route } })
      expect(result.recipients).toHaveLength(1)
      const picked = result.recipients[0]!.modules[0]!.name
      const other = picked === 'worker-a' ? 'worker-b' : 'worker-a'
      expect(verdicts(result)).toMatchObject({
        [other]: `delivery: delivery: consumer group "workers" picked peer ${result.recipients[0]!.peerId} (round-robin)`,
        bystander: 'delivery: delivery: not a consumer of "job" in group "workers"',
      })
      // Asked twice: the same answer; then the real delivery goes where it said.
      expect((await explain(hub, { from: 'sender', event: { type: 'job', route } })).recipients).toEqual(result.recipients)
      sender.send({ type: 'job', data: { i }, route })
      const target = workers[picked === 'worker-a' ? 0 : 1]!
      await target.waitFor(event => event.type === 'job' && event.data.i === i)
    }
    expect(workers.map(worker => worker.ofType('job').length)).toEqual([1, 1])
  })

  it('shows a consumer that went silent as unhealthy, and the next one as the pick', async () => {
    const running = await startHub({ heartbeat: { readTimeout: 1000 } })
    const { hub } = running.server
    await (await RawPeer.connect(running.url())).join('sender')
    const quiet = await RawPeer.connect(running.url(), { autoPong: false })
    await quiet.join('quiet')
    const awake = await RawPeer.connect(running.url())
    await awake.join('awake')
    quiet.send({ type: 'module:consumer:register', data: { event: 'job', group: 'g', priority: 10 } })
    awake.send({ type: 'module:consumer:register', data: { event: 'job', group: 'g' } })
    await until(() => hub.consumers.handlers('job').length === 2, 'both consumers')
    const request = { from: 'sender', event: { type: 'job', route: { delivery: { group: 'g', selection: 'priority' } } } }
    expect(verdicts(await explain(hub, request)).quiet).toBe('recipient')

    // It answers no ping: once the hub declares it unhealthy, explain says so.
    // No middleware here: explain answers synchronously.
    await until(() => verdicts(hub.explain(request) as ExplainResult).quiet !== 'recipient', 'the quiet consumer to turn unhealthy')
    const result = await explain(hub, request)
    expect(verdicts(result)).toMatchObject({
      quiet: 'unhealthy: unhealthy: a consumer of "job" in group "g" that went silent',
      awake: 'recipient',
    })
  })

  it('shows a peer of another node with its node, over a real redis-server', async () => {
    const redis = await startRedis()
    onCleanup(() => redis.kill())
    const [a, b] = await startNodes(redis.url, 2, 2000)
    const here = await RawPeer.connect(a!.url())
    await here.join('sender')
    const there = await RawPeer.connect(b!.url())
    await there.join('remote-tts', { identity: { plugin: 'remote-tts', instanceId: 'remote-tts-1', labels: { voice: 'on' } } })
    const bystander = await RawPeer.connect(a!.url())
    await bystander.join('bystander')
    const hubA = a!.server.hub
    await until(() => hubA.registry.find('remote-tts') !== undefined, 'node A to learn of remote-tts')

    const result = await explain(hubA, { from: 'sender', event: { type: 'say', route: { destinations: ['label:voice=on'] } } })
    expect(result.recipients).toEqual([expect.objectContaining({ peerId: expect.any(String), node: b!.server.hub.cluster!.nodeId, modules: [{ name: 'remote-tts' }] })])
    expect(verdicts(result).bystander).toBe('destinations: destinations: no destination matches (label:voice=on)')

    // A remote sender, named by its module: it shows with its node, and node A's peers as recipients.
    const fromRemote = await explain(hubA, { from: 'remote-tts', event: { type: 'say' } })
    expect(fromRemote.sender?.node).toBe(b!.server.hub.cluster!.nodeId)
    expect(fromRemote.recipients.map(peer => peer.modules[0]!.name).sort()).toEqual(['bystander', 'sender'])

    here.send({ type: 'say', data: {}, route: { destinations: ['label:voice=on'] } })
    await there.waitForType('say')
  })

  it('answers a bad request with a clear error and never a crash', async () => {
    const running = await startHub()
    const { hub } = running.server
    const cases: Array<[unknown, string]> = [
      [{ event: { type: 'x', route: { destinations: [{ type: 'glob' }] } } }, 'invalid_event'],
      [{ from: 'ghost', event: { type: 'x' } }, 'module_not_found'],
      [{ event: { type: 'registry:modules:sync' } }, 'reserved_event'],
      [{ event: { type: 'x', route: { destinations: Array.from({ length: 100_000 }, (_, i) => `plugin:${i}`) } } }, 'limit_exceeded'],
    ]
    for (const [request, code] of cases) {
      const result = await hub.explain(request as never)
      expect(result).toBeInstanceOf(HubError)
      expect((result as HubError).code).toBe(code)
    }
  })
})

describe('hub.explain of a long route over many peers', () => {
  it('names the destinations in a bounded reason: the answer grows with the peers, not with peers × route', async () => {
    const hub = await startHub({ auth: { token: TOKEN } })
    const peers = 30
    for (let i = 0; i < peers; i++)
      await airiPeer(hub.url(), `peer-${i}`)
    // 64 destinations of 250 characters each (16 kB): within every limit, matching nobody.
    const destinations = Array.from({ length: 64 }, (_, i) => `plugin:${String(i).padStart(3, '0')}${'x'.repeat(240)}`)
    const result = await explain(hub.server.hub, { event: { type: 'say', route: { destinations } } })
    expect(result.recipients).toEqual([])
    expect(result.excluded).toHaveLength(peers)
    for (const { step, reason } of result.excluded) {
      expect(step).toBe('destinations')
      expect(reason.startsWith(`destinations: no destination matches (${destinations[0]}, ${destinations[1]}`)).toBe(true)
      expect(reason.endsWith('…)')).toBe(true)
      expect(reason.length).toBeLessThan(1024)
    }
    expect(JSON.stringify(result).length).toBeLessThan(peers * 1024)
  })
})
