/**
 * The Node lane: `POST /v1/chat/completions` naming a Model (`model/<name>`), not streamed, answered on
 * node:http directly instead of through @hono/node-server and the app.
 *
 * Why: at 50 connections a gateway's one JS thread is the bottleneck, so its throughput is about 1 / its CPU
 * per request, and bench/ passthrough measures that against a bare node:http proxy. @hono/node-server and
 * Hono alone, with no logic at all, cost 1.5 times the bare proxy's CPU (117 against 78 us a request,
 * 2026-12-08). Through them ark's passthrough cost 2.6 to 2.9 times the bare proxy's CPU; through the lane,
 * 2.1 to 2.2 (same-run A/B). The lane keeps the call's work (the caller's key and scope, admission, the
 * upstream call, redaction, metrics) and drops the adapter, the middleware chain and the Request objects.
 *
 * The lane answers only what it would answer exactly as the app does, with the app's own functions
 * (direct.ts for the call, http/body.ts's rules for the body, authenticate's key check, the request record
 * of app.ts). Everything else goes on to the app, `next()`: other paths (a query string included), streams,
 * agents and teams, requests without a Content-Length or with a Host, Authorization or Content-Type given
 * twice, any key it cannot check synchronously (JWTs), and any refusal of the request itself (a wrong key,
 * a wrong Host, a Content-Type that is not JSON, a body that does not parse). A body already read goes on
 * with it, parsed, so that the app reads it only once. With tracing or CORS on there is no lane: every
 * request gets its server span, or the CORS headers the app adds to every answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ResourceOf } from '../../controller/api/index.ts'
import type { Authentication } from '../http/authenticate.ts'
import type { BodyLimits, Parsed } from '../http/body.ts'
import { jsonTypeRefusal, parseJson, tooSlow, unreadable } from '../http/body.ts'
import type { AllowedHosts } from '../http/guards.ts'
import { hostAllowed } from '../http/guards.ts'
import type { Logger } from '../log.ts'
import type { RequestRecord } from '../http/request-record.ts'
import type { Principal } from '../auth/scope.ts'
import type { ChatDeps } from './chat.ts'
import type { PlainAnswer } from './direct.ts'
import { directModel, directModelOf } from './direct.ts'
import { errorResponse, renderRefusal } from './errors.ts'

/** The one path the lane serves, exactly (with a query, a request is the app's). */
const LANE_PATH = '/v1/chat/completions'

/** What the lane needs of the app: the same parts the app's routes are built from. */
export interface LaneDeps {
  readonly chat: ChatDeps
  readonly allowedHosts: AllowedHosts
  /** API keys are required: only keys checked synchronously are the lane's. */
  readonly auth: Authentication | undefined
  readonly body: BodyLimits
  /** The metrics and access-log line of a request, as the app records its own. */
  readonly record: (request: RequestRecord) => void
  readonly log: Logger
}

/** Hands the request to the app; with the body when the lane has read it. */
export type LaneNext = (body?: { readonly bytes: Buffer; readonly parsed: Parsed }) => void

export type NodeLane = (req: IncomingMessage, res: ServerResponse, next: LaneNext) => void

export function nodeLane(deps: LaneDeps): NodeLane {
  return (req, res, next) => {
    const headers = req.headers
    const length = headers['content-length']
    if (
      req.url !== LANE_PATH ||
      req.method !== 'POST' ||
      !hostAllowed(headers.host, deps.allowedHosts) ||
      jsonTypeRefusal(headers['content-type']) !== undefined ||
      length === undefined ||
      !/^\d{1,12}$/.test(length) ||
      Number(length) > deps.body.maxBytes ||
      !heldOnce(req.rawHeaders)
    ) {
      next()
      return
    }
    const who = deps.auth?.keyFor(headers.authorization, 'openai')
    if (deps.auth !== undefined && who === undefined) {
      next()
      return
    }
    const started = performance.now()
    readWhole(req, deps.body.timeoutMs, (read) => {
      if (Buffer.isBuffer(read)) {
        const parsed = parseJson(read)
        const body = 'value' in parsed ? parsed.value : undefined
        const model = directModelOf(deps.chat.catalog, body)
        const stream = (body as { stream?: unknown } | undefined)?.stream
        if (model === undefined || (stream !== undefined && stream !== false)) {
          next({ bytes: read, parsed })
          return
        }
        if (who !== undefined) deps.auth?.admitted(who)
        void settle(deps, res, started, who, () =>
          call(res, deps, body as Record<string, unknown>, model, who),
        )
        return
      }
      if (who !== undefined) deps.auth?.admitted(who)
      const refused = read === 'too_slow' ? tooSlow(deps.body) : unreadable(res.destroyed)
      // The rest of the body may still come: the connection ends with this answer, so that it is not read
      // as the next request.
      res.shouldKeepAlive = false
      if ('refusal' in refused) {
        const response = renderRefusal(refused.refusal)
        void settle(deps, res, started, who, () =>
          Promise.resolve({ target: undefined, answer: { response } }),
        )
      }
    })
  }
}

/**
 * Whether the headers the lane reads came once each. Node keeps the first of a repeated Host, Authorization
 * or Content-Type, where the app (through @hono/node-server) sees them joined, and may answer otherwise: such
 * a request is the app's.
 */
function heldOnce(raw: readonly string[]): boolean {
  let host = 0
  let authorization = 0
  let type = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    // By length first: most names are none of these, and are not lowercased.
    if (name.length === 4 && name.toLowerCase() === 'host') host++
    else if (name.length === 13 && name.toLowerCase() === 'authorization') authorization++
    else if (name.length === 12 && name.toLowerCase() === 'content-type') type++
  }
  return host <= 1 && authorization <= 1 && type <= 1
}

/** The call, cancelled when the client goes away. */
function call(
  res: ServerResponse,
  deps: LaneDeps,
  body: Record<string, unknown>,
  model: ResourceOf<'Model'>,
  who: Principal | undefined,
): ReturnType<typeof directModel> {
  const gone = new AbortController()
  res.once('close', () => {
    if (!res.writableFinished) gone.abort(new DOMException('the client closed the request', 'AbortError'))
  })
  return directModel(deps.chat, body, model, who, { signal: gone.signal })
}

/**
 * Writes what `work` answers and records the request, as the app's middleware records its own. What fails
 * on the way is answered as the app's onError answers it: logged, and a 500 that says where to look.
 */
async function settle(
  deps: LaneDeps,
  res: ServerResponse,
  started: number,
  who: Principal | undefined,
  work: () => ReturnType<typeof directModel>,
): Promise<void> {
  let target: string | undefined
  let plain: PlainAnswer
  try {
    const done = await work()
    target = done.target
    plain = 'plain' in done.answer ? done.answer.plain : await plainOf(done.answer.response)
  } catch (err) {
    // As the app's onError: after the client left, whatever failed failed for nobody.
    if (res.destroyed) deps.log.info('client went away', { method: 'POST', path: LANE_PATH })
    else
      deps.log.error('request failed', {
        method: 'POST',
        path: LANE_PATH,
        error: err instanceof Error ? err.message : String(err),
      })
    plain = await plainOf(
      errorResponse(500, 'the gateway failed to handle the request; see its log', { code: 'internal_error' }),
    )
  }
  const gone = res.destroyed
  if (!gone) {
    try {
      res.writeHead(
        plain.status,
        plain.bytes === null ? plain.headers : { ...plain.headers, 'content-length': plain.bytes.byteLength },
      )
      res.end(plain.bytes ?? undefined)
    } catch (err) {
      // Node refused a header (a value it will not send): the client gets a cut connection, not a hang.
      deps.log.error('response failed', {
        path: LANE_PATH,
        error: err instanceof Error ? err.message : String(err),
      })
      res.destroy()
    }
  }
  deps.record({
    method: 'POST',
    path: LANE_PATH,
    route: LANE_PATH,
    // A client that went away got nothing: 499, as the app counts it.
    status: gone ? 499 : plain.status,
    seconds: (performance.now() - started) / 1000,
    target: target ?? '',
    principal: who,
  })
}

/**
 * A Response ark made (a refusal, an error, a mapped answer), as bytes: the lane never takes a stream, so
 * every Response it writes is small and whole.
 */
async function plainOf(response: Response): Promise<PlainAnswer> {
  const headers: Record<string, string> = {}
  response.headers.forEach((value, name) => {
    headers[name] = value
  })
  const bytes = response.body === null ? null : new Uint8Array(await response.arrayBuffer())
  return { status: response.status, headers, bytes }
}

/**
 * The body whole, as the HTTP parser holds it to its Content-Length; `too_slow` past the body time bound
 * (counted from here, as the app counts from its handler's start), `failed` when the client goes away or
 * its framing breaks.
 */
function readWhole(
  req: IncomingMessage,
  timeoutMs: number,
  done: (read: Buffer | 'too_slow' | 'failed') => void,
): void {
  const chunks: Buffer[] = []
  let finished = false
  const finish = (read: Buffer | 'too_slow' | 'failed') => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    done(read)
  }
  const timer = setTimeout(() => finish('too_slow'), timeoutMs)
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.once('end', () => finish(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)))
  req.once('error', () => finish('failed'))
  req.once('close', () => finish('failed'))
}
