// An SVG bar chart of latency percentiles (p50, p99, max) per scenario and target, log scale.

const COLORS = { p50: '#4e79a7', p99: '#f28e2b', max: '#e15759' }
const QUANTILES = ['p50', 'p99', 'max']
const escape = text => String(text).replace(/[<>&"]/g, c => `&#${c.charCodeAt(0)};`)

/** groups: [{ title, bars: [{ label, latency: {p50, p99, max} }] }] */
export function latencyChart(groups, title) {
  const barW = 10
  const gap = 6
  const targetW = QUANTILES.length * barW + 24
  const height = 220
  const top = 40
  const left = 50
  const all = groups.flatMap(g => g.bars.flatMap(b => QUANTILES.map(q => b.latency[q]))).filter(v => v > 0)
  const lo = Math.max(0.01, Math.min(...all))
  const hi = Math.max(...all, lo * 10)
  const minLog = Math.floor(Math.log10(lo))
  const maxLog = Math.ceil(Math.log10(hi))
  const y = v => top + height - (Math.log10(Math.max(v, 10 ** minLog)) - minLog) / (maxLog - minLog) * height
  const parts = []
  let x = left + 10
  for (const group of groups) {
    const start = x
    for (const bar of group.bars) {
      QUANTILES.forEach((q, i) => {
        const value = bar.latency[q]
        if (value > 0) {
          const y0 = y(value)
          parts.push(`<rect x="${x + i * barW}" y="${y0.toFixed(1)}" width="${barW - 1}" height="${(top + height - y0).toFixed(1)}" fill="${COLORS[q]}"><title>${escape(`${group.title} ${bar.label} ${q}: ${value} ms`)}</title></rect>`)
        }
      })
      parts.push(`<text x="${x + QUANTILES.length * barW / 2}" y="${top + height + 14}" font-size="9" text-anchor="middle">${escape(bar.label)}</text>`)
      x += targetW
    }
    parts.push(`<text x="${(start + x - 24) / 2}" y="${top + height + 30}" font-size="10" text-anchor="middle" font-weight="bold">${escape(group.title)}</text>`)
    x += gap * 3
  }
  const width = x + 20
  const grid = []
  for (let e = minLog; e <= maxLog; e++) {
    grid.push(`<line x1="${left}" x2="${width - 10}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#ddd"/>`)
    grid.push(`<text x="${left - 4}" y="${y(10 ** e) + 3}" font-size="9" text-anchor="end">${10 ** e} ms</text>`)
  }
  const legend = QUANTILES.map((q, i) => `<rect x="${left + i * 60}" y="22" width="10" height="10" fill="${COLORS[q]}"/><text x="${left + i * 60 + 14}" y="31" font-size="10">${q}</text>`)
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top + height + 44}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${left}" y="14" font-size="12" font-weight="bold">${escape(title)}</text>
${[...grid, ...legend, ...parts].join('\n')}
</svg>
`
}
