import type { HubEvent, Identity, StampedSource } from '../types.ts'
import type { Observers } from './observers.ts'
import type { Receipts } from './receipts.ts'
import type { Refusals } from './refusals.ts'
import type { Registry } from './registry.ts'
import type { Requests } from './requests.ts'
import type { Pick, Router } from './router.ts'
import type { Session } from './session.ts'
import { nanoid } from 'nanoid'
import { HubError } from '../errors.ts'
import { perIdentity, stampedSource } from './event.ts'

export interface PublishOptions {
  router: Router
  registry: Registry
  peers: ReadonlyMap<string, Session>
  refusals: Refusals
  requests: Requests
  receipts: Receipts
  observers: Observers
  /** Sends an event to some peers of another node (clustered only). */
  forward?: (node: string, event: HubEvent, peerIds: string[]) => void
  /** A hub-originated event answering `parentId`. */
  createEvent: (type: string, data: Record<string, unknown>, parentId?: string) => HubEvent
}

export interface Publish {
  /** Routes an event from an authenticated peer; the number of recipients, or the refusal. */
  publish: (session: Session, event: HubEvent) => number | Promise<number> | HubError
  /** Delivers `module:configure` to a module found by name (and index), or by its instance id; the refusal when there is none. */
  configure: (session: Session, target: { moduleName?: string, moduleIndex?: number, instanceId?: string, config: unknown }, parentId?: string) => HubError | undefined
}

/** What peers send into the hub for others: routed events, and configuration for a module. */
export function createPublish(options: PublishOptions): Publish {
  const { router, registry, peers, refusals, requests, receipts, observers, forward, createEvent } = options
  const sourceOf = perIdentity(stampedSource)

  function sourceOfSender(session: Session, claimed: unknown): StampedSource {
    const { modules } = session
    // A peer without modules (an AIRI extension peer between its handshake and its modules) is
    // named by its own identity, else anonymous by its alias or id.
    if (modules.length === 0)
      return session.identity ? sourceOf(session.identity) : stampedSource(anonymous(session))
    const claimedId = modules.length > 1 ? (claimed as { id?: unknown } | undefined)?.id : undefined
    const named = typeof claimedId === 'string' ? modules.find(entry => entry.identity.instanceId === claimedId) : undefined
    return sourceOf((named ?? modules[0]!).identity)
  }

  return {
    publish(session, event) {
      const unauthenticated = refusals.requireAuth(session)
      if (unauthenticated)
        return unauthenticated
      // The registry is authoritative: the hub stamps the sender's source, whatever it claimed;
      // a peer of several modules may name which of its own sends (by the claimed source's id).
      const source = sourceOfSender(session, event.metadata?.source)
      event.metadata = { ...event.metadata, source, event: { ...event.metadata?.event, id: event.metadata?.event?.id ?? nanoid() } }
      // A reply goes to its requester only; a responder may answer with an `error`, reserved otherwise.
      const replied = requests.reply(session, event)
      if (replied !== undefined)
        return replied
      const refused = refusals.ofType(event.type)
      if (refused)
        return refusals.refuse(session, refused)
      const request = event.route?.reply !== undefined
      if (request) {
        const refused = requests.check(session, event)
        if (refused)
          return refusals.refuse(session, refused)
      }
      // Routing asks for the one responder once it knows the recipients; a middleware that drops
      // the event (or fails) never asks: the requester still hears `no responder`.
      let picked = false
      const pick: Pick | undefined = request
        ? (recipients) => {
            picked = true
            return requests.open(session, event, recipients)
          }
        : undefined
      const ack = event.route?.ack === true
      if (ack)
        receipts.track(session, event)
      const observed = observers.has('routed')
      if (!observed && !ack && !request)
        return router.route(session, event)
      const started = performance.now()
      const done = (delivered: number): number => {
        if (request && !picked)
          requests.open(session, event, new Set())
        if (observed)
          observers.emit('routed', event.type, delivered, (performance.now() - started) / 1000)
        if (ack)
          receipts.routed(event, delivered)
        return delivered
      }
      const delivered = router.route(session, event, pick)
      return delivered instanceof Promise ? delivered.then(done) : done(delivered)
    },

    configure(session, { moduleName, moduleIndex, instanceId, config }, parentId) {
      const unauthenticated = refusals.requireAuth(session)
      if (unauthenticated)
        return unauthenticated
      const target = instanceId === undefined
        ? registry.find(moduleName!, moduleIndex)
        : [...registry.lookup('instance', instanceId)].find(entry => (moduleName === undefined || entry.name === moduleName) && (moduleIndex === undefined || entry.index === moduleIndex))
      if (target?.node !== undefined && forward) {
        forward(target.node, createEvent('module:configure', { config }, parentId), [target.peerId])
        return
      }
      const targetSession = target && peers.get(target.peerId)
      if (!targetSession)
        return refusals.refuse(session, new HubError('module_not_found', 'module not found, it hasn\'t announced itself or the name is incorrect'))
      router.deliver(createEvent('module:configure', { config }, parentId), [targetSession])
    },
  }
}

function anonymous(session: Session): Identity {
  return { pluginId: 'anonymous', instanceId: session.aliases?.values().next().value ?? session.id, labels: {} }
}
