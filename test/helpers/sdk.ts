import type { WireEvent } from './hub.ts'
import { Client } from '@proj-airi/server-sdk'
import { onCleanup } from './hub.ts'

export interface SdkClient {
  client: Client
  received: WireEvent[]
  /** Resolves with the first received event matching `predicate` (searching all received so far). */
  waitFor: (predicate: (event: WireEvent) => boolean, timeoutMs?: number) => Promise<WireEvent>
  /** Received events of one type. */
  ofType: (type: string) => WireEvent[]
}

/** A real `@proj-airi/server-sdk@0.8.4` client that records every event it receives. */
export function sdkClient(url: string, name: string, options: { token?: string, labels?: Record<string, string> } = {}): SdkClient {
  const received: WireEvent[] = []
  const client = new Client({
    name,
    url,
    token: options.token,
    identity: { plugin: name, instanceId: `${name}-instance`, labels: options.labels },
    autoReconnect: false,
    onAnyMessage: event => received.push(event as WireEvent),
  })
  onCleanup(() => client.close())
  const waitFor = async (predicate: (event: WireEvent) => boolean, timeoutMs = 5000): Promise<WireEvent> => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const found = received.find(predicate)
      if (found)
        return found
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    throw new Error(`${name} timed out; received: ${received.map(e => e.type).join(', ')}`)
  }
  const ofType = (type: string): WireEvent[] => received.filter(event => event.type === type)
  return { client, received, waitFor, ofType }
}

/** Matches a `registry:modules:sync` that lists every one of `names`. */
export function syncListing(names: string[]) {
  return (event: WireEvent) =>
    event.type === 'registry:modules:sync'
    && names.every(name => event.data.modules.some((m: { name: string }) => m.name === name))
}
