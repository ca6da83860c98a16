import type { Hub } from '../hub.ts'
import type { DashboardStats } from './stats.ts'
import type { TopologyView } from './view.ts'

/** Changes reach open pages in batches at most this often (ms): a burst of announcements is one batch. */
export const DASHBOARD_BATCH_MS = 250
/** Rates are sampled this often (ms) while a page is open. */
const SAMPLE_MS = 1000

export interface DashboardStreams {
  /** A page's live stream (server-sent events): a `snapshot`, then `update` batches; `who` names it in log lines. */
  open: (who: string) => Response
  /** Ends every page's stream (the hub is closing). */
  close: () => void
}

interface Page {
  who: string
  /** Joined since the last batch: it gets a snapshot instead. */
  fresh: boolean
  controller: ReadableStreamDefaultController<Uint8Array>
}

const encoder = new TextEncoder()
const frame = (event: string, data: unknown): Uint8Array => encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)

/**
 * The pages' live streams. Nothing runs while no page is open; the first one subscribes to
 * the hub's `topology` observation and starts the rate sampling, the last one stops both.
 * A change marks the view dirty and schedules one batch (at most every `DASHBOARD_BATCH_MS`):
 * the module rows are diffed once and the same bytes go to every page. A page that does not
 * read, past `maxBufferedBytes` queued, is dropped like any slow consumer.
 */
export function createDashboardStreams(hub: Hub, view: TopologyView, stats: DashboardStats): DashboardStreams {
  const { logger, limits } = hub.options
  const pages = new Set<Page>()
  let dirty = false
  let sampled: ReturnType<DashboardStats['sample']> | undefined
  let lastRecord = 0
  let lastBatch = 0
  let batchTimer: ReturnType<typeof setTimeout> | undefined
  let sampleTimer: ReturnType<typeof setInterval> | undefined
  let unsubscribe: (() => void) | undefined

  function schedule(): void {
    if (batchTimer || pages.size === 0)
      return
    batchTimer = setTimeout(batch, Math.max(0, lastBatch + DASHBOARD_BATCH_MS - Date.now()))
    batchTimer.unref?.()
  }

  function send(page: Page, bytes: Uint8Array): void {
    if ((page.controller.desiredSize ?? 0) < 0) {
      logger.warn(`dashboard page ${page.who} is not reading (over ${limits.maxBufferedBytes} bytes unsent): dropping it`)
      hub.observers.emit('error', 'slow_consumer')
      return leave(page, true)
    }
    page.controller.enqueue(bytes)
  }

  function batch(): void {
    batchTimer = undefined
    lastBatch = Date.now()
    if (pages.size === 0)
      return
    const update: Record<string, unknown> = {}
    if (dirty) {
      dirty = false
      update.topology = view.topology()
      const modules = view.changes()
      if (modules.upsert.length > 0 || modules.remove.length > 0)
        update.modules = modules
    }
    if (sampled) {
      update.sample = sampled
      sampled = undefined
    }
    if (stats.last > lastRecord) {
      Object.assign(update, stats.since(lastRecord))
      lastRecord = stats.last
    }
    const fresh = [...pages].filter(page => page.fresh)
    if (fresh.length > 0) {
      const snapshot = frame('snapshot', {
        topology: update.topology ?? view.topology(),
        modules: view.rows(),
        history: stats.history(),
        errors: stats.recentErrors(),
        closes: stats.recentCloses(),
      })
      for (const page of fresh) {
        page.fresh = false
        send(page, snapshot)
      }
    }
    if (Object.keys(update).length === 0)
      return
    const bytes = frame('update', update)
    for (const page of pages) {
      if (!fresh.includes(page))
        send(page, bytes)
    }
  }

  function start(): void {
    stats.start()
    unsubscribe = hub.observers.on('topology', () => {
      dirty = true
      schedule()
    })
    sampleTimer = setInterval(() => {
      sampled = stats.sample()
      schedule()
    }, SAMPLE_MS)
    sampleTimer.unref?.()
    // The first page starts from every row: the view diffs against nothing.
    dirty = true
    lastRecord = stats.last
  }

  function stop(): void {
    unsubscribe?.()
    unsubscribe = undefined
    clearInterval(sampleTimer)
    clearTimeout(batchTimer)
    batchTimer = undefined
    sampled = undefined
    stats.stop()
    view.reset()
  }

  function leave(page: Page, close: boolean): void {
    if (!pages.delete(page))
      return
    if (close) {
      try {
        page.controller.close()
      }
      catch {} // already closed by the client
    }
    if (pages.size === 0)
      stop()
  }

  return {
    close() {
      for (const page of [...pages])
        leave(page, true)
    },
    open(who) {
      let page: Page
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          page = { who, fresh: true, controller }
          if (pages.size === 0)
            start()
          pages.add(page)
          // The snapshot goes out now, not one batch later: a page shows something at once.
          clearTimeout(batchTimer)
          batchTimer = undefined
          lastBatch = 0
          schedule()
        },
        cancel: () => leave(page, false),
      }, { highWaterMark: limits.maxBufferedBytes, size: chunk => chunk.byteLength })
      return new Response(body, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' } })
    },
  }
}
