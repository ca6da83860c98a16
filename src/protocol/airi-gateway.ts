import type { Gateway } from './gateway.ts'
import * as v from 'valibot'
import { HubError } from '../errors.ts'
import { airiCurrentEncoder, airiEncoder, eventIdOfFrame, handleAiriFrame, RegistryMode } from './airi.ts'
import { defineGateway } from './gateway.ts'

export interface AiriGatewayOptions {
  /**
   * Path of the native (AIRI) WebSocket endpoint.
   * @default '/ws'
   */
  path?: string
}

export const DEFAULT_AIRI_PATH = '/ws'

/** The events the hub itself handles on this protocol. */
const AIRI_EVENTS = [
  'module:authenticate',
  'module:announce',
  'extension:module:announce',
  'peer:authenticate',
  'extension:authenticate',
  'extension:announce',
  'ui:configure',
  'module:consumer:register',
  'module:consumer:unregister',
  'transport:connection:heartbeat',
]

/** The native AIRI endpoint (all three client generations): one hub session per socket. */
export function airiGateway({ path = DEFAULT_AIRI_PATH }: AiriGatewayOptions = {}): Gateway {
  return defineGateway({
    name: 'airi',
    paths: [path],
    events: AIRI_EVENTS,
    // AIRI clients authenticate in-band (`module:authenticate`); a token at the upgrade must be good.
    auth: { inBand: true, status: 401 },
    // `?registry=delta|none`: how the peer hears the registry from its connection on (a bot that wants none of it never gets a sync).
    upgrade(request) {
      const mode = new URL(request.url).searchParams.get('registry')
      if (mode !== null && !v.is(RegistryMode, mode))
        return new Response('registry must be delta or none', { status: 400 })
    },
    open(socket) {
      const { hub } = socket
      const mode = socket.query.get('registry')
      const registry = v.is(RegistryMode, mode) ? { mode } : undefined
      // A peer that asks for the registry its way is of the current generation (identities as announced).
      const session = socket.connect(socket.connection(registry ? airiCurrentEncoder : airiEncoder), registry && { registry })
      return {
        message: text => handleAiriFrame(hub, session, text),
        rateLimited: text => session.connection.fail(hub.refuse(session, new HubError('rate_limited', 'rate limited')), eventIdOfFrame(text)),
      }
    },
  })
}
