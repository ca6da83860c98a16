// Two ways to drive bench events through a target, both bounded in time:
// a closed loop (at most `window` events in flight) for throughput, and a fixed rate whose
// latency counts from each event's scheduled send time, so queueing is not hidden.
import { performance } from 'node:perf_hooks'
import { createSamples, round } from './stats.mjs'

const DRAIN_MS = 5000

/**
 * Receivers report into a sink; a phase claims it. Sequence numbers keep rising across
 * phases, so a late event of an earlier phase is never counted in a later one.
 */
export function createSink() {
  let next = 0
  let onBench = () => {}
  return {
    report: (seq, now) => onBench(seq, now),
    claim(handler) {
      const base = next
      onBench = (seq, now) => seq >= base && handler(seq - base, now)
      return base
    },
    advance(count) {
      next += count
    },
  }
}

/** One phase's bookkeeping; `onComplete` runs whenever an event reached all its recipients. */
function createPhase(sink, perEvent, capacity) {
  const scheduled = new Float64Array(capacity)
  const counts = new Uint32Array(capacity)
  const samples = createSamples()
  const state = { delivered: 0, completed: 0, lastAt: 0 }
  const phase = { scheduled, samples, state, onComplete: () => {} }
  phase.base = sink.claim((index, now) => {
    if (index >= capacity)
      return
    samples.add(now - scheduled[index])
    state.delivered++
    state.lastAt = now
    if (++counts[index] === perEvent) {
      state.completed++
      phase.onComplete()
    }
  })
  sink.advance(capacity)
  return phase
}

const tick = () => new Promise(resolve => setTimeout(resolve, 1))

async function drain(state, expected) {
  const deadline = performance.now() + DRAIN_MS
  while (state.completed < expected && performance.now() < deadline)
    await tick()
}

/** Closed loop: keeps `window` events in flight for `durationMs`; deliveries per second. */
export async function measureThroughput({ sink, send, perEvent, window, durationMs, maxEvents = 1e6 }) {
  const phase = createPhase(sink, perEvent, maxEvents)
  let sent = 0
  let stopAt = Infinity
  phase.onComplete = () => {
    while (sent - phase.state.completed < window && sent < maxEvents && performance.now() < stopAt) {
      phase.scheduled[sent] = performance.now()
      send(phase.base + sent, sent)
      sent++
    }
  }
  const startedAt = performance.now()
  stopAt = startedAt + durationMs
  while (performance.now() < stopAt) {
    phase.onComplete()
    await tick()
  }
  await drain(phase.state, sent)
  const seconds = (phase.state.lastAt - startedAt) / 1000
  return {
    events: sent,
    deliveries: phase.state.delivered,
    lost: sent * perEvent - phase.state.delivered,
    eventsPerSec: round(phase.state.completed / seconds, 0),
    deliveriesPerSec: round(phase.state.delivered / seconds, 0),
    latency: phase.samples.summary(),
  }
}

/** Fixed rate: `rate` events/s for `durationMs`; latency from the scheduled send times. */
export async function measureAtRate({ sink, send, perEvent, rate, durationMs }) {
  const total = Math.max(1, Math.round(rate * durationMs / 1000))
  const phase = createPhase(sink, perEvent, total)
  const startedAt = performance.now()
  const interval = 1000 / rate
  let sent = 0
  while (sent < total) {
    const now = performance.now()
    while (sent < total && startedAt + sent * interval <= now) {
      phase.scheduled[sent] = startedAt + sent * interval
      send(phase.base + sent, sent)
      sent++
    }
    await tick()
  }
  await drain(phase.state, total)
  return {
    rate: round(rate, 0),
    events: total,
    lost: total * perEvent - phase.state.delivered,
    latency: phase.samples.summary(),
  }
}

/**
 * Point-to-point traffic at each message size: a closed loop (at most `window` in flight) with
 * the server's CPU per 1000 deliveries, then a fixed rate at `rateFor(size, throughput)`.
 */
export async function measureSizes({ sink, sizes, sendFor, window, durationMs, rateFor, cpuMs }) {
  const runs = []
  for (const size of sizes) {
    const send = sendFor(size)
    const cpuBefore = cpuMs()
    const throughput = await measureThroughput({ sink, send, perEvent: 1, window, durationMs })
    throughput.serverCpuMsPer1000 = round((cpuMs() - cpuBefore) / throughput.deliveries * 1000)
    const fixed = await measureAtRate({ sink, send, perEvent: 1, rate: rateFor(size, throughput), durationMs })
    runs.push({ size, throughput, fixed })
  }
  return runs
}
