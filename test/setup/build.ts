import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '../..')

function newestSource(dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs)
  }
  return newest
}

/**
 * The CLI and Nitro tests run the package as users do, from `dist/`: build it (`npm run build`)
 * once before any test file, unless `dist/` is newer than every source file.
 */
export default function setup(): void {
  const built = join(root, 'dist/cli.js')
  if (existsSync(built) && statSync(built).mtimeMs >= newestSource(join(root, 'src')))
    return
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
}
