import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../helpers/process.ts'

const SRC = join(ROOT, 'src')

/** Every module of `src`, with the modules of `src` it imports or re-exports (types included). */
function importGraph(): Map<string, string[]> {
  const files = readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter(file => file.endsWith('.ts'))
  const graph = new Map<string, string[]>()
  for (const file of files) {
    const source = readFileSync(join(SRC, file), 'utf8')
    const targets = [...source.matchAll(/^(?:import|export)\b[^'"]+?\bfrom\s+'(\.{1,2}\/[^']+)'/gm)]
      .map(([, specifier]) => relative(SRC, resolve(dirname(join(SRC, file)), specifier!)))
    graph.set(file, targets)
  }
  return graph
}

/** The first import cycle found, as the chain of modules that closes it. */
function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const done = new Set<string>()
  const path: string[] = []
  const visit = (file: string): string[] | undefined => {
    const start = path.indexOf(file)
    if (start !== -1)
      return [...path.slice(start), file]
    if (done.has(file))
      return undefined
    path.push(file)
    for (const target of graph.get(file) ?? []) {
      const cycle = visit(target)
      if (cycle)
        return cycle
    }
    path.pop()
    done.add(file)
    return undefined
  }
  for (const file of graph.keys()) {
    const cycle = visit(file)
    if (cycle)
      return cycle
  }
  return undefined
}

describe('src imports', () => {
  it('reads the relative imports of every module', () => {
    const graph = importGraph()
    expect(graph.get('index.ts')).toContain('hub.ts')
    expect(graph.get('cli.ts')).toContain('server.ts')
    // Every import names a module that exists.
    for (const [file, targets] of graph) {
      for (const target of targets)
        expect(graph.has(target), `${file} imports ${target}`).toBe(true)
    }
  })

  it('finds a cycle when there is one', () => {
    expect(findCycle(new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['b.ts']]]))).toEqual(['b.ts', 'c.ts', 'b.ts'])
    expect(findCycle(new Map([['a.ts', ['b.ts', 'c.ts']], ['b.ts', ['c.ts']], ['c.ts', []]]))).toBeUndefined()
  })

  it('have no cycles (type imports included): each module can be read on its own terms', () => {
    expect(findCycle(importGraph())?.join(' -> ')).toBeUndefined()
  })
})
