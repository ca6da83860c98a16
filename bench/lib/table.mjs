// The results as comparable rows: one metric per row, one value per target, ratios of the hub.
import { median, round } from './stats.mjs'

const kib = bytes => `${bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`}`

/** Each target's value over its rounds: the median of numbers, else the last value. */
export function perTarget(entries, pick) {
  const values = {}
  for (const name of new Set(entries.map(e => e.target))) {
    const picked = entries.filter(e => e.target === name).map(pick).filter(v => v !== null && v !== undefined)
    values[name] = picked.length === 0 ? null : picked.every(v => typeof v === 'number') ? median(picked) : picked.at(-1)
  }
  return values
}

function row(scenario, metric, entries, pick, target = '') {
  const values = perTarget(entries, pick)
  const ratio = (hub, other) => typeof values[hub] === 'number' && typeof values[other] === 'number' && values[other] !== 0 ? round(values[hub] / values[other]) : null
  return { scenario, metric, values, hubPerWs: ratio('hub', 'ws'), hubPerSocketio: ratio('hub', 'socketio'), twoNodesPerOne: ratio('hub2', 'hub'), target }
}

export function tableRows(results) {
  const rows = []
  for (const n of [...new Set(results.fanout.map(r => r.n))]) {
    const entries = results.fanout.filter(r => r.n === n)
    for (const size of results.config.sizes) {
      const run = entry => entry.runs.find(r => r.size === size)
      const name = `fan-out N=${n}, ${kib(size)}`
      rows.push(row(name, 'deliveries/s (closed loop)', entries, e => run(e)?.throughput.deliveriesPerSec, '>= 0.9x ws'))
      rows.push(row(name, 'server CPU ms per 1000 deliveries', entries, e => run(e)?.throughput.serverCpuMsPer1000))
      const rate = entries.map(e => run(e)?.fixed.rate).find(Boolean)
      for (const q of ['p50', 'p99', 'max'])
        rows.push(row(name, `latency ${q} ms at ${rate} ev/s`, entries, e => run(e)?.fixed.latency[q], q === 'p99' ? '<= 1.3x ws' : ''))
    }
    rows.push(row(`join storm N=${n + 1}`, 'ms until every view is complete', entries, e => e.join.convergedMs, n >= 2000 ? '< 1000 ms' : ''))
    rows.push(row(`join storm N=${n + 1}`, 'registry KiB received per peer', entries, e => round(e.join.registryBytesPerPeer / 1024, 1), 'linear in N'))
    rows.push(row(`memory N=${n + 1} announced`, 'server peak RSS MiB', entries, e => round(e.memory.peak / 2 ** 20, 1), n >= 2000 ? '<= 1.3x ws' : ''))
    rows.push(row(`memory N=${n + 1} announced`, 'peak KiB per peer above idle', entries, e => round((e.memory.peak - e.memory.baseline) / 1024 / (n + 1), 1)))
    rows.push(row(`memory N=${n + 1} announced`, 'RSS MiB once converged', entries, e => round(e.memory.rss / 2 ** 20, 1)))
  }
  for (const size of results.config.sizes) {
    const entries = results.routed
    if (entries.length === 0)
      break
    const run = entry => entry.runs.find(r => r.size === size)
    const name = `routed ${entries[0].pairs} pairs, ${kib(size)}`
    rows.push(row(name, 'msgs/s (closed loop)', entries, e => run(e)?.throughput.eventsPerSec, '>= 0.7x ws'))
    rows.push(row(name, 'server CPU ms per 1000 msgs', entries, e => run(e)?.throughput.serverCpuMsPer1000))
    const rate = entries.map(e => run(e)?.fixed.rate).find(Boolean)
    rows.push(row(name, `latency p99 ms at ${rate} msg/s`, entries, e => run(e)?.fixed.latency.p99))
  }
  for (const size of results.config.sizes) {
    const entries = results.requests ?? []
    if (entries.length === 0)
      break
    const run = entry => entry.runs.find(r => r.size === size)
    const name = `request/reply ${entries[0].pairs} pairs, ${kib(size)}`
    rows.push(row(name, 'round trips/s (closed loop)', entries, e => run(e)?.throughput.eventsPerSec, 'beside routed msgs/s'))
    rows.push(row(name, 'server CPU ms per 1000 round trips', entries, e => run(e)?.throughput.serverCpuMsPer1000))
    const rate = entries.map(e => run(e)?.fixed.rate).find(Boolean)
    rows.push(row(name, `round trip p99 ms at ${rate} req/s`, entries, e => run(e)?.fixed.latency.p99))
  }
  if (results.slow.length > 0) {
    const { others, size, rate } = results.slow[0]
    const name = `slow consumer (${others} others, ${kib(size)} at ${rate}/s)`
    rows.push(row(name, 'others p99 ms, slow phase', results.slow, e => e.slowed.p99))
    rows.push(row(name, 'others p99 slow/control', results.slow, e => e.p99Ratio, '~1 (nobody slowed)'))
    rows.push(row(name, 'server RSS growth MiB', results.slow, e => round(e.rssGrowth / 2 ** 20, 1), 'bounded'))
    rows.push(row(name, 'slow peer closed with', results.slow, e => e.slowPeerClosed, '1013'))
  }
  for (const n of [...new Set((results.storm ?? []).map(r => r.n))]) {
    const entries = results.storm.filter(r => r.n === n)
    rows.push(row(`join storm N=${n}, AIRI peers`, 'ms until every view is complete', entries, e => e.airi.convergedMs))
    rows.push(row(`join storm N=${n}, hub-server/client`, 'ms until every view is complete', entries, e => e.client.convergedMs))
    rows.push(row(`join storm N=${n}, hub-server/client`, 'times sooner than AIRI', entries, e => e.speedup, '>= 5x'))
    rows.push(row(`join storm N=${n}, delta peers counting like the AIRI peers`, 'ms until every view is complete', entries, e => e.counting?.convergedMs))
    rows.push(row(`join storm N=${n}, delta peers counting like the AIRI peers`, 'times sooner than AIRI', entries, e => e.countingSpeedup))
    rows.push(row(`join storm N=${n}, hub-server/client with registry: 'none'`, 'ms until every client is open', entries, e => e.quiet?.convergedMs))
    rows.push(row(`join storm N=${n}, hub-server/client with registry: 'none'`, 'server CPU ms', entries, e => e.quiet?.serverCpuMs))
    rows.push(row(`join storm N=${n}, bare ws sockets (raw relay)`, 'ms until every socket is open (floor)', entries, e => e.bare?.convergedMs))
    rows.push(row(`${n} views of ${n} modules, no network`, 'ms on the load generator (floor)', entries, e => e.views?.ms))
    rows.push(row(`join storm N=${n}, AIRI peers`, 'registry KiB received per peer', entries, e => round(e.airi.registryBytesPerPeer / 1024, 1)))
    rows.push(row(`join storm N=${n}, hub-server/client`, 'KiB received per peer (all frames)', entries, e => round(e.client.registryBytesPerPeer / 1024, 1), 'fewer than AIRI'))
    rows.push(row(`join storm N=${n}, AIRI peers`, 'server CPU ms', entries, e => e.airi.serverCpuMs))
    rows.push(row(`join storm N=${n}, hub-server/client`, 'server CPU ms', entries, e => e.client.serverCpuMs))
    rows.push(row(`join storm N=${n}, delta peers counting like the AIRI peers`, 'server CPU ms', entries, e => e.counting?.serverCpuMs))
    rows.push(row(`join storm N=${n}, hub-server/client`, 'clients\' CPU ms (load generator)', entries, e => e.client.clientsCpuMs))
    rows.push(row(`reconnect storm N=${n}, hub-server/client`, 'ms from hub stop until every client is back with a complete view', entries, e => e.reconnect.recoverMs))
    rows.push(row(`reconnect storm N=${n}, hub-server/client`, 'of which the hub was down (ms)', entries, e => e.reconnect.downMs))
  }
  return rows
}
