import type { Session } from '../../src/core/session.ts'
import type { Hub } from '../../src/hub.ts'
import type { HubOptions } from '../../src/options.ts'
import type { Connection, EventEncoder, HubEvent, Identity } from '../../src/types.ts'
import process from 'node:process'
import { setImmediate } from 'node:timers'
import superjson from 'superjson'
import { afterEach, expect, vi } from 'vitest'
import { createHub } from '../../src/hub.ts'

/**
 * Fakes for socket-free tests of the hub core: a `Connection` that records what the core
 * asked of it, and peers made of one. No port, no socket, no gateway.
 */

/** What a gateway's connection would do, recorded: every event sent (decoded), every close, failure and ping asked for. */
export interface FakeConnection extends Connection {
  /** Every event the core sent, decoded, oldest first (sends after a close included: a socket would drop them). */
  readonly events: HubEvent[]
  /** The code and reason of every close the core asked for. */
  readonly closes: Array<{ code: number, reason: string }>
  /** Every failure the core reported later than the call that caused it (`fail`), oldest first. */
  readonly failures: Array<{ code: string, message: string, parentId?: string }>
  /** Native pings the core asked for. */
  pings: number
  /** Bytes this connection says are waiting (set it to play a peer that does not read). */
  waiting: number
  /** The events of one type, oldest first. */
  ofType: (type: string) => HubEvent[]
  /** The types of every event, oldest first. */
  types: () => string[]
}

/** Frames as superjson text of the event itself: what the core hands over survives, Dates included. */
export const superjsonEncoder: EventEncoder = { encode: event => superjson.stringify(event) }

/** The event in a frame: superjson text, or plain JSON of the event (an encoder of a test's own). */
function decodeFrame(frame: string): HubEvent {
  const parsed = JSON.parse(frame)
  return 'json' in parsed ? superjson.deserialize(parsed) : parsed
}

/** A connection of the given encoder (superjson by default) that decodes and keeps every frame it is sent. */
export function fakeConnection(encoder: EventEncoder = superjsonEncoder): FakeConnection {
  const events: HubEvent[] = []
  const connection: FakeConnection = {
    encoder,
    events,
    closes: [],
    failures: [],
    pings: 0,
    waiting: 0,
    send(frame) {
      events.push(decodeFrame(frame))
      return connection.waiting
    },
    buffered: () => connection.waiting,
    close({ code, reason }) {
      connection.closes.push({ code, reason })
    },
    ping() {
      connection.pings++
    },
    fail(error, parentId) {
      connection.failures.push(parentId === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, parentId })
    },
    ofType: type => events.filter(event => event.type === type),
    types: () => events.map(event => event.type),
  }
  return connection
}

/** One peer of a hub: its session and the fake connection behind it. */
export interface FakePeer {
  session: Session
  connection: FakeConnection
}

/** A new peer of `hub`; `token` as if presented at the upgrade. */
export function connectPeer(hub: Hub, init?: { token?: string }): FakePeer {
  const connection = fakeConnection()
  return { session: hub.connect(connection, init), connection }
}

/** An identity named after its module (`<name>` plugin, `<name>-1` instance). */
export function identityOf(name: string, labels: Record<string, string> = {}): Identity {
  return { pluginId: name, instanceId: `${name}-1`, labels }
}

/** A peer that authenticated (with `token` when given) and announced module `name`. */
export function joinPeer(hub: Hub, name: string, options: { token?: string, labels?: Record<string, string> } = {}): FakePeer {
  const peer = connectPeer(hub)
  hub.authenticate(peer.session, options.token)
  hub.announce(peer.session, { name, identity: identityOf(name, options.labels) })
  return peer
}

/**
 * The end of this event-loop turn, when the core sends what it batches per turn (registry
 * syncs, cluster messages). Real even under `vi.useFakeTimers()`, as the core's own turn queue is.
 */
export function nextTurn(): Promise<void> {
  return new Promise(resolve => setImmediate(resolve))
}

/** The network handles this process holds (TCP and UDP): none, for a test that needs no port. */
export function openSockets(): string[] {
  return process.getActiveResourcesInfo().filter(resource => /^(?:TCP|UDP)/.test(resource))
}

/**
 * Hubs for socket-free tests (silent, no env): each is closed after its test, which must have
 * opened no socket; real timers are back after each test.
 */
export function useSocketFreeHubs(): (options?: HubOptions) => Hub {
  const hubs: Hub[] = []
  afterEach(async () => {
    expect(openSockets()).toEqual([])
    await Promise.all(hubs.splice(0).map(hub => hub.close()))
    vi.useRealTimers()
  })
  return (options = {}) => {
    const hub = createHub({ env: {}, logger: { level: 'silent' }, ...options })
    hubs.push(hub)
    return hub
  }
}
