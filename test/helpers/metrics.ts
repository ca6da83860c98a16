/** The value of one sample line of a Prometheus exposition, e.g. `hub_errors_total{reason="x"}`. */
export function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find(l => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}
