import type { Gateway } from 'hub-server'
import { defineGateway } from 'hub-server'

/**
 * A line protocol on `/lines`: every text frame is one JSON object `{"type", "data"}`.
 * `{"type":"announce","data":{"name":"notes"}}` puts the socket in the registry as module
 * `notes`; any other line is published into the hub and answered `{"ok":true,"delivered":n}`
 * or `{"ok":false,"error":"…"}`. What the hub sends comes back as `{"type","data"}` lines.
 */
export function lineGateway(path = '/lines'): Gateway {
  return defineGateway({
    name: 'lines',
    paths: [path],
    // The token comes with the upgrade (`?token=` or `Authorization: Bearer`), or the socket is refused.
    auth: { status: 401 },
    open(socket) {
      const { hub } = socket
      const session = socket.connect(socket.connection({
        encode: event => JSON.stringify({ type: event.type, data: event.data }),
      }))
      const answer = (line: object): void => socket.write(JSON.stringify(line))
      return {
        async message(text) {
          let line: { type?: unknown, data?: unknown }
          try {
            line = JSON.parse(text)
          }
          catch {
            return answer({ ok: false, error: 'invalid JSON' })
          }
          const { type, data } = line
          if (typeof type !== 'string' || typeof data !== 'object' || data === null || Array.isArray(data))
            return answer({ ok: false, error: 'expected {"type": string, "data": object}' })
          if (type === 'announce') {
            const name = String((data as { name?: unknown }).name ?? '')
            if (name === '')
              return answer({ ok: false, error: 'no name' })
            const identity = { pluginId: name, instanceId: session.id, labels: { protocol: 'lines' } }
            const refused = hub.announce(session, { name, identity })
            return answer(refused ? { ok: false, error: refused.message } : { ok: true })
          }
          const refused = hub.refusal({ type, data })
          if (refused)
            return answer({ ok: false, error: refused.message })
          const delivered = await hub.publish(session, { type, data: data as Record<string, unknown> })
          answer(typeof delivered === 'number' ? { ok: true, delivered } : { ok: false, error: delivered.message })
        },
        rateLimited: () => answer({ ok: false, error: 'rate limited' }),
      }
    },
  })
}
