/** Every failure the hub reports; each protocol maps the code to its own wire form. */
export type HubErrorCode
  = | 'invalid_json'
    | 'invalid_event'
    | 'invalid_token'
    | 'not_authenticated'
    | 'module_not_found'
    | 'module_forbidden'
    | 'payload_too_large'
    | 'rate_limited'
    | 'invalid_option'
    | 'internal'

export class HubError extends Error {
  override readonly name = 'HubError'
  constructor(readonly code: HubErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
  }
}

/** Where a swallowed error happened; passed to `onError` with it. */
export type ErrorStage = 'decode' | 'middleware' | 'deliver' | 'hook' | 'heartbeat' | 'close' | 'backplane'
