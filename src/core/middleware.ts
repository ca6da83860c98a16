import type { HubEvent, PeerInfo } from '../types.ts'

/** What a routing middleware sees of one event on its way through the hub. */
export interface RouteContext {
  /** The event as it will be delivered; replace it to rewrite the event. */
  event: HubEvent
  readonly sender: PeerInfo
  /** Recipients chosen by destinations and policy. Middleware may only narrow this list. */
  recipients: PeerInfo[]
  /** Stops the event: nobody receives it. */
  drop: () => void
  readonly dropped: boolean
  /**
   * Set when the hub only explains where the event would go (`hub.explain`, the dashboard):
   * nothing is delivered. A middleware with side effects (counting, logging, calling out)
   * should skip them then and still narrow or drop as it would; one that does not call
   * `next()` is taken to exclude every recipient it was given.
   */
  readonly explain?: true
}

export type Next = () => void | Promise<void>
export type RoutingMiddleware = (context: RouteContext, next: Next) => void | Promise<void>

/** Types a routing middleware; call `next()` to pass the event on. */
export function defineMiddleware(middleware: RoutingMiddleware): RoutingMiddleware {
  return middleware
}

/**
 * Composes middleware into one onion, built once. Stays synchronous unless a middleware
 * returns a promise, so the common path allocates no promises.
 */
export function composeMiddleware(
  middleware: readonly RoutingMiddleware[],
): (context: RouteContext, final: Next) => void | Promise<void> {
  return (context, final) => {
    let last = -1
    const dispatch = (i: number): void | Promise<void> => {
      if (i <= last)
        throw new Error('next() called more than once')
      last = i
      if (context.dropped)
        return
      const current = middleware[i]
      if (!current)
        return final()
      return current(context, () => dispatch(i + 1))
    }
    return dispatch(0)
  }
}
