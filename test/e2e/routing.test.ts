import type { ServerOptions } from '../../src/server.ts'
import { describe, expect, it } from 'vitest'
import { defineMiddleware } from '../../src/core/middleware.ts'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'

const TOKEN = 'token'

/** A hub with five announced raw peers; `send` routes from the first and reports who got it. */
async function fixture(options: ServerOptions = {}) {
  const hub = await startHub({ auth: { token: TOKEN }, ...options })
  const specs = [
    { name: 'sender', identity: { plugin: 'sender', instanceId: 'sender-1' } },
    { name: 'telegram', identity: { plugin: 'telegram-bot', instanceId: 'tg-1', labels: { env: 'prod', team: 'chat' } } },
    { name: 'discord', identity: { plugin: 'discord-bot', instanceId: 'dc-1', labels: { env: 'dev', team: 'chat' } } },
    { name: 'stage', identity: { id: 'web-1', kind: 'plugin', plugin: { id: 'stage-web', labels: { env: 'prod', ui: 'yes' } }, labels: { env: 'dev' } } },
    { name: 'devtools', identity: { plugin: 'devtools', instanceId: 'dt-1', labels: { devtools: 'true', eq: 'a=b' } } },
  ]
  const peers: Record<string, RawPeer> = {}
  for (const spec of specs) {
    const peer = await RawPeer.connect(hub.url())
    await peer.join(spec.name, { token: TOKEN, identity: spec.identity })
    peers[spec.name] = peer
  }
  // A peer that is connected but never authenticates.
  const stranger = await RawPeer.connect(hub.url())
  let counter = 0
  /** Sends from `from` and returns the names of the peers that received it (sorted). */
  async function send(route: Record<string, unknown> | undefined, data: Record<string, unknown> = {}, from = 'sender'): Promise<string[]> {
    const type = `test:${++counter}`
    // The receipt counts the peers the hub routed it to: wait for that many, then a moment for any extra.
    const id = peers[from]!.send({ type, data, route: { ...route, ack: true } })
    const receipt = await peers[from]!.waitFor(event => event.type === 'event:ack' && event.metadata?.event?.parentId === id)
    const receivers = (): string[] => Object.entries(peers).filter(([, p]) => p.ofType(type).length > 0).map(([n]) => n)
    await until(() => receivers().length >= (receipt.data.delivered as number), `${receipt.data.delivered} receivers of ${type}`)
    await settle(30)
    const got = receivers()
    for (const [name, peer] of Object.entries(peers))
      expect(peer.ofType(type).length, `${name} got ${type} more than once`).toBeLessThanOrEqual(1)
    expect(stranger.ofType(type)).toHaveLength(0)
    return got.sort()
  }
  return { hub, peers, send, stranger }
}

describe('routing by destinations', () => {
  it('resolves every destination form to the right recipients', async () => {
    const { send } = await fixture()
    expect(await send(undefined)).toEqual(['devtools', 'discord', 'stage', 'telegram'])
    expect(await send({ destinations: [] })).toEqual([])
    expect(await send({ destinations: ['*'] })).toEqual(['devtools', 'discord', 'stage', 'telegram'])
    expect(await send({ destinations: ['plugin:telegram-bot'] })).toEqual(['telegram'])
    expect(await send({ destinations: ['instance:web-1'] })).toEqual(['stage'])
    expect(await send({ destinations: ['module:discord'] })).toEqual(['discord'])
    expect(await send({ destinations: ['source:stage-web', 'source:discord'] })).toEqual(['discord', 'stage'])
    // Instance labels win over plugin labels: stage is env=dev, ui=yes.
    expect(await send({ destinations: ['label:env=prod'] })).toEqual(['telegram'])
    expect(await send({ destinations: ['label:env=dev'] })).toEqual(['discord', 'stage'])
    expect(await send({ destinations: ['label:ui'] })).toEqual(['stage'])
    expect(await send({ destinations: ['label:env!=dev'] })).toEqual(['devtools', 'telegram'])
    expect(await send({ destinations: ['label:!team'] })).toEqual(['devtools', 'stage'])
    expect(await send({ destinations: ['label:eq=a=b'] })).toEqual(['devtools'])
    expect(await send({ destinations: ['*-bot'] })).toEqual(['discord', 'telegram'])
    expect(await send({ destinations: ['tg-?'] })).toEqual(['telegram'])
    expect(await send({ destinations: ['telegram'] })).toEqual(['telegram'])
    expect(await send({ destinations: ['plugin:nobody'] })).toEqual([])
    // Overlapping destinations still deliver once.
    expect(await send({ destinations: ['plugin:telegram-bot', 'label:team=chat', '*bot'] })).toEqual(['discord', 'telegram'])
    // The sender never receives its own event, even when it matches.
    expect(await send({ destinations: ['plugin:sender', '*'] })).toEqual(['devtools', 'discord', 'stage', 'telegram'])
  })

  it('evaluates expressions', async () => {
    const { send } = await fixture()
    expect(await send({ destinations: [{ type: 'and', all: [{ type: 'label', selectors: ['team=chat'] }, { type: 'label', selectors: ['env=prod'], inverted: true }] }] })).toEqual(['discord'])
    expect(await send({ destinations: [{ type: 'or', any: [{ type: 'module', modules: ['stage'] }, { type: 'instance', instances: ['dt-1'] }] }] })).toEqual(['devtools', 'stage'])
    expect(await send({ destinations: [{ type: 'glob', glob: '*-bot' }, { type: 'plugin', plugins: ['stage-web'] }] })).toEqual(['discord', 'stage', 'telegram'])
    expect(await send({ destinations: [{ type: 'and', all: [] }] })).toEqual(['devtools', 'discord', 'stage', 'telegram'])
    expect(await send({ destinations: [{ type: 'or', any: [] }] })).toEqual([])
  })

  it('falls back to data.destinations', async () => {
    const { send } = await fixture()
    expect(await send(undefined, { destinations: ['plugin:discord-bot'] })).toEqual(['discord'])
    expect(await send(undefined, { destinations: [] })).toEqual([])
    // route.destinations wins over data.destinations.
    expect(await send({ destinations: ['module:stage'] }, { destinations: ['module:discord'] })).toEqual(['stage'])
  })

  it('stamps the sender\'s announced identity as the source', async () => {
    const { peers } = await fixture()
    peers.sender!.send({ type: 'claim', data: {}, metadata: { source: { plugin: 'devtools', instanceId: 'forged' } }, route: { destinations: ['module:telegram'] } })
    const got = await peers.telegram!.waitForType('claim')
    expect(got.metadata?.source).toEqual({ plugin: 'sender', instanceId: 'sender-1', labels: {} })
  })
})

describe('policy and middleware', () => {
  it('narrow the recipients that destinations chose, and compose', async () => {
    const seen: string[] = []
    const { send } = await fixture({
      routing: {
        policy: { denyLabels: ['env=prod'], denyPlugins: ['devtools'] },
        middleware: [
          defineMiddleware((context, next) => {
            seen.push(context.event.type)
            if (context.event.data.drop)
              return context.drop()
            if (context.event.data.onlyDiscord)
              context.recipients = context.recipients.filter(peer => peer.module?.name === 'discord')
            if (context.event.data.addEveryone) // ignored: middleware can only narrow
              context.recipients = [...context.recipients, { id: 'x', authenticated: true }]
            return next()
          }),
          defineMiddleware(async (context, next) => {
            await new Promise(resolve => setTimeout(resolve, 5))
            if (context.event.data.rewrite)
              context.event = { ...context.event, data: { rewritten: true } }
            await next()
          }),
        ],
      },
    })
    // Policy removes telegram (env=prod) and devtools (plugin denied).
    expect(await send(undefined)).toEqual(['discord', 'stage'])
    expect(await send({ destinations: ['plugin:telegram-bot'] })).toEqual([])
    expect(await send({ destinations: ['label:team=chat'] })).toEqual(['discord'])
    expect(await send(undefined, { onlyDiscord: true })).toEqual(['discord'])
    // Narrowing by middleware never re-adds what destinations excluded.
    expect(await send({ destinations: ['module:stage'] }, { onlyDiscord: true })).toEqual([])
    expect(await send(undefined, { addEveryone: true })).toEqual(['discord', 'stage'])
    expect(await send(undefined, { drop: true })).toEqual([])
    expect(seen.length).toBeGreaterThanOrEqual(7)
  })

  it('delivers the event a middleware rewrote', async () => {
    const { peers } = await fixture({
      routing: { middleware: [(context, next) => { context.event = { ...context.event, data: { ...context.event.data, stamped: 'yes' } }; return next() }] },
    })
    peers.sender!.send({ type: 'rewrite-me', data: { n: 1 }, route: { destinations: ['module:stage'] } })
    expect((await peers.stage!.waitForType('rewrite-me')).data).toEqual({ n: 1, stamped: 'yes' })
  })

  it('honours route.bypass only for peers the server trusts as devtools', async () => {
    const hub = await startHub({
      auth: { token: TOKEN },
      routing: { policy: { denyPlugins: ['target'] }, devtoolsTokens: ['devtools-token'] },
    })
    const target = await RawPeer.connect(hub.url())
    await target.join('target', { token: TOKEN })
    // Claims devtools by label, but authenticated with the ordinary token.
    const pretender = await RawPeer.connect(hub.url())
    await pretender.join('pretender', { token: TOKEN, identity: { plugin: 'devtools', instanceId: 'p', labels: { devtools: 'true' } } })
    const devtools = await RawPeer.connect(hub.url())
    await devtools.join('devtools', { token: 'devtools-token' })

    pretender.send({ type: 'poke', data: { from: 'pretender' }, route: { destinations: ['module:target'], bypass: true } })
    devtools.send({ type: 'poke', data: { from: 'devtools' }, route: { destinations: ['module:target'], bypass: true } })
    const got = await target.waitForType('poke')
    expect(got.data.from).toBe('devtools')
    await settle()
    expect(target.ofType('poke')).toHaveLength(1)
  })
})
