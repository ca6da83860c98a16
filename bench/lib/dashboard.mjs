// `--dashboard`: one dashboard page's live stream held open on the hub for a scenario's whole run,
// read as the page reads it, so that the figures show what an open page costs the hub.

/** Opens `<path>/api/stream` of the hub at `port`; `close()` ends it and tells how much it read. */
export async function openDashboardStream(port, token, path = '/dashboard') {
  const controller = new AbortController()
  const response = await fetch(`http://127.0.0.1:${port}${path}/api/stream`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal })
  if (!response.ok)
    throw new Error(`dashboard stream: HTTP ${response.status}`)
  let bytes = 0
  let batches = 0
  const reading = (async () => {
    try {
      for await (const chunk of response.body) {
        bytes += chunk.byteLength
        batches++
      }
    }
    catch {} // aborted
  })()
  return {
    async close() {
      controller.abort()
      await reading
      return { bytes, batches }
    },
  }
}
