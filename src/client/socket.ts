/** The part of a WebSocket the client uses: the browser's `WebSocket`, Node 22's global, or `ws`. */
export interface WebSocketLike {
  /** 0 connecting, 1 open (`OPEN`), 2 closing, 3 closed. */
  readonly readyState: number
  /** Sends one text frame. */
  send: (data: string) => void
  /** Closes the socket (codes 1000 or 3000–4999 only, in browsers). */
  close: (code?: number, reason?: string) => void
  /** `ws` only: destroys the socket at once (used when the hub does not answer a close). */
  terminate?: () => void
  // The handlers take `any`: each implementation types its own event objects (the DOM's, `ws`'s), and
  // the client reads only `data` of a message and `code` / `reason` of a close.
  onopen: ((event: any) => void) | null
  onmessage: ((event: any) => void) | null
  onclose: ((event: any) => void) | null
  onerror: ((event: any) => void) | null
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `WebSocket` from `ws` in Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike

/** `WebSocket.OPEN`, the same in every implementation. */
export const OPEN = 1
