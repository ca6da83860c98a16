import type { HubEvent } from '../types.ts'
import type { Session } from './session.ts'
import { nanoid } from 'nanoid'

export interface ReceiptsOptions {
  /** Sends a hub-originated event to one peer. */
  send: (session: Session, type: string, data: Record<string, unknown>, parentId?: string) => void
  /** How long the sender's node waits for the counts of the other nodes it forwarded to; a node silent that long counts 0. */
  waitMs: number
}

/** Delivery receipts (`route.ack`): the sender learns how many peers, on every node, its event reached. */
export interface Receipts {
  /** `sender` asked for a receipt of `event` (its id stamped): count its recipients from now. */
  track: (sender: Session, event: HubEvent) => void
  /** Routing forwarded the event to `count` peers of `node`: the token that node answers with, if a receipt is counted. */
  forwarded: (event: HubEvent, node: string, count: number) => string | undefined
  /** Routing is done; `delivered` counts the forwarded peers too (the other nodes' answers replace them). */
  routed: (event: HubEvent, delivered: number) => void
  /** Another node delivered the event of `token` to `delivered` of its peers. */
  answer: (node: string, token: string, delivered: number) => void
  stop: () => void
}

interface Receipt {
  sender: Session
  id: string
  token: string
  /** Peers counted so far: this node's, then each answer's. */
  delivered: number
  /** Peers forwarded to other nodes: not counted until they answer. */
  forwarded: number
  /** Nodes yet to answer. */
  nodes: Set<string>
  routed: boolean
  timer?: ReturnType<typeof setTimeout>
}

export function createReceipts(options: ReceiptsOptions): Receipts {
  const { send, waitMs } = options
  // By event id while it is routed, by token until the other nodes answered.
  const routing = new Map<string, Receipt>()
  const waiting = new Map<string, Receipt>()

  function finish(receipt: Receipt): void {
    clearTimeout(receipt.timer)
    waiting.delete(receipt.token)
    if (receipt.sender.state !== 'closed')
      send(receipt.sender, 'event:ack', { delivered: receipt.delivered }, receipt.id)
  }

  return {
    track(sender, event) {
      const id = event.metadata!.event!.id!
      routing.set(id, { sender, id, token: nanoid(), delivered: 0, forwarded: 0, nodes: new Set(), routed: false })
    },

    forwarded(event, node, count) {
      const receipt = routing.get(event.metadata?.event?.id ?? '')
      if (!receipt)
        return undefined
      receipt.forwarded += count
      receipt.nodes.add(node)
      waiting.set(receipt.token, receipt)
      return receipt.token
    },

    routed(event, delivered) {
      const id = event.metadata!.event!.id!
      const receipt = routing.get(id)
      if (!receipt)
        return
      routing.delete(id)
      receipt.routed = true
      receipt.delivered += delivered - receipt.forwarded
      if (receipt.nodes.size === 0)
        return finish(receipt)
      receipt.timer = setTimeout(finish, waitMs, receipt)
      receipt.timer.unref?.()
    },

    answer(node, token, delivered) {
      const receipt = waiting.get(token)
      if (!receipt?.nodes.delete(node))
        return
      receipt.delivered += delivered
      if (receipt.routed && receipt.nodes.size === 0)
        finish(receipt)
    },

    stop() {
      for (const receipt of waiting.values())
        clearTimeout(receipt.timer)
      waiting.clear()
      routing.clear()
    },
  }
}
