import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { CLOSE } from '../../src/core/close.ts'
import { ROOT } from '../helpers/process.ts'

// docs/architecture.md must not rot: the tree is the whole of src/ (every file listed exists,
// every file of src/ is listed), every repository path it names exists, every name in inline
// code is a word of the source, and each close it quotes has the code the CLOSE table gives.

const DOC = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8')
const FENCE = /^```([\w-]*)\n([\s\S]*?)^```/gm
const PATH = /^(?:src|test|examples|docs|bench|deploy)\//

/** The files of a folder of the repository, relative to the repository, recursively (installed packages aside). */
function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`
    if (entry.isDirectory())
      return entry.name === 'node_modules' ? [] : filesUnder(path, ext)
    return entry.name.endsWith(ext) ? [path] : []
  })
}

/** The files of the tree block (the ```text block that starts with `src/`), as repository paths. */
function treeFiles(): string[] {
  const block = [...DOC.matchAll(FENCE)].find(([, lang, body]) => lang === 'text' && body!.startsWith('src/'))
  expect(block, 'a ```text block starting with src/').toBeDefined()
  const folders: string[] = []
  const files: string[] = []
  for (const line of block![2]!.split('\n').filter(line => line.trim() !== '')) {
    const depth = (line.length - line.trimStart().length) / 2
    const name = line.trim().split(/\s+/)[0]!
    expect(Number.isInteger(depth) && depth <= folders.length, `tree line indented by two spaces per level: ${line}`).toBe(true)
    folders.length = depth
    if (name.endsWith('/'))
      folders.push(name.slice(0, -1))
    else
      files.push([...folders, name].join('/'))
  }
  return files
}

/** The text of every inline code span, fenced blocks aside (a span may wrap a line). */
function inlineCode(): string[] {
  return [...DOC.replace(FENCE, '').matchAll(/`([^`]+)`/g)].map(([, code]) => code!.replace(/\s+/g, ' ').trim())
}

describe('docs/architecture.md', () => {
  it('maps every file of src/ in its tree, and nothing that is not there', () => {
    const listed = treeFiles()
    expect(listed.length).toBeGreaterThan(40)
    expect(listed.filter(file => !existsSync(join(ROOT, file))), 'listed but missing').toEqual([])
    const missing = filesUnder('src', '.ts').filter(file => !listed.includes(file))
    expect(missing, 'in src/ but not in the tree').toEqual([])
  })

  it('names only paths that exist', () => {
    const paths = inlineCode().filter(code => PATH.test(code)).map(code => code.replace(/\/\*$/, '/'))
    // Paths written out in fenced blocks too (the event's path).
    const written = [...DOC.matchAll(/(?<![\w/])(?:src|test|examples)\/[\w./-]+\.(?:ts|md|mjs)/g)].map(([path]) => path)
    // Links are relative to docs/.
    const links = [...DOC.matchAll(/\]\(([^)#\s]+)\)/g)].map(([, target]) => `docs/${target}`)
    expect(paths.length).toBeGreaterThan(40)
    expect([...paths, ...written, ...links].filter(path => !existsSync(join(ROOT, path))), 'named but missing').toEqual([])
  })

  it('names only identifiers the source has', () => {
    const words = new Set<string>()
    for (const file of [...filesUnder('src', '.ts'), ...filesUnder('test', '.ts'), ...filesUnder('examples', '.ts')]) {
      for (const [word] of readFileSync(join(ROOT, file), 'utf8').matchAll(/\w+/g))
        words.add(word)
    }
    // `name`, `a.b.c` or `call()`: each part must be a word somewhere in src/, test/ or examples/.
    const names = inlineCode().filter(code => /^\w+(?:\.\w+)*(?:\(\))?$/.test(code))
    expect(names.length).toBeGreaterThan(50)
    const unknown = names.filter(code => code.replace('()', '').split('.').some(part => !words.has(part)))
    expect(unknown, 'names the source does not have').toEqual([])
  })

  it('quotes each close with the code of the CLOSE table', () => {
    const quoted = [...DOC.matchAll(/`CLOSE\.(\w+)` (\d{4})/g)]
    expect(quoted.length).toBe(Object.keys(CLOSE).length)
    for (const [, key, code] of quoted)
      expect(CLOSE[key as keyof typeof CLOSE]?.code, `CLOSE.${key}`).toBe(Number(code))
  })
})
