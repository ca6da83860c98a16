// Writes one run: JSON (everything), an SVG of latency percentiles, and a Markdown table
// appended to bench/RESULTS.md with the date, machine and versions.
import { spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import process from 'node:process'
import { fileURLToPath } from 'node:url'
import { latencyChart } from './chart.mjs'
import { hasTaskset } from './process.mjs'
import { perTarget, tableRows } from './table.mjs'
import { targets } from './targets.mjs'

const benchDir = fileURLToPath(new URL('..', import.meta.url))
const versionOf = name => JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version

function machine() {
  const cpus = os.cpus()
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim()
  const dirty = spawnSync('git', ['status', '--porcelain', '--', '../src'], { encoding: 'utf8', cwd: benchDir }).stdout.trim() !== ''
  return {
    date: new Date().toISOString(),
    cpu: `${cpus[0]?.model ?? 'unknown'} x${cpus.length}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg().map(v => v.toFixed(2)).join(' '),
    pinned: hasTaskset ? 'servers on core 0, load generator on core 1 (taskset)' : 'not pinned (no taskset)',
    versions: {
      'node': process.version,
      'hub-server': `${JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version} (${git}${dirty ? ', uncommitted src changes' : ''})`,
      'crossws': versionOf('crossws'),
      'ws': versionOf('ws'),
      'socket.io': versionOf('socket.io'),
      'socket.io-client': versionOf('socket.io-client'),
    },
  }
}

const cell = value => value === null || value === undefined ? '–' : String(value)
const ratio = value => value === null ? '–' : `${value}x`

function markdown(results, meta, chartFile) {
  const names = Object.keys(targets).filter(name => results.fanout.some(r => r.target === name) || results.routed.some(r => r.target === name) || results.requests?.some(r => r.target === name) || results.slow.some(r => r.target === name) || results.storm?.some(r => r.target === name))
  const head = ['scenario', 'metric', ...names.map(n => targets[n].label), 'hub/ws', 'hub/Socket.IO', '2 nodes/1 node', 'target']
  const lines = [
    `## ${meta.date}${results.config.quick ? ' (--quick)' : ''}`,
    '',
    `${meta.cpu}, ${meta.memory}, ${meta.os}; ${meta.pinned}; load average at the end ${meta.loadavg}.`,
    `Versions: ${Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    `Phases of ${results.config.durationMs} ms, ${results.config.repeat} round(s) per scenario with targets interleaved (medians shown); fixed-rate phases at ${results.config.rateShare * 100}% of the raw ws relay's closed-loop rate, latency from the scheduled send time.`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...tableRows(results).map(r => `| ${[r.scenario, r.metric, ...names.map(n => cell(r.values[n])), ratio(r.hubPerWs), ratio(r.hubPerSocketio), ratio(r.twoNodesPerOne), r.target].join(' | ')} |`),
    '',
    ...(chartFile ? [`Latency chart: [${chartFile}](results/${chartFile})`, ''] : []),
  ]
  return lines.join('\n')
}

/** Bars of one chart group: each target's median p50/p99/max over its rounds. */
function latencyBars(entries, latencyOf) {
  const quantiles = ['p50', 'p99', 'max'].map(q => [q, perTarget(entries, e => latencyOf(e)?.[q])])
  return [...new Set(entries.map(e => e.target))].map(name => ({
    label: name,
    latency: Object.fromEntries(quantiles.map(([q, values]) => [q, values[name]])),
  }))
}

function chartGroups(results) {
  const groups = []
  const fixedLatency = size => entry => entry.runs.find(r => r.size === size)?.fixed.latency
  for (const n of [...new Set(results.fanout.map(r => r.n))]) {
    for (const size of results.config.sizes)
      groups.push({ title: `fan-out ${n} / ${size} B`, bars: latencyBars(results.fanout.filter(r => r.n === n), fixedLatency(size)) })
  }
  for (const size of results.routed.length > 0 ? results.config.sizes : [])
    groups.push({ title: `routed / ${size} B`, bars: latencyBars(results.routed, fixedLatency(size)) })
  for (const size of results.requests?.length > 0 ? results.config.sizes : [])
    groups.push({ title: `request/reply / ${size} B`, bars: latencyBars(results.requests, fixedLatency(size)) })
  if (results.slow.length > 0)
    groups.push({ title: 'slow consumer: others', bars: latencyBars(results.slow, e => e.slowed) })
  return groups
}

/** Writes the JSON, the SVG and the Markdown; returns the paths written. */
export function writeReport(results, { out } = {}) {
  const meta = machine()
  const stamp = meta.date.replace(/[:.]/g, '-').slice(0, 19)
  const dir = out ?? `${benchDir}results`
  if (!existsSync(dir))
    mkdirSync(dir, { recursive: true })
  const jsonFile = `${dir}/${stamp}.json`
  // A run of storms only has no latencies to chart (and an empty log scale never ends).
  const groups = chartGroups(results)
  const chartFile = groups.length > 0 ? `${stamp}-latency.svg` : undefined
  writeFileSync(jsonFile, `${JSON.stringify({ meta, ...results, rows: tableRows(results) }, null, 2)}\n`)
  if (chartFile)
    writeFileSync(`${dir}/${chartFile}`, latencyChart(groups, `Latency percentiles (ms, log scale), ${meta.date.slice(0, 10)}`))
  const resultsMd = out ? `${dir}/RESULTS.md` : `${benchDir}RESULTS.md`
  if (!existsSync(resultsMd))
    writeFileSync(resultsMd, '# Benchmark results\n\nAppended by `npm run bench`; see README.md for what each scenario measures.\n\n')
  appendFileSync(resultsMd, markdown(results, meta, chartFile))
  return [jsonFile, ...(chartFile ? [`${dir}/${chartFile}`] : []), resultsMd]
}
