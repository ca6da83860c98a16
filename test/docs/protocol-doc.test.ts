import { readFileSync } from 'node:fs'
import superjson from 'superjson'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { onCleanup, startHub } from '../helpers/hub.ts'

// docs/protocol.md must not rot: every ```json block parses, and every ```frames block is an
// exchange replayed against a real hub (token `secret`, instance id `hub-1`), frame by frame.
// Lines are `<peer> → <frame>` (sent as written, bad frames included), `<peer> ← <frame>` (the
// peer's next frame must be this one) or `<peer> closes`; `#` lines are comments. A peer whose
// name starts with `phx` is a Phoenix socket (`/socket/websocket?vsn=2.0.0&api_key=secret`, raw
// V2 arrays); the others are AIRI peers on `/ws`, whose frames are compared once superjson is
// unwrapped. In a documented frame the string "…" stands for any value (ids, timestamps).

const DOC = new URL('../../docs/protocol.md', import.meta.url)
const ANY = '…'

interface Block { lang: string, body: string, line: number }

function blocksOf(markdown: string): Block[] {
  const blocks: Block[] = []
  const re = /^```([\w-]*)\n([\s\S]*?)^```/gm
  for (const match of markdown.matchAll(re))
    blocks.push({ lang: match[1]!, body: match[2]!, line: markdown.slice(0, match.index).split('\n').length })
  return blocks
}

/** A `→` frame is sent as written (it may be deliberately bad); a `←` frame must be JSON. */
interface Step { peer: string, dir: '→' | '←' | 'closes', frame?: unknown, text: string }

function stepsOf(block: Block): Step[] {
  return block.body.split('\n').filter(line => line.trim() !== '' && !line.trimStart().startsWith('#')).map((line) => {
    const match = /^\s*(\w+) (?:([→←]) (.*)|closes)$/.exec(line)
    if (!match)
      throw new Error(`docs/protocol.md:${block.line}: not a frame line: ${line}`)
    const dir = (match[2] ?? 'closes') as Step['dir']
    return { peer: match[1]!, dir, frame: dir === '←' ? JSON.parse(match[3]!) : undefined, text: match[3] ?? '' }
  })
}

/** Whether `actual` is what the doc shows (`…` matches any value; absent keys must be absent). */
function matches(documented: unknown, actual: unknown): boolean {
  if (documented === ANY)
    return actual !== undefined
  if (Array.isArray(documented))
    return Array.isArray(actual) && actual.length === documented.length && documented.every((d, i) => matches(d, actual[i]))
  if (typeof documented === 'object' && documented !== null) {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual))
      return false
    const keys = Object.keys(actual).filter(key => (actual as Record<string, unknown>)[key] !== undefined)
    return keys.length === Object.keys(documented).length && keys.every(key => Object.hasOwn(documented, key) && matches((documented as Record<string, unknown>)[key], (actual as Record<string, unknown>)[key]))
  }
  return Object.is(documented, actual)
}

/** A socket with a queue of received frames, read in order. */
class Replayer {
  private frames: unknown[] = []
  private waiter?: () => void
  constructor(readonly ws: WebSocket, readonly phoenix: boolean) {
    ws.on('message', (data) => {
      const text = data.toString()
      this.frames.push(phoenix ? JSON.parse(text) : superjson.parse(text))
      this.waiter?.()
    })
  }

  async next(timeoutMs = 3000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs
    while (this.frames.length === 0) {
      if (Date.now() > deadline)
        throw new Error('no frame arrived')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50)
        this.waiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
    }
    return this.frames.shift()
  }

  /** Frames that arrived but the doc did not show, after a short settle. */
  async leftover(): Promise<unknown[]> {
    await new Promise(resolve => setTimeout(resolve, 100))
    return this.frames
  }
}

const markdown = readFileSync(DOC, 'utf8')
const blocks = blocksOf(markdown)

describe('docs/protocol.md', () => {
  it('has valid JSON in every json block', () => {
    const json = blocks.filter(block => block.lang === 'json')
    expect(json.length).toBeGreaterThan(0)
    for (const block of json)
      expect(() => JSON.parse(block.body), `docs/protocol.md:${block.line}`).not.toThrow()
  })

  it('refuses upgrades with the HTTP statuses of §1', async () => {
    const hub = await startHub({ auth: { token: 'secret' }, http: { allowedHosts: ['127.0.0.1'] } })
    const status = (path: string, headers?: Record<string, string>): Promise<number> => new Promise((resolve, reject) => {
      const ws = new WebSocket(hub.url(path), { headers })
      ws.once('unexpected-response', (_request, response) => {
        resolve(response.statusCode ?? 0)
        ws.terminate()
      })
      ws.once('open', () => {
        resolve(101)
        ws.close()
      })
      ws.once('error', reject)
    })
    const table = markdown.slice(markdown.indexOf('| status | when |'), markdown.indexOf('## 2. Frames'))
    const documented = (code: number): void => expect(table).toContain(`| ${code} |`)
    for (const code of [400, 401, 403, 404, 421])
      documented(code)
    expect(await status('/ws?token=wrong')).toBe(401)
    expect(await status('/ws', { authorization: 'Bearer wrong' })).toBe(401)
    expect(await status('/ws?token=secret')).toBe(101)
    expect(await status('/socket/websocket?vsn=2.0.0&api_key=wrong')).toBe(403)
    expect(await status('/socket/websocket?vsn=1.0.0&api_key=secret')).toBe(400)
    expect(await status('/ws', { origin: 'https://evil.example' })).toBe(403)
    expect(await status('/elsewhere')).toBe(404)
    expect(await status('/ws', { host: 'rebound.example' })).toBe(421)
  })

  const exchanges = blocks.filter(block => block.lang === 'frames')
  it('has frame exchanges', () => {
    expect(exchanges.length).toBeGreaterThan(3)
  })

  for (const block of exchanges) {
    const steps = stepsOf(block)
    it(`replays the exchange at line ${block.line} against a real hub`, async () => {
      const hub = await startHub({ auth: { token: 'secret' }, instanceId: 'hub-1' })
      const peers = new Map<string, Replayer>()
      async function peer(name: string): Promise<Replayer> {
        let replayer = peers.get(name)
        if (!replayer) {
          const phoenix = name.startsWith('phx')
          const ws = new WebSocket(hub.url(phoenix ? '/socket/websocket?vsn=2.0.0&api_key=secret' : '/ws'))
          onCleanup(() => ws.close())
          await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
          peers.set(name, replayer = new Replayer(ws, phoenix))
        }
        return replayer
      }
      for (const step of steps) {
        const replayer = await peer(step.peer)
        if (step.dir === '→') {
          replayer.ws.send(step.text)
          continue
        }
        if (step.dir === 'closes') {
          replayer.ws.close()
          peers.delete(step.peer)
          continue
        }
        const actual = await replayer.next().catch(() => {
          throw new Error(`docs/protocol.md:${block.line}: ${step.peer} never got ${step.text}`)
        })
        if (!matches(step.frame, actual))
          expect(actual, `docs/protocol.md:${block.line}: ${step.peer} ← ${step.text}`).toEqual(step.frame)
      }
      for (const [name, replayer] of peers)
        expect(await replayer.leftover(), `docs/protocol.md:${block.line}: frames ${name} got that the doc does not show`).toEqual([])
    })
  }
})
