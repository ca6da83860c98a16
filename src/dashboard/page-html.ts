// The dashboard page: one self-contained document (inline CSS and JS, no CDN, nothing to build),
// kept as a module so that it travels with the code, bundled or not (a Nitro build copies no
// package files). `String.raw`: the page's own escapes stay as written; it holds no backtick
// and no template placeholder.
export const DASHBOARD_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hub-server dashboard</title>
<style>
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #fff; --fg: #1b1f24; --muted: #5f6b7a; --line: #d9dee5; --accent: #2563eb;
  --ok: #15803d; --bad: #b91c1c; --warn: #b45309; --row: #f0f3f7;
  --c0: #2563eb; --c1: #16a34a; --c2: #d97706; --c3: #9333ea; --c4: #0891b2; --c5: #db2777;
  font: 12px/1.35 ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1216; --panel: #171b21; --fg: #e6e9ee; --muted: #8b95a3; --line: #2a313b; --accent: #60a5fa;
    --ok: #4ade80; --bad: #f87171; --warn: #fbbf24; --row: #1d232b;
    --c0: #60a5fa; --c1: #4ade80; --c2: #fbbf24; --c3: #c084fc; --c4: #22d3ee; --c5: #f472b6;
  }
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: var(--bg); color: var(--fg); }
code, .mono, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 11px; }
header { display: flex; align-items: center; gap: 12px; padding: 6px 12px; border-bottom: 1px solid var(--line); background: var(--panel); height: 36px; }
header h1 { font-size: 14px; margin: 0; font-weight: 600; }
header .sp { flex: 1; }
.pill { padding: 1px 7px; border-radius: 9px; border: 1px solid var(--line); color: var(--muted); white-space: nowrap; }
.pill.ok { color: var(--ok); border-color: var(--ok); }
.pill.bad { color: var(--bad); border-color: var(--bad); }
button, input, textarea, select { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: 3px 7px; }
button { cursor: pointer; background: var(--panel); }
button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
main { display: grid; grid-template-columns: 400px 1fr; gap: 8px; padding: 8px; height: calc(100% - 36px); min-height: 0; }
.col { display: flex; flex-direction: column; gap: 8px; min-height: 0; min-width: 0; }
section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; min-height: 0; }
section h2 { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); margin: 0 0 4px; display: flex; gap: 8px; align-items: baseline; }
section h2 .count { text-transform: none; letter-spacing: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 2px 6px 2px 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
th { color: var(--muted); font-weight: 500; border-bottom: 1px solid var(--line); }
.muted { color: var(--muted); }
.ok { color: var(--ok); }
.bad { color: var(--bad); }
.warn { color: var(--warn); }
.scroll { overflow: auto; min-height: 0; }
#missing { display: none; background: var(--bad); color: #fff; border-radius: 6px; padding: 6px 10px; font-weight: 600; }
#missing.show { display: block; }
#notice { display: none; border: 1px solid var(--warn); color: var(--warn); border-radius: 6px; padding: 6px 10px; }
#notice.show { display: block; }
.charts svg { width: 100%; height: 70px; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 10px; margin: 2px 0 6px; }
.legend span::before { content: ''; display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 4px; background: var(--c); }
.tabs { display: flex; gap: 4px; align-items: center; }
.tabs button { border-radius: 4px 4px 0 0; border-bottom: none; }
.tabs button[aria-selected="true"] { background: var(--accent); color: #fff; border-color: var(--accent); }
#modules-panel, #explain-panel { flex: 1; display: flex; flex-direction: column; min-height: 0; }
#explain-panel[hidden], #modules-panel[hidden] { display: none; }
.grid-head, .mrow { display: grid; grid-template-columns: minmax(120px, 1.3fr) 36px minmax(90px, 1fr) minmax(90px, 1fr) minmax(120px, 1.6fr) 74px 66px minmax(80px, .8fr) 70px; gap: 6px; align-items: center; }
.grid-head { color: var(--muted); border-bottom: 1px solid var(--line); padding: 2px 4px; }
.mrow { height: 22px; padding: 0 4px; position: absolute; left: 0; right: 0; }
.mrow.odd { background: var(--row); }
#nodes { table-layout: fixed; }
#nodes th:first-child { width: 36%; }
#closes, #errors { table-layout: fixed; }
#closes th:nth-child(1), #errors th:nth-child(1) { width: 76px; }
#closes th:nth-child(2) { width: 40px; }
#closes th:nth-child(3) { width: 34%; }
#nodes th, #nodes td { padding-right: 3px; }
#nodes td:not(:first-child), #nodes th:not(:first-child) { text-align: right; }
.mrow > span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.mrow.unhealthy { color: var(--bad); }
#viewport { position: relative; flex: 1; overflow: auto; min-height: 0; }
.label { display: inline-block; border: 1px solid var(--line); border-radius: 3px; padding: 0 3px; margin-right: 3px; font-size: 10px; }
#gate { position: fixed; inset: 0; display: none; align-items: center; justify-content: center; background: rgba(0,0,0,.45); }
#gate.show { display: flex; }
#gate form { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 16px; width: 340px; display: flex; flex-direction: column; gap: 8px; }
#token-error { color: var(--bad); min-height: 1em; font-weight: 600; }
.explain-form { display: grid; grid-template-columns: 1fr 1fr; gap: 6px 10px; }
.explain-form label { display: flex; flex-direction: column; gap: 2px; color: var(--muted); }
.explain-form textarea { min-height: 88px; resize: vertical; font-family: ui-monospace, monospace; font-size: 11px; }
#explain-error { color: var(--bad); font-weight: 600; }
.step { font-family: ui-monospace, monospace; font-size: 11px; padding: 0 4px; border-radius: 3px; border: 1px solid var(--line); }
</style>
</head>
<body>
<header>
  <h1>hub-server</h1>
  <span class="pill" id="self-node" title="this node">–</span>
  <span class="pill" id="status">connecting…</span>
  <span class="muted" id="summary"></span>
  <span class="sp"></span>
  <span class="muted" id="auth-mode"></span>
  <button id="forget" type="button" hidden>Forget token</button>
</header>
<main>
  <div class="col">
    <div id="notice" role="alert"></div>
    <section>
      <h2>Nodes <span class="count muted" id="nodes-count"></span></h2>
      <table id="nodes"><thead><tr></tr></thead><tbody></tbody></table>
    </section>
    <section class="charts">
      <h2>Events received / s <span class="count muted" id="rate-now"></span></h2>
      <svg id="rates-chart" viewBox="0 0 300 70" preserveAspectRatio="none" role="img" aria-label="event rates by type"></svg>
      <div class="legend" id="rates-legend"></div>
      <h2>Errors / s <span class="count muted" id="errors-now"></span></h2>
      <svg id="errors-chart" viewBox="0 0 300 70" preserveAspectRatio="none" role="img" aria-label="errors by reason"></svg>
      <div class="legend" id="errors-legend"></div>
    </section>
    <section class="scroll" style="flex: 1">
      <h2>Recent closes</h2>
      <table id="closes"><thead><tr><th>time</th><th>code</th><th>reason</th><th>peer</th></tr></thead><tbody></tbody></table>
      <h2 style="margin-top: 8px">Recent errors</h2>
      <table id="errors"><thead><tr><th>time</th><th>reason</th></tr></thead><tbody></tbody></table>
    </section>
  </div>
  <div class="col">
    <div id="missing" role="alert"></div>
    <section style="flex: 1; display: flex; flex-direction: column">
      <div class="tabs" role="tablist">
        <button type="button" role="tab" id="tab-modules" aria-selected="true">Modules <span id="modules-count"></span></button>
        <button type="button" role="tab" id="tab-explain" aria-selected="false">Explain routing</button>
        <span class="sp" style="flex: 1"></span>
        <input id="filter" type="search" placeholder="filter: name, plugin, label, node, protocol…" style="width: 300px">
      </div>
      <div id="modules-panel">
        <div class="grid-head"><span>name</span><span>index</span><span>plugin</span><span>instance</span><span>labels</span><span>health</span><span>since</span><span>node</span><span>protocol</span></div>
        <div id="viewport"><div id="spacer"></div></div>
      </div>
      <div id="explain-panel" hidden>
        <form id="explain-form" class="explain-form">
          <label>Sender (peer or module; empty = the hub)
            <input id="explain-from" list="senders" placeholder="module name, name:index or peer id">
            <datalist id="senders"></datalist>
          </label>
          <label>Event type
            <input id="explain-type" value="my:event" required>
          </label>
          <label>Destinations (JSON array; empty = everyone)
            <textarea id="explain-destinations" placeholder='["plugin:my-plugin", "label:env=prod"]'></textarea>
          </label>
          <label>…or paste a whole event (JSON: type, data, route)
            <textarea id="explain-event" placeholder='{"type": "my:event", "data": {}, "route": {"destinations": ["plugin:x"]}}'></textarea>
          </label>
          <div><button class="primary" type="submit">Explain</button> <span id="explain-error" role="alert"></span></div>
        </form>
        <div class="scroll" style="flex: 1; margin-top: 8px">
          <h2>Recipients <span class="count" id="recipients-count"></span></h2>
          <table id="recipients"><thead><tr><th>peer</th><th>modules</th><th>node</th><th>protocol</th></tr></thead><tbody></tbody></table>
          <h2 style="margin-top: 8px">Left out <span class="count" id="excluded-count"></span></h2>
          <table id="excluded"><thead><tr><th>peer</th><th>modules</th><th>node</th><th>step</th><th>reason</th></tr></thead><tbody></tbody></table>
        </div>
      </div>
    </section>
  </div>
</main>
<div id="gate" role="dialog" aria-modal="true" aria-labelledby="gate-title">
  <form id="gate-form">
    <strong id="gate-title">Dashboard token</strong>
    <span class="muted">This hub's dashboard is protected: DASHBOARD_TOKEN, else METRICS_TOKEN, else AUTHENTICATION_TOKEN.</span>
    <input id="token" type="password" autocomplete="current-password" placeholder="token" required>
    <div id="token-error" role="alert"></div>
    <button class="primary" type="submit">Open</button>
  </form>
</div>
<script>
'use strict'
const API = location.pathname.replace(/\/+$/, '') + '/api'
const TOKEN_KEY = 'hub-server-dashboard-token'
const ROW = 22
const PROTOCOLS = { airi: 'AIRI', phoenix: 'Phoenix', thymian: 'Thymian', makaio: 'Makaio' }
const $ = id => document.getElementById(id)

const state = { modules: new Map(), sorted: [], topology: null, history: [], errors: [], closes: [], filter: '' }
let controller
let retry
let dirty = false

function el(tag, attrs, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue
    if (key === 'class') node.className = value
    else if (key === 'text') node.textContent = value
    else node.setAttribute(key, value)
  }
  for (const child of children) node.append(child)
  return node
}
const time = t => new Date(t).toLocaleTimeString()
function ago(t) {
  if (!t) return ''
  const s = Math.max(0, Math.round((Date.now() - t) / 1000))
  return s < 60 ? s + 's' : s < 3600 ? Math.floor(s / 60) + 'm' : s < 86400 ? Math.floor(s / 3600) + 'h' : Math.floor(s / 86400) + 'd'
}
const protocolName = p => PROTOCOLS[p] || p || '?'

// ---- token and connection ----
function token() { return sessionStorage.getItem(TOKEN_KEY) }
function headers() { const t = token(); return t ? { authorization: 'Bearer ' + t } : {} }
function status(text, kind) { const s = $('status'); s.textContent = text; s.className = 'pill ' + (kind || '') }
function ask(error) {
  $('gate').classList.add('show')
  $('token-error').textContent = error || ''
  $('token').focus()
}
$('gate-form').addEventListener('submit', (event) => {
  event.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('token').value)
  $('token').value = ''
  connect()
})
$('forget').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); location.reload() })

async function refusal(response) {
  try { return (await response.json()).error } catch { return response.statusText }
}

async function connect() {
  clearTimeout(retry)
  controller?.abort()
  controller = new AbortController()
  status('connecting…')
  let response
  try {
    response = await fetch(API + '/stream', { headers: headers(), signal: controller.signal, cache: 'no-store' })
  } catch {
    return reconnect()
  }
  if (response.status === 401) { status('token needed', 'bad'); return ask('') }
  if (response.status === 403) {
    const message = await refusal(response)
    if (token()) { sessionStorage.removeItem(TOKEN_KEY); status('wrong token', 'bad'); return ask(message || 'Wrong token') }
    status('refused', 'bad')
    $('notice').textContent = message
    $('notice').classList.add('show')
    return
  }
  if (!response.ok || !response.body) return reconnect()
  $('gate').classList.remove('show')
  $('forget').hidden = !token()
  $('auth-mode').textContent = token() ? 'token' : 'open on loopback (no token configured)'
  status('live', 'ok')
  try {
    await read(response.body.getReader())
  } catch {}
  reconnect()
}
function reconnect() {
  status('reconnecting…', 'bad')
  clearTimeout(retry)
  retry = setTimeout(connect, 2000)
}

// Server-sent events over fetch, so the token travels in a header rather than the URL.
async function read(reader) {
  const decoder = new TextDecoder()
  let buffer = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    buffer += decoder.decode(value, { stream: true })
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      let type = 'message'
      let data = ''
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7)
        else if (line.startsWith('data: ')) data += line.slice(6)
      }
      if (data) apply(type, JSON.parse(data))
    }
  }
}

// ---- state ----
function apply(type, message) {
  if (type === 'snapshot') {
    state.modules = new Map(message.modules.map(row => [row.k, row]))
    state.history = message.history
    state.errors = message.errors
    state.closes = message.closes
    state.topology = message.topology
  } else {
    if (message.topology) state.topology = message.topology
    if (message.modules) {
      for (const key of message.modules.remove) state.modules.delete(key)
      for (const row of message.modules.upsert) state.modules.set(row.k, row)
    }
    if (message.sample) { state.history.push(message.sample); if (state.history.length > 300) state.history.shift() }
    if (message.errors) state.errors = state.errors.concat(message.errors).slice(-100)
    if (message.closes) state.closes = state.closes.concat(message.closes).slice(-100)
  }
  if (type === 'snapshot' || message.modules) resort()
  schedule()
}
function matches(row, filter) {
  if (!filter) return true
  const text = [row.name, row.plugin, row.instance, row.node, row.peer, protocolName(row.protocol), row.healthy ? 'healthy' : 'unhealthy', ...Object.entries(row.labels).map(([k, v]) => k + '=' + v)].join(' ').toLowerCase()
  return filter.split(/\s+/).every(word => text.includes(word))
}
function resort() {
  const filter = state.filter
  state.sorted = [...state.modules.values()].filter(row => matches(row, filter))
    .sort((a, b) => a.name.localeCompare(b.name) || (a.index ?? -1) - (b.index ?? -1) || a.node.localeCompare(b.node))
}
function schedule() {
  if (dirty) return
  dirty = true
  requestAnimationFrame(() => { dirty = false; render() })
}

// ---- rendering ----
function render() {
  renderTopology()
  renderModules()
  renderCharts()
  renderRecent()
}
function renderTopology() {
  const t = state.topology
  if (!t) return
  $('self-node').textContent = t.node
  // AIRI and Phoenix always, any other gateway once it has peers.
  const seen = new Set(t.nodes.flatMap(node => Object.keys(node.peers)))
  const columns = ['airi', 'phoenix', ...[...seen].filter(p => p !== 'airi' && p !== 'phoenix').sort()]
  $('nodes').tHead.rows[0].replaceChildren(el('th', { text: 'node' }), ...columns.map(p => el('th', { text: protocolName(p) })),
    el('th', { title: 'connected, not authenticated (this node)', text: 'pending' }), el('th', { text: 'modules' }))
  $('nodes').tBodies[0].replaceChildren(...t.nodes.map(node => el('tr', { 'class': 'node-row', 'data-node': node.id, 'data-self': node.self && 'this', 'title': node.self ? 'the node serving this page' : undefined },
    el('td', { class: 'mono', title: node.id, text: node.self && t.nodes.length > 1 ? '● ' + node.id : node.id }),
    ...columns.map(p => el('td', { 'data-protocol': p, 'text': String(node.peers[p] || 0) })),
    el('td', { class: 'muted', text: node.self ? String(node.pending) : '–' }),
    el('td', { 'data-modules': '', 'text': String(node.modules) }))))
  $('nodes-count').textContent = t.nodes.length + (t.nodes.length === 1 ? ' node' : ' nodes')
  const peers = t.nodes.reduce((sum, n) => sum + Object.values(n.peers).reduce((a, b) => a + b, 0), 0)
  $('summary').textContent = peers + ' peers · ' + state.modules.size + ' modules'
  const missing = $('missing')
  missing.textContent = t.missing.length ? 'Required modules missing: ' + t.missing.join(', ') : ''
  missing.classList.toggle('show', t.missing.length > 0)
  const senders = $('senders')
  if (senders.childElementCount !== Math.min(state.modules.size, 500)) {
    senders.replaceChildren(...[...state.modules.values()].slice(0, 500).map(row => el('option', { value: row.index === undefined ? row.name : row.name + ':' + row.index, label: row.plugin + ' · ' + row.peer })))
  }
}
function renderModules() {
  const viewport = $('viewport')
  const rows = state.sorted
  $('modules-count').textContent = '(' + (rows.length === state.modules.size ? rows.length : rows.length + ' of ' + state.modules.size) + ')'
  $('spacer').style.height = rows.length * ROW + 'px'
  // Only the rows in sight are in the DOM: 2000 modules cost what 40 do.
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW) - 5)
  const last = Math.min(rows.length, first + Math.ceil(viewport.clientHeight / ROW) + 10)
  const nodes = []
  for (let i = first; i < last; i++) {
    const row = rows[i]
    const labels = el('span', { title: Object.entries(row.labels).map(([k, v]) => k + '=' + v).join(', ') }, ...Object.entries(row.labels).map(([k, v]) => el('span', { class: 'label', text: k + '=' + v })))
    const line = el('div', { 'class': 'mrow' + (i % 2 ? ' odd' : '') + (row.healthy ? '' : ' unhealthy'), 'data-name': row.name, 'data-health': row.healthy ? 'healthy' : 'unhealthy', 'data-node': row.node, 'data-protocol': row.protocol || '', 'style': 'top:' + i * ROW + 'px' },
      el('span', { class: 'mono', title: row.peer, text: row.name }),
      el('span', { class: 'muted', text: row.index === undefined ? '' : String(row.index) }),
      el('span', { title: row.plugin, text: row.plugin }),
      el('span', { class: 'mono muted', title: row.instance, text: row.instance }),
      labels,
      el('span', { class: row.healthy ? 'ok' : 'bad', text: row.healthy ? 'healthy' : 'unhealthy' }),
      el('span', { class: 'muted', title: row.since ? new Date(row.since).toLocaleString() : '', text: ago(row.since) }),
      el('span', { class: 'mono muted', title: row.node, text: row.node }),
      el('span', { text: protocolName(row.protocol) }))
    nodes.push(line)
  }
  viewport.replaceChildren($('spacer'), ...nodes)
}
$('viewport').addEventListener('scroll', schedule, { passive: true })
$('filter').addEventListener('input', (event) => { state.filter = event.target.value.trim().toLowerCase(); resort(); schedule() })

const COLORS = ['--c0', '--c1', '--c2', '--c3', '--c4', '--c5']
function chart(svg, legend, samples, field, now) {
  const totals = new Map()
  for (const s of samples) for (const [key, n] of Object.entries(s[field])) totals.set(key, (totals.get(key) || 0) + n)
  const keys = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([key]) => key)
  const width = 300
  const height = 70
  // The last minutes at most (the history's length), stretched while there are fewer samples.
  const span = Math.max(samples.length, 20)
  let max = 1
  for (const s of samples) for (const key of keys) max = Math.max(max, s[field][key] || 0)
  // One sample is drawn as a short flat line rather than nothing.
  const points = samples.length === 1 ? [samples[0], samples[0]] : samples
  const x = i => width - (points.length - 1 - i) * (width / (span - 1))
  const paths = keys.map((key, k) => {
    const d = points.map((s, i) => (i ? 'L' : 'M') + x(i).toFixed(1) + ' ' + (height - 2 - ((s[field][key] || 0) / max) * (height - 6)).toFixed(1)).join(' ')
    return '<path d="' + d + '" fill="none" stroke="var(' + COLORS[k] + ')" stroke-width="1.5" vector-effect="non-scaling-stroke"/>'
  })
  svg.innerHTML = '<line x1="0" x2="300" y1="69" y2="69" stroke="var(--line)"/>' + paths.join('') + '<text x="2" y="10" font-size="9" fill="var(--muted)">' + max + '/s</text>'
  const last = samples[samples.length - 1]
  legend.replaceChildren(...keys.map((key, k) => el('span', { style: '--c: var(' + COLORS[k] + ')', text: key + ' ' + ((last && last[field][key]) || 0) })))
  now.textContent = last ? Object.values(last[field]).reduce((a, b) => a + b, 0) + ' in the last second' : 'counting from now'
}
function renderCharts() {
  chart($('rates-chart'), $('rates-legend'), state.history, 'types', $('rate-now'))
  chart($('errors-chart'), $('errors-legend'), state.history, 'errors', $('errors-now'))
}
function renderRecent() {
  $('closes').tBodies[0].replaceChildren(...state.closes.slice(-30).reverse().map(c => el('tr', { class: 'close-row' },
    el('td', { class: 'muted', text: time(c.t) }),
    el('td', { class: c.code === 1000 || c.code === 1001 || c.code === 1005 ? '' : 'bad', text: String(c.code) }),
    el('td', { title: c.reason, class: c.reason ? '' : 'muted', text: c.reason || (c.code === 1005 ? 'closed by the peer' : '–') }),
    el('td', { class: 'mono', title: protocolName(c.protocol) + ' ' + c.peer, text: c.peer }))))
  $('errors').tBodies[0].replaceChildren(...state.errors.slice(-30).reverse().map(e => el('tr', { class: 'error-row' },
    el('td', { class: 'muted', text: time(e.t) }),
    el('td', { class: 'bad', text: e.reason }))))
}

// ---- explain ----
function tab(name) {
  $('tab-modules').setAttribute('aria-selected', String(name === 'modules'))
  $('tab-explain').setAttribute('aria-selected', String(name === 'explain'))
  $('modules-panel').hidden = name !== 'modules'
  $('explain-panel').hidden = name !== 'explain'
  $('filter').hidden = name !== 'modules'
  schedule()
}
$('tab-modules').addEventListener('click', () => tab('modules'))
$('tab-explain').addEventListener('click', () => tab('explain'))

function explainRequest() {
  const from = $('explain-from').value.trim()
  const pasted = $('explain-event').value.trim()
  let event
  if (pasted) {
    event = JSON.parse(pasted)
  } else {
    event = { type: $('explain-type').value.trim(), data: {} }
    const destinations = $('explain-destinations').value.trim()
    if (destinations) event.route = { destinations: JSON.parse(destinations) }
  }
  return from ? { from, event } : { event }
}
const modulesText = modules => (modules || []).map(m => m.index === undefined ? m.name : m.name + ':' + m.index).join(', ')
$('explain-form').addEventListener('submit', async (submit) => {
  submit.preventDefault()
  $('explain-error').textContent = ''
  let body
  try { body = JSON.stringify(explainRequest()) } catch (error) { $('explain-error').textContent = 'Not JSON: ' + error.message; return }
  const response = await fetch(API + '/explain', { method: 'POST', headers: { ...headers(), 'content-type': 'application/json' }, body })
  const result = await response.json().catch(() => ({ error: response.statusText }))
  if (!response.ok) { $('explain-error').textContent = result.error || ('HTTP ' + response.status); return }
  $('recipients-count').textContent = '(' + result.recipients.length + ')'
  $('excluded-count').textContent = '(' + result.excluded.length + ')'
  $('recipients').tBodies[0].replaceChildren(...result.recipients.map(p => el('tr', { 'class': 'recipient-row', 'data-peer': p.peerId },
    el('td', { class: 'mono', text: p.peerId }), el('td', { text: modulesText(p.modules) }), el('td', { class: 'mono muted', text: p.node || 'this node' }), el('td', { text: protocolName(p.protocol) }))))
  $('excluded').tBodies[0].replaceChildren(...result.excluded.map(p => el('tr', { 'class': 'excluded-row', 'data-peer': p.peerId, 'data-step': p.step },
    el('td', { class: 'mono', text: p.peerId }), el('td', { text: modulesText(p.modules) }), el('td', { class: 'mono muted', text: p.node || 'this node' }),
    el('td', {}, el('span', { class: 'step', text: p.step })), el('td', { title: p.reason, text: p.reason }))))
})

// "since" columns age without any message.
setInterval(schedule, 5000)
connect()
</script>
</body>
</html>
`
