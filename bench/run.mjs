// `npm run bench [-- --quick] [--only=hub,ws] [--scenarios=fanout,routed,requests,slow,storm] [--n=500,2000] [--pairs=250] [--dashboard]`
// `--dashboard` holds one dashboard page's live stream open on the hub during each fan-out run.
// Runs every scenario against each target (servers pinned to core 0, this load generator to
// core 1), then writes bench/results/<stamp>.json, an SVG chart, and a table in bench/RESULTS.md.
import { spawnSync } from 'node:child_process'
import process from 'node:process'
import { parseArgs } from 'node:util'
import { pinned } from './lib/process.mjs'
import { writeReport } from './lib/report.mjs'
import { runsIn, targets, TOKEN } from './lib/targets.mjs'
import { fanout } from './scenarios/fanout.mjs'
import { requests } from './scenarios/requests.mjs'
import { routed } from './scenarios/routed.mjs'
import { slowConsumer } from './scenarios/slow-consumer.mjs'
import { storms } from './scenarios/storm.mjs'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string', default: 'ws,socketio,hub,hub2' },
    scenarios: { type: 'string', default: 'fanout,routed,requests,slow' },
    n: { type: 'string' },
    pairs: { type: 'string' },
    duration: { type: 'string' },
    repeat: { type: 'string' },
    out: { type: 'string' },
    dashboard: { type: 'boolean', default: false },
  },
})

// Pin the load generator to core 1 by re-running this script under taskset once.
if (!process.env.BENCH_PINNED) {
  const [command, argv] = pinned(1, process.execPath, process.argv.slice(1))
  const { status } = spawnSync(command, argv, { stdio: 'inherit', env: { ...process.env, BENCH_PINNED: '1' } })
  process.exit(status ?? 1)
}

const list = value => value.split(',').map(s => s.trim()).filter(Boolean)
const config = {
  quick: args.quick,
  ns: list(args.n ?? '500,2000').map(Number),
  pairs: Number(args.pairs ?? 250),
  sizes: [100, 1024],
  durationMs: Number(args.duration ?? (args.quick ? 1500 : 5000)),
  // Rounds of every scenario, targets interleaved; the table shows each target's median.
  repeat: Number(args.repeat ?? (args.quick ? 1 : 3)),
  // Fixed-rate phases run at this share of the raw ws relay's closed-loop rate.
  rateShare: 0.5,
  slow: { others: 5, size: 8192, rate: 1000 },
  dashboard: args.dashboard,
}
const order = list(args.only)
const scenarios = new Set(list(args.scenarios))
const log = text => process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`)

/**
 * Fixed rates are shared by all targets and rounds: half of what the ws relay sustained in its
 * first run (a target's own result while ws has not run).
 */
function createRates() {
  const ceilings = new Map()
  return (key, isCeiling) => (size, throughput) => {
    const id = `${key}/${size}`
    if (isCeiling && !ceilings.has(id))
      ceilings.set(id, throughput.eventsPerSec)
    if (!ceilings.has(id))
      return Math.max(1, throughput.eventsPerSec * config.rateShare)
    return Math.max(1, ceilings.get(id) * config.rateShare)
  }
}
const rateFor = createRates()

/** [round, target] for every round, targets interleaved within each; only targets that run this scenario. */
function rounds(scenario, n) {
  return Array.from({ length: config.repeat }, (_, round) => order.map(name => [round, name])).flat().filter(([, name]) => runsIn(targets[name], scenario, n))
}

const results = { config, fanout: [], routed: [], requests: [], slow: [], storm: [] }
for (const name of order) {
  if (!targets[name])
    throw new Error(`unknown target ${name} (have ${Object.keys(targets).join(', ')})`)
}

async function main() {
  if (scenarios.has('fanout')) {
    for (const n of config.ns) {
      for (const [round, name] of rounds('fanout', n)) {
        log(`fan-out ${name} N=${n}`)
        // Only a hub has a dashboard to open.
        const dashboard = config.dashboard && targets[name].script.endsWith('hub-server.mjs')
        const result = await fanout({ target: targets[name], token: TOKEN, n, sizes: config.sizes, durationMs: config.durationMs, rateFor: rateFor(`fanout/${n}`, name === 'ws'), dashboard })
        results.fanout.push({ target: name, round, ...result })
        log(JSON.stringify({ join: result.join, dashboard: result.dashboard, runs: result.runs.map(r => ({ size: r.size, perSec: r.throughput.deliveriesPerSec, ...r.fixed.latency })) }))
      }
    }
  }
  if (scenarios.has('routed')) {
    for (const [round, name] of rounds('routed')) {
      log(`routed ${name} pairs=${config.pairs}`)
      const result = await routed({ target: targets[name], token: TOKEN, pairs: config.pairs, sizes: config.sizes, durationMs: config.durationMs, rateFor: rateFor('routed', name === 'ws') })
      results.routed.push({ target: name, round, ...result })
      log(JSON.stringify(result.runs.map(r => ({ size: r.size, perSec: r.throughput.eventsPerSec, ...r.fixed.latency }))))
    }
  }
  if (scenarios.has('requests')) {
    for (const [round, name] of rounds('requests')) {
      log(`requests ${name} pairs=${config.pairs}`)
      const result = await requests({ target: targets[name], token: TOKEN, pairs: config.pairs, sizes: config.sizes, durationMs: config.durationMs, rateFor: rateFor('requests', false) })
      results.requests.push({ target: name, round, ...result })
      log(JSON.stringify(result.runs.map(r => ({ size: r.size, perSec: r.throughput.eventsPerSec, ...r.fixed.latency }))))
    }
  }
  if (scenarios.has('slow')) {
    for (const [round, name] of rounds('slow')) {
      log(`slow consumer ${name}`)
      const result = await slowConsumer({ target: targets[name], token: TOKEN, ...config.slow, durationMs: Math.max(3000, config.durationMs) })
      results.slow.push({ target: name, round, ...result })
      log(JSON.stringify(result))
    }
  }
  if (scenarios.has('storm')) {
    // Join and reconnect storms of hub-server/client peers beside an AIRI join storm, at the largest N.
    const n = Math.max(...config.ns)
    for (const [round, name] of rounds('storm', n)) {
      log(`storms ${name} N=${n}`)
      const result = await storms({ target: targets[name], token: TOKEN, n })
      results.storm.push({ target: name, round, ...result })
      log(JSON.stringify(result))
    }
  }

  const written = writeReport(results, { out: args.out })
  log(`wrote ${written.join(', ')}`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
