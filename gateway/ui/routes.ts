/**
 * The dashboard at /ui: a page (gateway/ui/assets/) that reads one JSON document (`GET /ui/api/state`, state.ts)
 * every few seconds and runs the playground through `POST /ui/api/chat` (chat.ts).
 *
 * The page and its files are open, as a login page is: with API keys they hold nothing, and the page asks for a
 * key, which every /ui/api call then carries (a scope's `routes` names this face `ui`). They are served with a
 * content security policy that allows only this origin's own script, style and requests, and no framing.
 */
import type { Hono } from 'hono'
import type { Admission } from '../admission.ts'
import { jsonBody } from '../http/body.ts'
import type { StreamLimits } from '../http/response-stream.ts'
import type { Logger } from '../log.ts'
import type { GatewayEnv } from '../openai/chat.ts'
import { errorResponse, renderRefusal } from '../openai/errors.ts'
import { asset } from './assets.ts'
import { playgroundChat } from './chat.ts'
import type { StateSources } from './state.ts'
import { dashboardState } from './state.ts'

export interface DashboardDeps extends StateSources {
  readonly admission: Admission
  readonly stream: StreamLimits
  readonly log: Logger
  readonly maxBodyBytes: number
  readonly bodyTimeoutMs: number
}

/** The page's files besides the page itself (index.html, at /ui and /ui/). */
const FILES = ['app.js', 'style.css', 'favicon.svg'] as const

/** The page and its files, as their paths under /ui name them: what authentication leaves open. */
export const PAGE_PATHS: ReadonlySet<string> = new Set(['/ui', '/ui/', ...FILES.map((f) => `/ui/${f}`)])

const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-cache',
}

export function dashboardRoutes(app: Hono<GatewayEnv>, deps: DashboardDeps): void {
  const serve = (name: string) => (c: { req: { header: (n: string) => string | undefined } }) => {
    const file = asset(name)
    if (file === undefined)
      return errorResponse(404, `there is no file ${name} in the dashboard`, { code: 'not_found' })
    const headers = { ...PAGE_HEADERS, etag: file.etag, 'content-type': file.type }
    if (c.req.header('if-none-match') === file.etag) return new Response(null, { status: 304, headers })
    return new Response(file.body, { headers })
  }
  app.get('/ui', serve('index.html'))
  app.get('/ui/', serve('index.html'))
  for (const name of FILES) app.get(`/ui/${name}`, serve(name))

  app.get('/ui/api/state', async (c) => {
    const state = await dashboardState(deps, c.get('principal'))
    return new Response(JSON.stringify(state), {
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    })
  })
  app.post(
    '/ui/api/chat',
    jsonBody({ maxBytes: deps.maxBodyBytes, timeoutMs: deps.bodyTimeoutMs }, renderRefusal),
    (c) => playgroundChat(c, deps),
  )
}
