import type { Hub } from '../hub.ts'
import * as v from 'valibot'
import { checkRoutes } from '../core/bounds.ts'
import { ExplainRequestSchema } from '../core/explain.ts'
import { HubError } from '../errors.ts'

const answer = (body: unknown, status = 200): Response => Response.json(body, { status, headers: { 'cache-control': 'no-store' } })
const badRequest = (message: string): Response => answer({ error: message }, 400)

/**
 * The body as text, or undefined past `max` bytes. Never cancels the body: a cancelled request
 * body destroys its socket under the response, which listhen's shutdown tracking does not survive.
 */
async function readBody(request: Request, max: number): Promise<string | undefined> {
  if (Number(request.headers.get('content-length') ?? 0) > max)
    return undefined
  if (!request.body)
    return ''
  const reader = request.body.getReader()
  const decoder = new TextDecoder()
  let size = 0
  let text = ''
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    size += chunk.value.byteLength
    if (size > max) {
      reader.releaseLock()
      return undefined
    }
    text += decoder.decode(chunk.value, { stream: true })
  }
  return text + decoder.decode()
}

/** Where a valibot issue is, as `event.route.destinations.0`. */
function where(issue: v.BaseIssue<unknown>): string {
  const path = issue.path?.map(item => String(item.key)).join('.')
  return path ? ` at ${path}` : ''
}

/**
 * `POST <path>/api/explain`: a JSON `ExplainRequest` (at most `limits.maxPayloadBytes`) →
 * `hub.explain()`'s answer as JSON; a body that is not JSON, not a request, or that the hub
 * refuses (an unknown sender, a bad route) is answered 400 with a message saying why.
 */
export function createExplainHandler(hub: Hub): (request: Request) => Promise<Response> {
  const max = hub.options.limits.maxPayloadBytes
  return async (request) => {
    const text = await readBody(request, max)
    if (text === undefined)
      return Response.json({ error: `The body is over ${max} bytes` }, { status: 413, headers: { 'cache-control': 'no-store', 'connection': 'close' } })
    let body: unknown
    try {
      body = JSON.parse(text)
    }
    catch {
      return badRequest('The body must be JSON: {"from"?: "<peer id or module>", "event": {"type": "…", "data"?: {…}, "route"?: {…}}}')
    }
    // Route expressions are measured before the schema recurses into them (a deep one would overflow the stack).
    const exceeded = checkRoutes((body as { event?: unknown } | null)?.event, hub.options.limits)
    if (exceeded)
      return badRequest(`limit exceeded: ${exceeded}`)
    const parsed = v.safeParse(ExplainRequestSchema, body)
    if (!parsed.success)
      return badRequest(`Invalid explain request: ${parsed.issues[0].message}${where(parsed.issues[0])}`)
    const result = await hub.explain(parsed.output)
    return result instanceof HubError ? badRequest(result.message) : answer(result)
  }
}
