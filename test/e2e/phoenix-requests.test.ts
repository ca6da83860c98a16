import type { Channel } from 'phoenix'
import type { RunningHub, WireEvent } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import { phoenixGateway } from '../../src/protocol/phoenix.ts'
import { RawPeer, settle, startHub } from '../helpers/hub.ts'
import { outcome, phoenixSocket, RawPhoenix } from '../helpers/phoenix.ts'
import { sdkClient, syncListing } from '../helpers/sdk.ts'

// Requests between Phoenix channels and native peers. A Phoenix plugin answers `invoke_tool` as
// Atomemo's SDK does: `invoke_tool_response {request_id, data}`, or `invoke_tool_error
// {request_id, message}`; a Phoenix client asks with `payload.reply` and gets the reply in its
// push's `phx_reply`.

async function joinChannel(hub: RunningHub, topic: string): Promise<Channel> {
  const socket = phoenixSocket(hub.url('/socket'))
  const channel = socket.channel(topic, {})
  expect(await outcome(channel.join())).toMatchObject({ status: 'ok' })
  return channel
}

const answering = (id: string) => (event: WireEvent) => event.metadata?.event?.parentId === id

describe('requests to and from Phoenix channels', () => {
  it('a Phoenix plugin answers invoke_tool for a 0.8.4 SDK requester, by request_id', async () => {
    const hub = await startHub()
    const plugin = await joinChannel(hub, 'debug_plugin:search')
    // Atomemo's plugin: answers each invoke_tool with its request_id, or fails it.
    plugin.on('invoke_tool', ({ request_id, parameters }) => {
      if (parameters.fail)
        plugin.push('invoke_tool_error', { request_id, message: 'tool failed' })
      else
        plugin.push('invoke_tool_response', { request_id, data: { echoed: parameters.q } })
    })
    const requester = sdkClient(hub.url(), 'agent')
    await requester.waitFor(syncListing(['agent', 'search']))

    const send = (id: string, requestId: string, parameters: Record<string, unknown>): void => requester.client.send({
      type: 'invoke_tool',
      data: { request_id: requestId, tool_name: 'web', parameters },
      metadata: { event: { id } },
      route: { destinations: ['plugin:search'], reply: true },
    } as never)
    send('call-1', 'req_1', { q: 'hub' })
    expect(await requester.waitFor(answering('call-1'))).toMatchObject({ type: 'invoke_tool_response', data: { request_id: 'req_1', data: { echoed: 'hub' } }, metadata: { source: { plugin: 'search' } } })
    send('call-2', 'req_2', { fail: true })
    expect(await requester.waitFor(answering('call-2'))).toMatchObject({ type: 'error', data: { message: 'tool failed' } })
    // A plugin's push naming no pending request_id is an ordinary event.
    const stray = outcome(plugin.push('invoke_tool_response', { request_id: 'req_1', data: {} }))
    expect(await stray).toEqual({ status: 'ok', response: { delivered: 1 } })
    expect(requester.ofType('invoke_tool_response')).toHaveLength(2)
    expect(requester.ofType('invoke_tool_response')[1]!.metadata?.event?.parentId).toBeUndefined()
  })

  it('any <x> request with a request_id is answered by <x>_response / <x>_error, to its requester only (raw Atomemo frames)', async () => {
    const hub = await startHub()
    const plugin = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await plugin.request(['1', '1', 'debug_plugin:models', 'phx_join', {}])
    const bystander = await RawPeer.connect(hub.url())
    await bystander.join('bystander')
    const requester = sdkClient(hub.url(), 'agent')
    await requester.waitFor(syncListing(['agent', 'bystander', 'models']))
    const ask = (id: string, requestId: string): void => requester.client.send({
      type: 'invoke_model',
      data: { request_id: requestId, model: 'm', messages: [] },
      metadata: { event: { id } },
      route: { destinations: ['plugin:models'], reply: true },
    } as never)

    ask('call-1', 'req_1')
    const request = await plugin.waitFor(f => f[3] === 'invoke_model')
    expect(request[4]).toEqual({ request_id: 'req_1', model: 'm', messages: [] })
    expect(await plugin.request(['1', '2', 'debug_plugin:models', 'invoke_model_response', { request_id: 'req_1', data: { text: 'hi' } }]))
      .toEqual(['1', '2', 'debug_plugin:models', 'phx_reply', { status: 'ok', response: { delivered: 1 } }])
    expect(await requester.waitFor(answering('call-1'))).toMatchObject({ type: 'invoke_model_response', data: { request_id: 'req_1', data: { text: 'hi' } }, metadata: { source: { plugin: 'models' } } })

    ask('call-2', 'req_2')
    await plugin.waitFor(f => f[3] === 'invoke_model' && f[4].request_id === 'req_2')
    plugin.send(['1', '3', 'debug_plugin:models', 'invoke_model_error', { request_id: 'req_2', message: 'model down' }])
    expect(await requester.waitFor(answering('call-2'))).toMatchObject({ type: 'error', data: { message: 'model down' } })
    await settle()
    // Answers went to the requester alone, not broadcast.
    expect(bystander.ofType('invoke_model_response')).toEqual([])
    expect(bystander.ofType('error')).toEqual([])
  })

  it('hub_call:<name> from an Atomemo plugin goes to the consumer of <name>, answered by hub_call_response / hub_call_error', async () => {
    const hub = await startHub()
    const handler = await RawPeer.connect(hub.url())
    await handler.join('vault')
    handler.send({ type: 'module:consumer:register', data: { event: 'get_credentials', mode: 'consumer' } })
    const bystander = await RawPeer.connect(hub.url())
    await bystander.join('bystander')
    await settle()
    const served = new Set<string>()
    handler.ws.on('message', () => {
      for (const request of handler.ofType('get_credentials')) {
        const parentId = request.metadata!.event!.id!
        if (served.has(parentId))
          continue
        served.add(parentId)
        handler.send(request.data.name === 'nope'
          ? { type: 'error', data: { message: 'unknown credential', code: 'not_found' }, metadata: { event: { parentId } } }
          : { type: 'credentials', data: { key: `k-${request.data.name}` }, metadata: { event: { parentId } } })
      }
    })
    // As Atomemo's createHubCaller does: push `hub_call:<event> {request_id, data}`, then wait for
    // hub_call_response / hub_call_error naming that request_id (the phx_reply ok is ignored).
    const plugin = await joinChannel(hub, 'debug_plugin:search')
    const answers: Array<[string, any]> = []
    plugin.on('hub_call_response', (payload) => { answers.push(['hub_call_response', payload]) })
    plugin.on('hub_call_error', (payload) => { answers.push(['hub_call_error', payload]) })
    plugin.on('error', (payload) => { answers.push(['error', payload]) })
    const call = (requestId: string, data: Record<string, unknown>) => outcome(plugin.push('hub_call:get_credentials', { request_id: requestId, data }))
    const until = async (n: number): Promise<void> => {
      for (let i = 0; i < 500 && answers.length < n; i++)
        await new Promise(resolve => setTimeout(resolve, 10))
    }

    expect(await call('11111111-1111-4111-8111-111111111111', { name: 'github' })).toMatchObject({ status: 'ok' })
    await until(1)
    expect(answers[0]).toEqual(['hub_call_response', { request_id: '11111111-1111-4111-8111-111111111111', data: { key: 'k-github' } }])
    expect(await call('r2', { name: 'nope' })).toMatchObject({ status: 'ok' })
    await until(2)
    expect(answers[1]).toEqual(['hub_call_error', { request_id: 'r2', error: { code: 'not_found', message: 'unknown credential' } }])
    // Nobody handles `<name>`: a hub_call_error, not a broadcast.
    expect(await outcome(plugin.push('hub_call:list_models', { request_id: 'r3', data: {} }))).toMatchObject({ status: 'ok' })
    await until(3)
    expect(answers[2]).toEqual(['hub_call_error', { request_id: 'r3', error: { code: 'no_responder', message: 'no responder' } }])
    expect(await outcome(plugin.push('hub_call:get_credentials', { data: {} }))).toEqual({ status: 'error', response: { reason: 'invalid payload' } })
    await settle()
    expect(answers.slice(3)).toEqual([])
    expect(handler.ofType('get_credentials')).toHaveLength(2)
    expect(bystander.ofType('get_credentials')).toEqual([])
    expect(bystander.ofType('list_models')).toEqual([])
    expect(bystander.ofType('credentials')).toEqual([])
  })

  it('a Phoenix client asks a native responder with payload.reply and gets the reply in phx_reply', async () => {
    const hub = await startHub()
    const responder = await RawPeer.connect(hub.url())
    await responder.join('tool')
    const answered = new Set<string>()
    responder.ws.on('message', () => {
      for (const request of responder.ofType('tool:invoke')) {
        const parentId = request.metadata!.event!.id!
        if (answered.has(parentId))
          continue
        answered.add(parentId)
        if (request.data.fail)
          responder.send({ type: 'error', data: { message: 'cannot' }, metadata: { event: { parentId } } })
        else
          responder.send({ type: 'tool:result', data: { sum: request.data.a + request.data.b }, metadata: { event: { parentId } } })
      }
    })
    const client = await joinChannel(hub, 'plugin:ui')
    const ask = (payload: Record<string, unknown>): Promise<{ status: string, response: any }> =>
      outcome(client.push('tool:invoke', { destinations: ['plugin:tool'], ...payload }))
    expect(await ask({ a: 1, b: 2, reply: true })).toEqual({ status: 'ok', response: { sum: 3 } })
    expect(await ask({ fail: true, reply: { timeoutMs: 5000 } })).toEqual({ status: 'error', response: { reason: 'cannot' } })
    expect(await ask({ destinations: ['plugin:nobody'], reply: true })).toEqual({ status: 'error', response: { reason: 'no responder' } })
    // Without reply, the push is answered with its count, as before.
    expect(await ask({ a: 1, b: 1 })).toEqual({ status: 'ok', response: { delivered: 1 } })
    // The hub took `reply` out of the data the responder got.
    expect(responder.ofType('tool:invoke')[0]!.data).toEqual({ destinations: ['plugin:tool'], a: 1, b: 2 })
  })

  it('a Phoenix channel pushing invoke_tool asks a Phoenix plugin without payload.reply', async () => {
    const hub = await startHub()
    const plugin = await joinChannel(hub, 'plugin:search')
    plugin.on('invoke_tool', ({ request_id }) => {
      plugin.push('invoke_tool_response', { request_id, data: { ok: true } })
    })
    const agent = await joinChannel(hub, 'plugin:agent')
    expect(await outcome(agent.push('invoke_tool', { request_id: 'r', destinations: ['plugin:search'] }))).toEqual({ status: 'ok', response: { request_id: 'r', data: { ok: true } } })
  })

  it('refuses replies rules that name no events', () => {
    expect(() => phoenixGateway({ replies: { invoke_tool: { reply: '', correlate: 'request_id' } } })).toThrow('Invalid phoenix.replies.invoke_tool')
  })

  it('answers a Phoenix request that timed out with an error reply', async () => {
    const hub = await startHub()
    const silent = await RawPeer.connect(hub.url())
    await silent.join('tool')
    const raw = await RawPhoenix.connect(hub.url('/socket/websocket?vsn=2.0.0'))
    await raw.request(['1', '1', 'plugin:ui', 'phx_join', {}])
    const answer = await raw.request(['1', '2', 'plugin:ui', 'tool:invoke', { destinations: ['plugin:tool'], reply: { timeoutMs: 200 } }])
    expect(answer[4]).toEqual({ status: 'error', response: { reason: 'request timed out' } })
    const request = await silent.waitForType('tool:invoke')
    expect(request.data).toEqual({ destinations: ['plugin:tool'] })
    const bad = await raw.request(['1', '3', 'plugin:ui', 'tool:invoke', { reply: { timeoutMs: -1 } }])
    expect(bad[4]).toEqual({ status: 'error', response: { reason: 'invalid payload' } })
    await settle()
  })
})
