import type { Session } from '../core/session.ts'
import type { Hub } from '../hub.ts'
import { nanoid } from 'nanoid'
import * as v from 'valibot'
import { HubError } from '../errors.ts'

// Layr8 agents (`layr8/node-sdk`) on a Phoenix channel `plugins:<did>`: DIDComm messages go to
// the agents their `to` names, in the envelope a Layr8 cloud-node delivers, and an agent's
// `ack {ids}` goes back to the senders of those messages. The module name of a Layr8 channel
// is its DID. The SDK's `request()` waits for a message with its `thid`, which the responder's
// SDK addresses `to: [from]`: a reply is routed like any message, so the hub keeps no thread.

/** The topic prefix of Layr8 channels (the SDK joins `plugins:<did>`, or `plugins:` for a DID of the hub's). */
export const LAYR8_TOPIC = 'plugins'

/** What a Layr8 channel pushes: a DIDComm message (plaintext), and the receipts of those it got. */
export const LAYR8_EVENTS = { message: 'message', ack: 'ack' } as const

const Did = v.pipe(v.string(), v.minLength(1))

/** A DIDComm plaintext message as the SDK's `marshalDIDComm` writes it; other fields ride along. */
const Message = v.looseObject({
  id: Did,
  type: v.string(),
  from: v.optional(v.string()),
  to: v.union([Did, v.array(Did)]),
  thid: v.optional(v.string()),
  pthid: v.optional(v.string()),
})

/** The SDK's `sendAck(ids)`. */
const Ack = v.object({ ids: v.array(Did) })

/**
 * A DID of the hub's for an agent that joined `plugins:` without one: `did:web:<host>:<random>`,
 * the host as `did:web` writes it (its port's `:` percent-encoded).
 */
export function assignDid(host: string): string {
  return `did:web:${encodeURIComponent(host)}:${nanoid()}`
}

/** Messages a channel got, by id → their sender's DID, so its acks find the sender; the oldest is forgotten past it. */
export const MAX_REMEMBERED_MESSAGES = 4096

/** One Layr8 channel: the messages it received, for its acks. */
export interface Layr8Inbox {
  /** A push on its way to the channel (`"type",data]`): a `message` is remembered by id. */
  delivered: (tail: string) => void
  /** Takes the remembered ids among `ids`, grouped by sender DID. */
  take: (ids: readonly string[]) => Map<string, string[]>
}

const MESSAGE_TAIL = `${JSON.stringify(LAYR8_EVENTS.message)},`

/**
 * `maxIdLength`: the longest id and sender DID it remembers (`limits.maxNameLength`). Anyone
 * may route a `message` to an agent, naming any id: a longer one is delivered, not remembered,
 * so what an inbox holds is bounded whatever it is sent.
 */
export function createLayr8Inbox(maxIdLength: number): Layr8Inbox {
  const senders = new Map<string, string>()
  return {
    delivered(tail) {
      if (!tail.startsWith(MESSAGE_TAIL))
        return
      // The router hands the channel encoded text only; a message is read back to learn its id
      // and sender, at the cost of one parse of a frame within the payload limit.
      let plaintext: unknown
      try {
        plaintext = (JSON.parse(tail.slice(MESSAGE_TAIL.length, -1)) as { plaintext?: unknown }).plaintext
      }
      catch {
        return
      }
      const { id, from } = (plaintext ?? {}) as { id?: unknown, from?: unknown }
      if (typeof id !== 'string' || typeof from !== 'string' || id.length > maxIdLength || from.length > maxIdLength)
        return
      senders.delete(id)
      if (senders.size >= MAX_REMEMBERED_MESSAGES)
        senders.delete(senders.keys().next().value!)
      senders.set(id, from)
    },
    take(ids) {
      const bySender = new Map<string, string[]>()
      for (const id of ids) {
        const sender = senders.get(id)
        if (sender === undefined)
          continue
        senders.delete(id)
        const group = bySender.get(sender)
        if (group)
          group.push(id)
        else
          bySender.set(sender, [id])
      }
      return bySender
    },
  }
}

/** How a Layr8 push ended: delivered to `n` peers, or refused with a reason for its `phx_reply`. */
export type Layr8Outcome = { delivered: number } | { reason: string }

/** Sums what each publish delivered; a refusal or failure ends it with its reason. */
async function publishAll(hub: Hub, session: Session, events: Parameters<Hub['publish']>[1][]): Promise<Layr8Outcome> {
  let delivered = 0
  for (const event of events) {
    let result: number | HubError
    try {
      result = await hub.publish(session, event)
    }
    catch (cause) {
      hub.report(cause, { stage: 'deliver', peerId: session.id })
      return { reason: 'internal error' }
    }
    if (result instanceof HubError)
      return { reason: result.message }
    delivered += result
  }
  return { delivered }
}

/**
 * A `message` push from agent `did`: one event per recipient DID in `to`, delivered as the
 * cloud-node does, `message {context: {recipient, authorized: true, sender_credentials: []},
 * plaintext}`, to the modules of that name on any node. `no route` when it reached nobody.
 */
export async function routeMessage(hub: Hub, session: Session, did: string, payload: unknown): Promise<Layr8Outcome> {
  const parsed = v.safeParse(Message, payload)
  if (!parsed.success)
    return { reason: 'invalid payload: expected a DIDComm message {id, type, to, from?, thid?, body?}' }
  const message = parsed.output
  // An agent speaks for its own DID only.
  if (message.from !== undefined && message.from !== '' && message.from !== did)
    return { reason: 'from is not this channel\'s DID' }
  const plaintext = { ...message, from: did }
  const recipients = [...new Set(typeof message.to === 'string' ? [message.to] : message.to)]
  const { maxDestinations, maxNameLength } = hub.options.limits
  if (recipients.length === 0)
    return { reason: 'no route' }
  // Counted and logged as any refusal; an id past the names' limit would be held, unacked, by each recipient's inbox.
  const exceeded = recipients.length > maxDestinations ? 'destinations' : message.id.length > maxNameLength ? 'message id' : undefined
  if (exceeded)
    return { reason: hub.refuse(session, new HubError('limit_exceeded', `limit exceeded: ${exceeded}`)).message }
  const outcome = await publishAll(hub, session, recipients.map(recipient => ({
    type: LAYR8_EVENTS.message,
    data: { context: { recipient, authorized: true, sender_credentials: [] }, plaintext },
    route: { destinations: [`module:${recipient}`] },
  })))
  return 'delivered' in outcome && outcome.delivered === 0 ? { reason: 'no route' } : outcome
}

/**
 * An `ack {ids}` push from agent `did`: a delivery receipt `ack {ids, from: did}` to the sender
 * of each id it received (ids it did not receive are ignored), never a broadcast.
 */
export async function routeAck(hub: Hub, session: Session, did: string, inbox: Layr8Inbox, payload: unknown): Promise<Layr8Outcome> {
  const parsed = v.safeParse(Ack, payload)
  if (!parsed.success)
    return { reason: 'invalid payload: expected {ids: [message id]}' }
  return publishAll(hub, session, [...inbox.take(parsed.output.ids)].map(([sender, ids]) => ({
    type: LAYR8_EVENTS.ack,
    data: { ids, from: did },
    route: { destinations: [`module:${sender}`] },
  })))
}
