import { readFileSync } from 'node:fs'
import { HubError } from '../errors.ts'

// The page ships in the package (`assets/`, next to `src/` and `dist/`), so the same relative
// path works from the sources and from the build.
const PAGE_FILE = new URL('../../assets/dashboard.html', import.meta.url)

// Everything the page needs is inline; it talks to its own origin only.
const CSP = [
  'default-src \'none\'',
  'script-src \'unsafe-inline\'',
  'style-src \'unsafe-inline\'',
  'img-src data:',
  'connect-src \'self\'',
  'base-uri \'none\'',
  'form-action \'none\'',
  'frame-ancestors \'none\'',
].join('; ')

/** The dashboard page, read once: answers `GET <path>` with it. */
export function createDashboardPage(): () => Response {
  let html: string
  try {
    html = readFileSync(PAGE_FILE, 'utf8')
  }
  catch {
    throw new HubError('invalid_option', `The dashboard page is missing from the package (${PAGE_FILE.pathname}): reinstall hub-server, or set DASHBOARD_ENABLED=false`)
  }
  return () => new Response(html, {
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    },
  })
}
