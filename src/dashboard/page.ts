import { DASHBOARD_HTML } from './page-html.ts'

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

/** Answers `GET <path>` with the dashboard page. */
export function createDashboardPage(): () => Response {
  return () => new Response(DASHBOARD_HTML, {
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    },
  })
}
