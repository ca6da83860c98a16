import type { ClientOptions, HubClient } from '../../src/client/index.ts'
import type { RunningHub } from '../helpers/hub.ts'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createClient } from '../../src/client/index.ts'
import { onCleanup, RawPeer, startHub } from '../helpers/hub.ts'
import { until } from '../helpers/json-socket.ts'

// The registry capability from the client's side: deltas instead of per-change events, and
// recovery by revision after a reconnect — only the changes it missed, or a full sync when the
// hub's log no longer holds them.

const token = 'secret'

/** `ws` that records every frame each socket received, and connects nowhere while `gate.open` is false. */
function gatedWebSocket(): { WebSocket: typeof WebSocket, sockets: WebSocket[], frames: string[][], gate: { open: boolean } } {
  const sockets: WebSocket[] = []
  const frames: string[][] = []
  const gate = { open: true }
  class Gated extends WebSocket {
    constructor(url: string) {
      super(gate.open ? url : 'ws://127.0.0.1:1/ws')
      const received: string[] = []
      frames.push(received)
      sockets.push(this)
      this.on('message', data => received.push(data.toString()))
    }
  }
  return { WebSocket: Gated as typeof WebSocket, sockets, frames, gate }
}

/** Registry frame types a socket received, in order. */
function registryTypes(frames: string[]): Array<{ type: string, data: any }> {
  return frames.map(text => JSON.parse(text).json).filter(event => /registry|announced/.test(event.type))
}

function names(c: HubClient | RunningHub): string {
  const list = 'modules' in c ? [...c.modules.values()] : [...c.server.hub.registry.entries()]
  return list.map(entry => entry.name).sort().join(',')
}

function client(hub: RunningHub, name: string, options: Partial<ClientOptions> = {}): HubClient {
  const created = createClient({ url: hub.url(), token, WebSocket, module: { name }, reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, ...options })
  onCleanup(() => created.close())
  return created
}

async function airi(hub: RunningHub, name: string): Promise<RawPeer> {
  const peer = await RawPeer.connect(hub.url())
  await peer.join(name, { token })
  return peer
}

describe('hub-server/client registry recovery', () => {
  it('gets deltas, not per-change events, and after a reconnect only what it missed', async () => {
    const hub = await startHub({ auth: { token } })
    await airi(hub, 'first')
    const socket = gatedWebSocket()
    const watcher = client(hub, 'watcher', { WebSocket: socket.WebSocket })
    await until(() => names(watcher) === 'first,watcher', 'the first view')
    const second = await airi(hub, 'second')
    await until(() => names(watcher) === 'first,second,watcher', 'the delta')
    const before = registryTypes(socket.frames[0]!)
    expect(before.map(e => e.type)).toEqual(['registry:modules:sync', ...before.slice(1).map(() => 'registry:modules:delta')])
    expect(before[0]!.data).toMatchObject({ epoch: expect.any(String), revision: expect.any(Number) })
    const last = before.at(-1)!.data as { epoch: string, revision: number }

    // The socket dies; while the client is away one module leaves and another comes.
    socket.gate.open = false
    socket.sockets[0]!.terminate()
    await until(() => watcher.status === 'reconnecting', 'the client to notice')
    second.ws.close()
    await airi(hub, 'third')
    await until(() => names(hub) === 'first,third', 'the hub to have moved on')
    socket.gate.open = true
    await until(() => watcher.status === 'open' && names(watcher) === 'first,third,watcher', 'the view to recover')

    const after = registryTypes(socket.frames.at(-1)!)
    expect(after.map(e => e.type)).not.toContain('registry:modules:sync')
    expect(after[0]).toMatchObject({ type: 'registry:modules:delta', data: { epoch: last.epoch, from: last.revision } })
    expect(after[0]!.data.removed.map((key: { name: string }) => key.name).sort()).toEqual(['second', 'watcher'])
    expect(after.flatMap(e => e.data.added.map((entry: { name: string }) => entry.name)).sort()).toEqual(['third', 'watcher'])
  })

  it('on a hub without auth (admitted at connect) gets one sync of its mode, never the AIRI one', async () => {
    const hub = await startHub()
    await airi(hub, 'first')
    const socket = gatedWebSocket()
    const watcher = client(hub, 'watcher', { WebSocket: socket.WebSocket, token: undefined })
    await until(() => watcher.status === 'open' && names(watcher) === 'first,watcher', 'the view')
    const frames = registryTypes(socket.frames[0]!)
    expect(frames[0]).toMatchObject({ type: 'registry:modules:sync', data: { epoch: expect.any(String) } })
    expect(frames.filter(e => e.type === 'registry:modules:sync')).toHaveLength(1)
    expect(frames.map(e => e.type)).not.toContain('module:announced')
    expect(socket.sockets[0]!.url).toMatch(/\?registry=none$/)
  })

  it('gets a full sync when the hub\'s log no longer reaches back to its revision', async () => {
    const hub = await startHub({ auth: { token }, limits: { registryLogEntries: 2 } })
    const socket = gatedWebSocket()
    const watcher = client(hub, 'watcher', { WebSocket: socket.WebSocket })
    await until(() => watcher.status === 'open' && names(watcher) === 'watcher', 'the first view')
    const removed: string[] = []
    watcher.onModules(change => removed.push(...change.removed.map(entry => entry.name)))

    socket.gate.open = false
    socket.sockets[0]!.terminate()
    await until(() => watcher.status === 'reconnecting', 'the client to notice')
    for (const name of ['a', 'b', 'c', 'd'])
      await airi(hub, name)
    socket.gate.open = true
    await until(() => watcher.status === 'open' && names(watcher) === 'a,b,c,d,watcher', 'the view to recover')

    const after = registryTypes(socket.frames.at(-1)!)
    expect(after[0]).toMatchObject({ type: 'registry:modules:sync' })
    // A full sync replaces the view, but listeners hear only what changed: nothing was removed.
    expect(removed.filter(name => name !== 'watcher')).toEqual([])
  })
})
