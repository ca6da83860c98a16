export const round = (value, digits = 2) => value === null || value === undefined ? null : Number(value.toFixed(digits))

// Latency samples in milliseconds, kept in a growable Float64Array.
export function createSamples(capacity = 1 << 16) {
  let values = new Float64Array(capacity)
  let size = 0
  return {
    add(value) {
      if (size === values.length) {
        const bigger = new Float64Array(values.length * 2)
        bigger.set(values)
        values = bigger
      }
      values[size++] = value
    },
    get size() { return size },
    /** p50/p99/max (ms), or nulls when empty. */
    summary() {
      if (size === 0)
        return { p50: null, p99: null, max: null }
      const sorted = values.slice(0, size).sort()
      const at = q => sorted[Math.min(size - 1, Math.floor(q * size))]
      return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[size - 1]) }
    },
  }
}

export function median(values) {
  const sorted = values.filter(v => v !== null && Number.isFinite(v)).sort((a, b) => a - b)
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null
}
