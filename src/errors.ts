/** Every failure the hub reports; each protocol maps the code to its own wire form. */
export type HubErrorCode
  = | 'invalid_json'
    | 'invalid_event'
    | 'invalid_token'
    | 'not_authenticated'
    | 'module_not_found'
    | 'module_forbidden'
    | 'rate_limited'
    | 'limit_exceeded'
    | 'reserved_event'
    | 'reserved_identity'
    | 'undeliverable'
    | 'no_consumer'
    | 'no_responder'
    | 'request_timeout'
    | 'responder_gone'
    | 'invalid_option'

export class HubError extends Error {
  override readonly name = 'HubError'
  /** The id of the peer's event that caused it, when it had one (a frame that failed to decode). */
  readonly parentId?: string
  constructor(readonly code: HubErrorCode, message: string, options?: ErrorOptions & { parentId?: string }) {
    super(message, options)
    this.parentId = options?.parentId
  }
}

/** Where a swallowed error happened; passed to `onError` with it. */
export type ErrorStage = 'decode' | 'middleware' | 'deliver' | 'hook' | 'heartbeat' | 'close' | 'backplane'
