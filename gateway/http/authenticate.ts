/**
 * Authentication: with API keys configured, every request but health, discovery and (unless asked) metrics
 * carries `Authorization: Bearer <key>`, and one without a valid key is refused with 401 in its protocol's
 * own shape: OpenAI's error body on /v1, a JSON-RPC error on /a2a and /mcp, plain text on /metrics, each with
 * `WWW-Authenticate: Bearer` (what MCP and A2A clients look for). The key is never repeated, not even in
 * part; the request goes on with the key's id for whatever counts it.
 *
 * Open without a key: /healthz and /readyz (kubelets and load balancers), A2A agent cards and the /a2a list
 * (discovery: a card is how a client learns it needs a key; the list names the agents and teams), and
 * /metrics unless `metrics` is set (its auth counter names key ids).
 *
 * The JSON-RPC code of a refusal is -32040, a server error no protocol here reserves: A2A's -32001 is
 * TaskNotFound, and MCP's SDK reads -32000 and -32001 as a closed connection and a timeout.
 */
import type { MiddlewareHandler } from 'hono'
import { Counter } from 'prom-client'
import type { Registry } from 'prom-client'
import type { KeyRing } from '../auth/keys.ts'
import { rpcError } from '../a2a/server.ts'
import { jsonRpcError } from '../mcp/server.ts'
import type { GatewayEnv } from '../openai/chat.ts'
import { errorResponse } from '../openai/errors.ts'

export interface AuthenticateOptions {
  readonly keys: KeyRing
  /** /metrics needs a key too (default: open, as Prometheus scrapes usually are inside the cluster). */
  readonly metrics?: boolean
  readonly registry?: Registry
}

export const UNAUTHENTICATED = -32040

/** Exactly the card routes of app.ts: /a2a/{agent,team}/[<namespace>/]<name>/.well-known/agent[-card].json. */
const CARD = /^\/a2a\/(agent|team)\/[^/]+(\/[^/]+)?\/\.well-known\/agent(-card)?\.json$/

export function authenticate(options: AuthenticateOptions): MiddlewareHandler<GatewayEnv> {
  const counter = new Counter({
    name: 'ark_auth_requests_total',
    help: 'Requests that needed an API key, by key id (empty when refused) and result: ok, missing, invalid.',
    labelNames: ['key', 'result'],
    registers: options.registry === undefined ? [] : [options.registry],
  })
  // One child per key id (ids are few and configured): a labelled inc per request costs more than the check.
  const ok = new Map<string, { inc: () => void }>()
  return async (c, next) => {
    const path = c.req.path
    if (isOpen(path, c.req.method, options.metrics === true)) return next()
    const header = c.req.header('authorization')
    const bearer = header !== undefined && /^bearer /i.test(header)
    const id = bearer ? options.keys.verify(header.slice(7).trim()) : undefined
    if (id === undefined) {
      const result = header === undefined ? 'missing' : 'invalid'
      counter.inc({ key: '', result })
      const message =
        header === undefined
          ? 'no API key: send it as Authorization: Bearer <key>'
          : bearer
            ? 'the API key is not valid (it may have been rotated out)'
            : 'only API keys are accepted, as Authorization: Bearer <key>'
      return refuse(path, message, result === 'invalid')
    }
    let child = ok.get(id)
    if (child === undefined) ok.set(id, (child = counter.labels({ key: id, result: 'ok' })))
    child.inc()
    c.set('apiKey', id)
    return next()
  }
}

function isOpen(path: string, method: string, metricsNeedKey: boolean): boolean {
  if (path === '/healthz' || path === '/readyz') return true
  if (path === '/metrics') return !metricsNeedKey
  // Hono answers HEAD with the GET route: both are reads.
  return (method === 'GET' || method === 'HEAD') && (path === '/a2a' || CARD.test(path))
}

function refuse(path: string, message: string, invalid: boolean): Response {
  // RFC 6750: a token that was sent and refused says so in the challenge.
  const challenge = {
    'www-authenticate': invalid ? 'Bearer realm="ark", error="invalid_token"' : 'Bearer realm="ark"',
  }
  if (path === '/mcp' || path.startsWith('/mcp/'))
    return jsonRpcError(401, UNAUTHENTICATED, message, challenge)
  if (path === '/a2a' || path.startsWith('/a2a/'))
    return rpcError(401, null, UNAUTHENTICATED, message, challenge)
  if (path === '/metrics')
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
