/**
 * Why a client call failed:
 * - `no_responder`, `timeout`, `responder_gone`: the hub's answer to a request (its message kept);
 * - `error_reply`: the responder answered with an error (its message kept);
 * - `hub_error`: the hub refused the call (`limit exceeded: …`, `invalid event format`, …);
 * - `unauthorized`: the hub refused the token; the client stops, and its waiting and later calls fail with this;
 * - `disconnected`: the connection dropped while the call waited for its answer;
 * - `not_connected`: the call could not wait for a connection (queue off, full, or waited too long,
 *   or the connection ended with `reconnect: false`);
 * - `closed`: `client.close()` was called.
 */
export type ClientErrorCode
  = | 'no_responder'
    | 'timeout'
    | 'responder_gone'
    | 'error_reply'
    | 'hub_error'
    | 'unauthorized'
    | 'disconnected'
    | 'not_connected'
    | 'closed'

/** The one error type a client call rejects with; `code` says why, `message` is readable. */
export class ClientError extends Error {
  override readonly name = 'ClientError'

  /** `code` says why (see `ClientErrorCode`); `message` is for people. */
  constructor(readonly code: ClientErrorCode, message: string) {
    super(message)
  }
}

const HUB_REQUEST_ERRORS: Record<string, ClientErrorCode> = {
  'no responder': 'no_responder',
  'request timed out': 'timeout',
  'responder gone': 'responder_gone',
  'invalid token': 'unauthorized',
}

/** The error an `error {message}` event answering a call stands for; `fromHub` tells the hub's own errors from a responder's. */
export function errorFromEvent(message: string, fromHub: boolean): ClientError {
  if (!fromHub)
    return new ClientError('error_reply', message)
  return new ClientError(HUB_REQUEST_ERRORS[message] ?? 'hub_error', message)
}

/** What was thrown, as an Error: a thrown string, number or object keeps what it says (`String()` of some objects throws). */
export function toError(value: unknown): Error {
  if (value instanceof Error)
    return value
  if (typeof value === 'object' && value !== null)
    return new Error(Object.prototype.toString.call(value))
  return new Error(String(value))
}
