import type { CloseInfo, ReconnectInfo } from './connection.ts'
import type { ModulesChange, RegistryPosition } from './registry-view.ts'
import type { WebSocketConstructor } from './socket.ts'
import type { ClientOptions, ClientStatus, Destinations, EventHandler, EventMap, HubClient, RequestHandler } from './types.ts'
import type { WireEvent } from './wire.ts'
import * as v from 'valibot'
import { resolveReconnectOptions } from './backoff.ts'
import { createCalls } from './calls.ts'
import { CLIENT_CLOSED, createConnection, DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS } from './connection.ts'
import { ClientError, errorFromEvent, toError } from './errors.ts'
import { guarded, listeners } from './listeners.ts'
import { createOutbox, DEFAULT_QUEUE_MAX_SIZE, DEFAULT_QUEUE_MAX_WAIT_MS } from './outbox.ts'
import { received } from './received.ts'
import { createRegistryView, isEmptyChange } from './registry-view.ts'
import { createIds, decodeFrame, Delta, encodeFrame, errorMessage, fromHub, ModuleChange, Sync } from './wire.ts'

/** How long `request` waits for a reply, and `emit` for an ack, unless told otherwise. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000
/** The hub answers a request's timeout itself; the client's own timer only covers a hub that never answers. */
const LOCAL_TIMEOUT_GRACE_MS = 2000
/** The longest delay a timer takes: a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647

/** A duration given by the user, checked: a timer of 0 spins (a heartbeat of 0 is a ping flood), one of NaN or past `MAX_TIMER_MS` fires at once. */
function checkedMs(name: string, value: number, min = 1, max = MAX_TIMER_MS): number {
  if (!(value >= min && value <= max))
    throw new TypeError(`invalid ${name}: ${value} (from ${min} to ${max} ms)`)
  return value
}

function destinations(to: Destinations | undefined): Array<string | Record<string, unknown>> | undefined {
  return to === undefined ? undefined : Array.isArray(to) ? to : [to]
}

/**
 * The URL with `registry=none`: a hub that admits the socket at connect (no auth configured)
 * would otherwise send it the whole registry before its `module:authenticate` asks for a mode;
 * that frame then switches to the mode asked. Hubs without the capability ignore the parameter.
 */
function withoutRegistryAtConnect(url: string): string {
  const parsed = new URL(url)
  // Checked here, for every URL: a WebSocket constructor throws on these, and for the second URL
  // of a list that would be on a reconnect, out of a timer (an uncaught exception in Node).
  if (!['ws:', 'wss:', 'http:', 'https:', 'ws+unix:'].includes(parsed.protocol) || parsed.hash !== '')
    throw new TypeError(`not a WebSocket URL: ${url}`)
  parsed.searchParams.set('registry', 'none')
  return parsed.toString()
}

/** Connects to a hub, authenticates, announces `module`, and keeps doing so across reconnects. */
export function createClient<E extends EventMap = EventMap>(options: ClientOptions): HubClient<E> {
  if (options.url.length === 0)
    throw new TypeError('no url to connect to')
  const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (!WebSocketImpl)
    throw new TypeError('no WebSocket: pass `WebSocket` (e.g. from the `ws` package) to createClient')
  const mode = options.registry ?? 'delta'
  const requestTimeoutMs = checkedMs('requestTimeoutMs', options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, 1, MAX_TIMER_MS - LOCAL_TIMEOUT_GRACE_MS)
  const heartbeat = {
    intervalMs: checkedMs('heartbeat.intervalMs', options.heartbeat?.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS),
    timeoutMs: checkedMs('heartbeat.timeoutMs', options.heartbeat?.timeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS),
  }
  const queue = { maxSize: options.queue?.maxSize ?? DEFAULT_QUEUE_MAX_SIZE, maxWaitMs: checkedMs('queue.maxWaitMs', options.queue?.maxWaitMs ?? DEFAULT_QUEUE_MAX_WAIT_MS, 0) }
  if (!(queue.maxSize >= 0))
    throw new TypeError(`invalid queue.maxSize: ${queue.maxSize}`)
  const module = options.module
  const identity = module && (module.identity ?? { plugin: module.name, instanceId: `${module.name}-${Math.random().toString(36).slice(2, 10)}`, labels: module.labels ?? {} })

  const nextId = createIds()
  const view = createRegistryView()
  const calls = createCalls()
  const outbox = createOutbox(queue)
  const handlers = new Map<string, Set<EventHandler<any>>>()
  const responders = new Map<string, RequestHandler<any>>()
  // What an error listener throws has nowhere left to go: reporting it again could loop.
  const errorListeners = listeners<Error>(() => {})
  const reported = (error: unknown): void => fail(toError(error))
  const modulesListeners = listeners<ModulesChange>(reported)
  const openListeners = listeners<{ reconnected: boolean }>(reported)
  const closeListeners = listeners<CloseInfo>(reported)
  const reconnectListeners = listeners<ReconnectInfo>(reported)

  let status: ClientStatus = 'connecting'
  let opens = 0
  /** Sockets opened so far: a request is answered on the socket it came by, or not at all. */
  let sockets = 0
  /** Ids of this connection's handshake frames; the ping's pong says the hub has processed the rest. */
  let handshake: { authenticate: string, announce?: string, ping: string } | undefined
  /** Why the client stopped for good when `close()` did not stop it (a refused token): waiting and later calls fail with it. */
  let stoppedBy: ClientError | undefined
  /** Where the view stood when it last asked this connection to bring it up to date: one ask per position. */
  let askedAt: { position: RegistryPosition | undefined } | undefined

  function off(type: string, handler: EventHandler<any>): void {
    handlers.get(type)?.delete(handler)
  }

  const connection = createConnection({
    urls: (typeof options.url === 'string' ? [options.url] : options.url).map(withoutRegistryAtConnect),
    WebSocket: WebSocketImpl,
    reconnect: options.reconnect === false ? false : resolveReconnectOptions(options.reconnect),
    heartbeat,
    ping: () => encodeFrame(frame('transport:connection:heartbeat', { kind: 'ping' })),
    opened,
    frame: onFrame,
    dropped(info) {
      handshake = undefined
      status = info.willReconnect ? 'reconnecting' : 'closed'
      calls.rejectAll(info.reason === CLIENT_CLOSED
        ? new ClientError('closed', 'client closed before the answer')
        : new ClientError('disconnected', `connection lost before the answer (${info.code}${info.reason ? ` ${info.reason}` : ''})`))
      if (status === 'closed') {
        if (info.reason !== CLIENT_CLOSED)
          stoppedBy ??= new ClientError('not_connected', `connection lost (${info.code}${info.reason ? ` ${info.reason}` : ''}) and reconnect is off`)
        outbox.failAll(stoppedBy ?? new ClientError('closed', 'client closed'))
      }
      closeListeners.emit(info)
    },
    error: fail,
    reconnecting: info => reconnectListeners.emit(info),
  })

  function send(event: WireEvent): boolean {
    return connection.send(encodeFrame(event))
  }

  function frame(type: string, data: Record<string, unknown>, extra: Partial<WireEvent> = {}): WireEvent & { metadata: { event: { id: string } } } {
    return { type, data, ...extra, metadata: { event: { id: nextId(), ...extra.metadata?.event } } }
  }

  function changed(change: ModulesChange): void {
    if (!isEmptyChange(change))
      modulesListeners.emit(change)
  }

  function fail(error: Error): void {
    errorListeners.emit(error)
  }

  /** `module:authenticate`, asking for the registry capability: from the revision the view holds, if any. */
  function authenticateFrame(): ReturnType<typeof frame> {
    const since = view.position
    return frame('module:authenticate', {
      ...(options.token !== undefined && { token: options.token }),
      registry: mode === 'none' ? { mode } : { mode, ...(since && { since }) },
    })
  }

  function opened(): void {
    sockets++
    askedAt = undefined
    const authenticate = authenticateFrame()
    send(authenticate)
    let announce: string | undefined
    if (module) {
      const announced = frame('module:announce', { name: module.name, ...(module.index !== undefined && { index: module.index }), identity })
      send(announced)
      announce = announced.metadata.event.id
    }
    for (const type of responders.keys())
      send(frame('module:consumer:register', { event: type }))
    const ping = frame('transport:connection:heartbeat', { kind: 'ping', message: 'handshake' })
    send(ping)
    handshake = { authenticate: authenticate.metadata.event.id, announce, ping: ping.metadata.event.id }
  }

  /** A handshake frame answered: a refused token or announce ends the client, the pong opens it. */
  function handshakeAnswer(event: WireEvent, parentId: string): boolean {
    if (!handshake)
      return false
    if (event.type === 'error' && (parentId === handshake.authenticate || parentId === handshake.announce)) {
      const message = errorMessage(event)
      // Whatever the hub's wording (AIRI's server-runtime has its own), a refused authenticate is `unauthorized`.
      stoppedBy = parentId === handshake.authenticate ? new ClientError('unauthorized', message) : new ClientError('hub_error', `announce refused: ${message}`)
      fail(stoppedBy)
      handshake = undefined
      connection.drop(4001, message, true)
      return true
    }
    // Other answers to the authenticate (`module:authenticated`, and the sync AIRI's server-runtime
    // sends with its id) go on to the registry view.
    if (parentId === handshake.ping) {
      handshake = undefined
      status = 'open'
      // Calls that waited go first: they were made before anything an onOpen listener sends.
      outbox.flush()
      openListeners.emit({ reconnected: opens++ > 0 })
      return true
    }
    return false
  }

  function registry(event: WireEvent): boolean {
    switch (event.type) {
      case 'registry:modules:sync': {
        const sync = v.safeParse(Sync, event.data)
        if (sync.success && mode !== 'none')
          changed(view.replace(sync.output.modules, sync.output.epoch !== undefined && sync.output.revision !== undefined ? { epoch: sync.output.epoch, revision: sync.output.revision } : undefined))
        return true
      }
      case 'registry:modules:delta': {
        const delta = v.safeParse(Delta, event.data)
        if (delta.success && mode !== 'none') {
          const change = view.apply(delta.output)
          if (change === 'gap') {
            // Deltas of one connection come in order; should one not follow, ask again from what we
            // hold, once: the deltas that come before the answer do not follow either.
            if (askedAt?.position !== view.position) {
              askedAt = { position: view.position }
              send(authenticateFrame())
            }
          }
          else {
            changed(change)
          }
        }
        return true
      }
      case 'module:announced':
      case 'module:de-announced':
      case 'registry:modules:health:healthy':
      case 'registry:modules:health:unhealthy': {
        // AIRI's per-change events: what a hub without the delta capability sends.
        const module = v.safeParse(ModuleChange, event.data)
        if (module.success && mode !== 'none') {
          if (event.type === 'module:announced')
            changed(view.announced(module.output))
          else if (event.type === 'module:de-announced')
            changed(view.deannounced(module.output))
          else
            changed(view.health(module.output, event.type.endsWith(':healthy')))
        }
        return true
      }
    }
    // The hub's other handshake and registry events carry nothing the view needs.
    return event.type === 'module:authenticated' || event.type.startsWith('extension:') || event.type.startsWith('registry:')
  }

  async function serve(event: WireEvent, id: string): Promise<void> {
    const handler = responders.get(event.type)
    const socket = sockets
    let reply: string
    try {
      if (!handler)
        throw new Error(`no handler for ${event.type}`)
      const result: unknown = await handler(event.data, received(event))
      const data = result !== null && typeof result === 'object' && !Array.isArray(result) ? result as Record<string, unknown> : { value: result }
      // Encoded here: a reply that cannot be (a BigInt, a cycle) is an error reply, not an unhandled rejection.
      reply = encodeFrame(frame(event.type, data, { metadata: { event: { parentId: id } } }))
    }
    catch (error) {
      reply = encodeFrame(frame('error', { message: toError(error).message }, { metadata: { event: { parentId: id } } }))
    }
    // Asked on a socket since gone: the hub told the asker `responder gone`, and knows the id on no
    // other socket (it would route the reply as a new event, to everyone).
    if (socket === sockets)
      connection.send(reply)
  }

  function onFrame(text: string): void {
    const event = decodeFrame(text)
    if (!event)
      return
    const parentId = event.metadata?.event?.parentId
    if (parentId !== undefined) {
      if (handshakeAnswer(event, parentId))
        return
      const answered = calls.answer(parentId, (call) => {
        if (event.type === 'error')
          call.reject(errorFromEvent(errorMessage(event), fromHub(event)))
        else
          call.resolve(event)
      })
      if (answered)
        return
    }
    if (registry(event))
      return
    if (event.type === 'transport:connection:heartbeat') {
      if (event.data.kind === 'ping')
        send(frame('transport:connection:heartbeat', { kind: 'pong' }, { metadata: { event: { parentId: event.metadata?.event?.id } } }))
      return
    }
    if (event.type === 'error') {
      fail(errorFromEvent(errorMessage(event), fromHub(event)))
      return
    }
    const id = event.metadata?.event?.id
    if (event.route?.reply && id !== undefined) {
      void serve(event, id)
      return
    }
    for (const handler of [...handlers.get(event.type) ?? []])
      guarded(() => handler(event.data, received(event)), reported)
  }

  /** Sends now when open, else waits in the outbox; `answer` says whether to wait for an answer to the event, and how long. */
  function transmit(event: WireEvent & { metadata: { event: { id: string } } }, answer?: { timeoutMs: number, timeout: () => ClientError }): Promise<WireEvent | undefined> {
    return new Promise((resolve, reject) => {
      // Encoded at the call: data that cannot be (a BigInt, a cycle) rejects it here, not later in the outbox.
      const text = encodeFrame(event)
      const go = (): void => {
        // A socket already closing (its close not yet reported) takes nothing: the call waits for the next one.
        if (status !== 'open' || !connection.send(text)) {
          outbox.push(go, reject)
          return
        }
        // The answer comes in a later frame, never during `send`: waiting from here misses nothing.
        const answered = answer && calls.wait(event.metadata.event.id, answer.timeoutMs, answer.timeout)
        if (answered)
          answered.then(resolve, reject)
        else
          resolve(undefined)
      }
      if (status === 'closed')
        reject(stoppedBy ?? new ClientError('closed', 'client closed'))
      else
        go()
    })
  }

  return {
    get status() {
      return status
    },
    modules: view.modules,
    find: view.find,
    on(type, handler) {
      let set = handlers.get(type)
      if (!set)
        handlers.set(type, set = new Set())
      set.add(handler)
      return () => off(type, handler)
    },
    off,
    async emit(type, data, emitOptions = {}) {
      const route = { ...(emitOptions.to !== undefined && { destinations: destinations(emitOptions.to) }), ...(emitOptions.ack && { ack: true }) }
      const event = frame(type, data, Object.keys(route).length > 0 ? { route } : {})
      if (!emitOptions.ack) {
        await transmit(event)
        return {}
      }
      const ack = await transmit(event, { timeoutMs: requestTimeoutMs, timeout: () => new ClientError('timeout', 'no ack in time') })
      return { delivered: Number(ack?.data.delivered) }
    },
    async request(type, data, requestOptions = {}) {
      const timeoutMs = checkedMs('timeoutMs', requestOptions.timeoutMs ?? requestTimeoutMs, 1, MAX_TIMER_MS - LOCAL_TIMEOUT_GRACE_MS)
      const to = destinations(requestOptions.to)
      const route = { ...(to ? { destinations: to } : { delivery: { mode: 'consumer', required: true } }), reply: { timeoutMs } }
      const reply = await transmit(frame(type, data, { route }), { timeoutMs: timeoutMs + LOCAL_TIMEOUT_GRACE_MS, timeout: () => new ClientError('timeout', 'request timed out') })
      return reply!.data as any
    },
    respond(type, handler) {
      const first = !responders.has(type)
      responders.set(type, handler)
      // Sent on an open socket even mid-handshake (after the handshake's own registrations); without one, the next handshake sends it.
      if (first)
        send(frame('module:consumer:register', { event: type }))
      return () => {
        if (responders.get(type) !== handler)
          return
        responders.delete(type)
        send(frame('module:consumer:unregister', { event: type }))
      }
    },
    onModules: modulesListeners.add,
    onOpen: openListeners.add,
    onClose: closeListeners.add,
    onError: errorListeners.add,
    onReconnect: reconnectListeners.add,
    close() {
      if (status === 'closed')
        return
      connection.close()
      if ((status as ClientStatus) !== 'closed') {
        // No socket was open (waiting to retry): nothing reported the close yet.
        status = 'closed'
        outbox.failAll(new ClientError('closed', 'client closed'))
      }
    },
  }
}
