/**
 * Authentication: with API keys configured, every request but health, discovery and (unless asked) metrics
 * carries `Authorization: Bearer <key>`, and one without a valid key is refused with 401 in its protocol's
 * own shape: OpenAI's error body on /v1, a JSON-RPC error on /a2a and /mcp, plain text on /metrics, each with
 * `WWW-Authenticate: Bearer` (what MCP and A2A clients look for). The key is never repeated, not even in
 * part; the request goes on with its Principal (the key's id and scope) for the routes to check targets
 * against and for whatever counts it.
 *
 * A key whose scope leaves out the route's face (`routes`: openai, a2a, mcp, metrics, ui) is refused with 403, in
 * the same shapes. Targets are the routes' to check (admission, the lists), as only they know what is named.
 *
 * A key that is revoked, or whose scope changes, ends the event streams it holds open (a chat completion's,
 * an A2A task's, an MCP session's): each gets a last error event in its protocol's shape, and its run is
 * cancelled as when a client leaves.
 *
 * Open without a key: /healthz and /readyz (kubelets and load balancers), A2A agent cards (discovery: a card
 * is how a client learns it needs a key), the dashboard's page and files (they hold nothing; the page asks for
 * a key, which its /ui/api calls carry) and /metrics unless `metrics` is set. The /a2a list needs a key, and
 * shows what that key may call.
 */
import type { Context, MiddlewareHandler } from 'hono'
import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import type { JwtVerifier } from '../auth/jwt.ts'
import { looksLikeJwt } from '../auth/jwt.ts'
import type { KeyRing } from '../auth/keys.ts'
import { AUTH_UNAVAILABLE, FORBIDDEN, UNAUTHENTICATED } from '../auth/scope.ts'
import type { Principal, RouteGroup } from '../auth/scope.ts'
import { rpcError } from '../a2a/server.ts'
import { jsonRpcError } from '../mcp/server.ts'
import type { GatewayEnv } from '../openai/chat.ts'
import { errorBody, errorEvent, errorResponse } from '../openai/errors.ts'
import { PAGE_PATHS } from '../ui/routes.ts'

export interface AuthenticateOptions {
  readonly keys: KeyRing
  /** JWTs from an identity provider, beside the keys (auth/jwt.ts); absent: keys only. */
  readonly jwt?: JwtVerifier
  /** /metrics needs a key too (default: open, as Prometheus scrapes usually are inside the cluster). */
  readonly metrics?: boolean
  readonly registry?: Registry
}

/** Exactly the card routes of app.ts: /a2a/{agent,team}/[<namespace>/]<name>/.well-known/agent[-card].json. */
const CARD = /^\/a2a\/(agent|team)\/[^/]+(\/[^/]+)?\/\.well-known\/agent(-card)?\.json$/

export interface Authentication {
  /** The check, as the app's middleware. */
  readonly middleware: MiddlewareHandler<GatewayEnv>
  /**
   * The Principal of an API key sent as `Authorization: Bearer <key>` that may call `group`, checked
   * synchronously; undefined for anything else (no key, a wrong one, a JWT, a scope that leaves the face
   * out), whose answer is the middleware's to give. Counted only once `admitted` is called with it: a
   * caller that hands the request on to the app does not count it twice.
   */
  keyFor(header: string | undefined, group: RouteGroup): Principal | undefined
  /** Counts a request admitted with `keyFor`'s Principal, as the middleware counts its own. */
  admitted(principal: Principal): void
}

export function authenticate(options: AuthenticateOptions): Authentication {
  // Counted in plain numbers and handed to prom-client when scraped: its labelled inc (a label hash per call)
  // cost about as much as the rest of a key's check. Key ids are few and configured, results five.
  const counts = new Map<string, { readonly key: string; readonly result: string; n: number }>()
  const tallyOf = (key: string, result: string) => {
    const name = `${result}/${key}`
    let tally = counts.get(name)
    if (tally === undefined) counts.set(name, (tally = { key, result, n: 0 }))
    return tally
  }
  const count = (key: string, result: string) => {
    tallyOf(key, result).n += 1
  }
  /** The "ok" tallies by key id, looked up without building a name on the way of every admitted request. */
  const ok = new Map<string, { n: number }>()
  new Counter({
    name: 'ark_auth_requests_total',
    help: 'Requests that needed an API key, by key id (empty when unknown) and result: ok, missing, invalid, forbidden (the scope leaves the route out), unavailable (a JWT whose issuer keys cannot be fetched).',
    labelNames: ['key', 'result'],
    registers: options.registry === undefined ? [] : [options.registry],
    collect() {
      this.reset()
      for (const { key, result, n } of counts.values()) this.inc({ key, result }, n)
    },
  })
  const admitted = (principal: Principal) => {
    const { label } = principal
    let tally = ok.get(label)
    if (tally === undefined) ok.set(label, (tally = tallyOf(label, 'ok')))
    tally.n += 1
  }
  const keyFor = (header: string | undefined, group: RouteGroup) => {
    const token = bearerToken(header)
    const principal = token === undefined ? undefined : options.keys.verify(token)
    return principal?.allowsRoute(group) === true ? principal : undefined
  }
  const middleware: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    const path = c.req.path
    if (isOpen(path, c.req.method, options.metrics === true)) return next()
    const group = groupOf(path)
    const header = c.req.header('authorization')
    const bearer = header !== undefined && /^bearer /i.test(header)
    const token = bearerToken(header) ?? ''
    let principal = bearer ? options.keys.verify(token) : undefined
    let refused: string | undefined
    if (principal === undefined && options.jwt !== undefined && looksLikeJwt(token)) {
      const verified = await options.jwt.verify(token)
      if (!('error' in verified)) principal = verified
      else if (verified.unavailable === true) {
        count('', 'unavailable')
        return unavailable(group, `the bearer token cannot be checked now: ${verified.error}; retry shortly`)
      } else refused = verified.error
    }
    if (principal === undefined) {
      const result = header === undefined ? 'missing' : 'invalid'
      count('', result)
      const message =
        header === undefined
          ? 'no API key: send it as Authorization: Bearer <key>'
          : refused !== undefined
            ? `the bearer token is not accepted: ${refused}`
            : bearer
              ? 'the API key is not valid (it may have been rotated out)'
              : 'only API keys are accepted, as Authorization: Bearer <key>'
      return refuse(group, message, result === 'invalid')
    }
    const { label } = principal
    if (group !== undefined && !principal.allowsRoute(group)) {
      count(label, 'forbidden')
      return forbid(
        group,
        `${principal.named} may not call ${group === 'openai' ? 'the OpenAI routes' : `/${group}`}: its scope's routes leave them out`,
      )
    }
    admitted(principal)
    c.set('principal', principal)
    await next()
    // Streams end with their key's revocation, or their token's expiry.
    const onRevoked = principal.onRevoked ?? principal.onExpired
    // Only event streams are wrapped: plain answers are left as they are, their bodies untouched.
    if (group === undefined || onRevoked === undefined || !isEventStream(c, group)) return undefined
    const res = c.res
    const body = res.body
    if (body === null) return undefined
    c.res = undefined
    c.res = new Response(revocable(body, onRevoked, revokedEvent(group)), res)
    return undefined
  }
  return { middleware, keyFor, admitted }
}

/** The token of `Authorization: Bearer <token>`; undefined for any other scheme, or none. */
function bearerToken(header: string | undefined): string | undefined {
  return header !== undefined && /^bearer /i.test(header) ? header.slice(7).trim() : undefined
}

/**
 * Whether the answer is an event stream, as its content type says. On the OpenAI routes only a request that
 * asked for a stream (`stream: true`) can get one, and the others are told apart without the answer's
 * headers: on Node, asking for them builds a Headers object, each header checked, that @hono/node-server
 * would not otherwise build (it writes a record of headers straight out).
 */
function isEventStream(c: Context<GatewayEnv>, group: RouteGroup): boolean {
  if (group === 'openai') {
    const body: unknown = c.get('body')
    if (typeof body !== 'object' || body === null || (body as { stream?: unknown }).stream !== true)
      return false
  }
  return c.res.headers.get('content-type')?.startsWith('text/event-stream') === true
}

/** The face a path belongs to, for a scope's `routes`. */
function groupOf(path: string): RouteGroup | undefined {
  if (path.startsWith('/v1/')) return 'openai'
  if (path === '/a2a' || path.startsWith('/a2a/')) return 'a2a'
  if (path === '/mcp' || path.startsWith('/mcp/')) return 'mcp'
  if (path === '/metrics') return 'metrics'
  if (path === '/ui' || path.startsWith('/ui/')) return 'ui'
  return undefined
}

const REVOKED =
  'the API key of this stream was revoked or its scope changed, or its token expired: reconnect with a valid one'

/** The last event of a stream whose key was revoked, in its protocol's shape. */
function revokedEvent(group: RouteGroup): Uint8Array {
  const text =
    group === 'openai' || group === 'ui'
      ? errorEvent(errorBody(401, REVOKED, { type: 'invalid_request_error', code: 'invalid_api_key' }))
      : `event: error\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: UNAUTHENTICATED, message: REVOKED } })}\n\n`
  return new TextEncoder().encode(text)
}

/**
 * `body`, ended with `last` when its key is revoked (or already was, while the request was on its way): what
 * it read from is cancelled (which cancels the run behind it, as a client that leaves does). Pulled one chunk
 * at a time, so the ring's listener is the only thing a stream adds, and it goes when the stream ends.
 */
function revocable(
  body: ReadableStream<Uint8Array>,
  onRevoked: (listener: () => void) => () => void,
  last: Uint8Array,
): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  let ended = false
  let stop = () => {}
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        stop = onRevoked(() => {
          if (ended) return
          ended = true
          controller.enqueue(last)
          controller.close()
          reader.cancel(new DOMException(REVOKED, 'AbortError')).catch(() => undefined)
        })
      },
      async pull(controller) {
        let next: Awaited<ReturnType<typeof reader.read>>
        try {
          next = await reader.read()
        } catch (err) {
          if (ended) return
          ended = true
          stop()
          controller.error(err)
          return
        }
        if (ended) return
        if (next.done) {
          ended = true
          stop()
          controller.close()
        } else controller.enqueue(next.value)
      },
      cancel(reason) {
        ended = true
        stop()
        return reader.cancel(reason)
      },
    },
    { highWaterMark: 0 },
  )
}

function isOpen(path: string, method: string, metricsNeedKey: boolean): boolean {
  if (path === '/healthz' || path === '/readyz') return true
  if (path === '/metrics') return !metricsNeedKey
  // Hono answers HEAD with the GET route: both are reads.
  return (method === 'GET' || method === 'HEAD') && (PAGE_PATHS.has(path) || CARD.test(path))
}

/** When the token's issuer keys cannot be fetched: 503 in the shape of the route's protocol. */
function unavailable(group: RouteGroup | undefined, message: string): Response {
  const retry = { 'retry-after': String(AUTH_RETRY_SECONDS) }
  if (group === 'mcp') return jsonRpcError(503, AUTH_UNAVAILABLE, message, retry)
  if (group === 'a2a') return rpcError(503, null, AUTH_UNAVAILABLE, message, retry)
  if (group === 'metrics')
    return new Response(`${message}\n`, { status: 503, headers: { 'content-type': 'text/plain', ...retry } })
  return errorResponse(503, message, { type: 'server_error', code: 'auth_unavailable', headers: retry })
}

/** When a caller whose token could not be checked may retry. */
const AUTH_RETRY_SECONDS = 5

/** 403 in the shape of the route's protocol. */
export function forbid(group: RouteGroup, message: string): Response {
  if (group === 'mcp') return jsonRpcError(403, FORBIDDEN, message)
  if (group === 'a2a') return rpcError(403, null, FORBIDDEN, message)
  if (group === 'metrics')
    return new Response(`${message}\n`, { status: 403, headers: { 'content-type': 'text/plain' } })
  return errorResponse(403, message, { code: 'route_not_allowed' })
}

function refuse(group: RouteGroup | undefined, message: string, invalid: boolean): Response {
  // RFC 6750: a token that was sent and refused says so in the challenge.
  const challenge = {
    'www-authenticate': invalid ? 'Bearer realm="ark", error="invalid_token"' : 'Bearer realm="ark"',
  }
  if (group === 'mcp') return jsonRpcError(401, UNAUTHENTICATED, message, challenge)
  if (group === 'a2a') return rpcError(401, null, UNAUTHENTICATED, message, challenge)
  if (group === 'metrics')
    return new Response(`${message}\n`, {
      status: 401,
      headers: { 'content-type': 'text/plain', ...challenge },
    })
  return errorResponse(401, message, {
    type: 'invalid_request_error',
    code: 'invalid_api_key',
    headers: challenge,
  })
}
