/**
 * The gateway's HTTP face: a Hono app on Web-standard Request/Response only, so the same app serves on Node
 * (serve-node.ts) and Deno (serve-deno.ts). Routes are thin; the work is in openai/, runtime/ and pool/.
 */
import { Hono } from 'hono'
import { cors } from 'hono/cors'
import { routePath } from 'hono/route'
import type { ObjectRef } from '../controller/api/index.ts'
import type { Catalog } from '../controller/store/index.ts'
import { A2AEndpoints, rpcError } from './a2a/server.ts'
import { MemoryTaskStore } from './a2a/task-store.ts'
import type { ExecutionEventBusManager, PushNotificationStore, TaskStore } from '@a2a-js/sdk/server'
import type { NetPolicy } from '../sandbox/index.ts'
import { Admission } from './admission.ts'
import type { JwtVerifier } from './auth/jwt.ts'
import type { KeyRing } from './auth/keys.ts'
import type { Quotas } from './auth/quotas.ts'
import { authenticate } from './http/authenticate.ts'
import { requestRecorder } from './http/request-record.ts'
import { jsonBody } from './http/body.ts'
import type { AllowedHosts } from './http/guards.ts'
import { DOT_SEGMENT_MESSAGE, hasDotSegment, hostAllowed } from './http/guards.ts'
import type { StreamLimits } from './http/response-stream.ts'
import type { Logger } from './log.ts'
import { traceRequests, tracer } from './trace/tracing.ts'
import { McpEndpoints, jsonRpcError } from './mcp/server.ts'
import type { McpScope } from './mcp/server.ts'
import type { Metrics } from './metrics.ts'
import type { ChatDeps, GatewayEnv } from './openai/chat.ts'
import { chatCompletions } from './openai/chat.ts'
import type { LaneDeps } from './openai/node-lane.ts'
import { errorResponse, renderRefusal } from './openai/errors.ts'
import { listModels, modelEntry } from './openai/models.ts'
import type { TaskQueue } from './pool/queue.ts'
import type { AgentRuntime } from './runtime/agent-runtime.ts'
import type { Memories } from './runtime/memory/registry.ts'
import type { TokenBudget } from './runtime/budget.ts'
import type { RecentRuns } from './ui/recent-runs.ts'
import { dashboardRoutes } from './ui/routes.ts'
import type { QueryEvents } from './ui/state.ts'

const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'CONNECT',
  'TRACE',
])

export interface AppDeps {
  readonly catalog: Catalog
  readonly runtime: AgentRuntime
  /** Conversation memories (runtime/memory/registry.ts); absent: nothing is remembered between requests. */
  readonly memories?: Memories
  /** Agents' daily token usage: a spent budget is refused at admission (429). */
  readonly budget?: TokenBudget
  readonly queue: TaskQueue
  readonly metrics: Metrics
  readonly log: Logger
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number
  /** Longest a client may take to send its body, in ms. */
  readonly bodyTimeoutMs: number
  /** Backpressure, bound and write timeout of streamed answers. */
  readonly stream: StreamLimits
  /** `Host` headers served (DNS rebinding); `any` when the gateway is not on loopback. */
  readonly allowedHosts: AllowedHosts
  /** Origins allowed to call from a browser (CORS); none by default. */
  readonly corsOrigins: readonly string[]
  /**
   * Where a line per request goes (method, path, route, status, duration, target, key id, and inside a trace
   * its ids); absent: no access log.
   */
  readonly accessLog?: Logger
  /** True once the manifests are loaded and reconciled. */
  readonly ready: () => boolean
  /** True once the process is shutting down: /readyz says 503 so that load balancers send no more. */
  readonly draining?: () => boolean
  /** MCP sessions held at once and their idle lifetime (defaults: mcp/server.ts). */
  readonly mcpSessions?: { readonly max?: number; readonly idleMs?: number }
  /**
   * Where A2A tasks are kept and how their events reach other replicas: this process's memory by default
   * (one replica); Redis (a2a/redis.ts) when replicas share them.
   */
  readonly a2a?: { readonly store: TaskStore; readonly buses: ExecutionEventBusManager }
  /**
   * API keys every call needs (but health, discovery and, unless `metrics`, /metrics); `ready` is false until
   * they are loaded (readiness fails meanwhile). Absent: open.
   */
  readonly auth?: {
    readonly keys: KeyRing
    readonly jwt?: JwtVerifier
    readonly metrics?: boolean
    readonly ready?: () => boolean
  }
  /** Keys' and namespaces' quotas (auth/quotas.ts); absent: none. */
  readonly quotas?: Quotas
  /** Runs admitted at once by this gateway; past it 503 `overloaded` (admission.ts). Absent: no bound. */
  readonly maxInFlight?: number
  /** How long a request's task may wait for a worker; past it 503 `queue_timeout` (admission.ts). */
  readonly maxQueueWaitMs?: number
  /** A2A push notifications: where configs are kept and the hosts deliveries may reach. Absent: off. */
  readonly a2aPush?: { readonly store: PushNotificationStore; readonly policy: NetPolicy }
  /** The runs admitted lately, which the dashboard lists (every face records its runs there). */
  readonly runs: RecentRuns
  /** Queries' Events, where this process keeps them (`ark dev`): the dashboard shows them. */
  readonly queryEvents?: QueryEvents
}

export interface App {
  readonly app: Hono<GatewayEnv>
  /**
   * What Node's lane (openai/node-lane.ts) needs to answer passthrough calls beside the app, with the app's
   * own parts; absent when every request must go through the app (tracing, CORS).
   */
  readonly lane: LaneDeps | undefined
  /** Ends what the routes hold between requests (MCP sessions). */
  close(): Promise<void>
  /** Ends the streams that would never end by themselves (MCP notification streams), for a drain. */
  endIdleStreams(): void
}

export function createApp(deps: AppDeps): App {
  const app = new Hono<GatewayEnv>()
  const bodyLimits = { maxBytes: deps.maxBodyBytes, timeoutMs: deps.bodyTimeoutMs }
  const admission = new Admission({ ...deps, providerFor: (agent) => deps.runtime.providerFor(agent) })
  const chat: ChatDeps = { ...deps, admission }
  const mcp = new McpEndpoints(
    { catalog: deps.catalog, admission, log: deps.log },
    {
      maxBodyBytes: deps.maxBodyBytes,
      ...(deps.mcpSessions?.max === undefined ? {} : { maxSessions: deps.mcpSessions.max }),
      ...(deps.mcpSessions?.idleMs === undefined ? {} : { sessionIdleMs: deps.mcpSessions.idleMs }),
    },
  )

  const a2a = new A2AEndpoints({
    catalog: deps.catalog,
    admission,
    log: deps.log,
    ...(deps.a2a ?? { store: new MemoryTaskStore() }),
    ...(deps.a2aPush === undefined ? {} : { push: deps.a2aPush }),
    authenticated: deps.auth !== undefined,
  })

  // Tracing is decided when the process starts (trace/tracing.ts): off, not even a middleware is added.
  const traces = tracer()
  if (traces !== undefined) app.use(traceRequests(traces))
  const record = requestRecorder(deps.metrics, deps.accessLog)
  app.use(async (c, next) => {
    const started = performance.now()
    await next()
    const route = routePath(c)
    record({
      // Deno.serve accepts any method token: only known ones become label values (OpenTelemetry's _OTHER).
      method: KNOWN_METHODS.has(c.req.method) ? c.req.method : '_OTHER',
      path: c.req.path,
      // Unmatched paths share one label value: paths are client input, label values must stay bounded.
      route: route === '/*' || route === '*' ? 'unmatched' : route,
      // A client that went away got nothing: 499, as proxies log it, not the status nobody received.
      status: c.req.raw.signal.aborted ? 499 : c.res.status,
      seconds: (performance.now() - started) / 1000,
      // Set by handlers that resolved a target; unset (undefined at run time) elsewhere.
      target: c.get('target') ?? '',
      principal: c.get('principal'),
    })
  })

  // Before any route: where a request may come from and what its path may hold.
  app.use(async (c, next) => {
    const host = c.req.header('host')
    if (!hostAllowed(host, deps.allowedHosts)) {
      const served =
        deps.allowedHosts === 'loopback'
          ? 'this gateway listens on loopback and serves only loopback names (localhost, 127.0.0.1, [::1])'
          : 'this gateway serves only loopback names and the names --allowed-hosts lists'
      return errorResponse(
        403,
        `${served}, not ${JSON.stringify((host ?? '').slice(0, 100))}: a page in a browser could otherwise reach it by DNS rebinding. Use --allowed-hosts (ARK_ALLOWED_HOSTS) to name others.`,
        { code: 'host_not_allowed' },
      )
    }
    if (hasDotSegment(c.req.path)) return errorResponse(400, DOT_SEGMENT_MESSAGE, { code: 'invalid_path' })
    await next()
    return undefined
  })
  if (deps.corsOrigins.length > 0) {
    app.use(
      cors({
        origin: [...deps.corsOrigins],
        allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
        // mcp-session-id: a browser MCP host has to read it to go on with its session.
        exposeHeaders: ['x-request-id', 'retry-after', 'x-should-retry', 'mcp-session-id'],
        maxAge: 600,
      }),
    )
  }

  const auth =
    deps.auth === undefined ? undefined : authenticate({ ...deps.auth, registry: deps.metrics.registry })
  if (auth !== undefined) app.use(auth.middleware)

  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', (c) =>
    deps.draining?.() === true
      ? c.json({ status: 'draining' }, 503)
      : !deps.ready()
        ? c.json({ status: 'loading manifests' }, 503)
        : deps.auth?.ready?.() === false
          ? c.json({ status: 'waiting for API keys' }, 503)
          : c.json({ status: 'ready' }),
  )
  app.get('/metrics', async (c) => {
    const text = await deps.metrics.text()
    return c.body(text, 200, { 'content-type': deps.metrics.contentType })
  })

  app.get('/v1/models', (c) => c.json(listModels(deps.catalog, c.get('principal'))))
  // Ids hold slashes (agent/ns/name), so the id is the rest of the path.
  app.get('/v1/models/*', (c) => {
    let id: string
    try {
      id = decodeURIComponent(c.req.path.slice('/v1/models/'.length))
    } catch {
      return errorResponse(
        400,
        `the model id in ${c.req.path.slice(0, 200)} is not valid percent-encoding (a % must be followed by two hex digits)`,
        { param: 'model', code: 'invalid_model_id' },
      )
    }
    const target = deps.catalog.resolveTarget(id)
    const who = c.get('principal')
    // Only the id /v1/models lists (to this key), not every spelling a chat request may use.
    const model =
      target === undefined ||
      deps.catalog.targetId(target.kind, target.resource.ref) !== id ||
      (who !== undefined && !who.allowsTarget(target.kind, target.resource.ref))
        ? undefined
        : modelEntry(deps.catalog, target.kind, target.resource)
    return model === undefined
      ? errorResponse(404, `The model \`${id.slice(0, 200)}\` does not exist; GET /v1/models lists them.`, {
          param: 'model',
          code: 'model_not_found',
        })
      : c.json(model)
  })
  app.post('/v1/chat/completions', jsonBody(bodyLimits, renderRefusal), (c) => chatCompletions(c, chat))

  // MCP (streamable HTTP): POST carries JSON-RPC, GET opens a session's event stream, DELETE ends a session.
  const mcpBody = jsonBody(bodyLimits, (refusal) =>
    jsonRpcError(refusal.status, refusal.code === 'invalid_json' ? -32700 : -32600, refusal.message),
  )
  const mcpRoutes: readonly [
    string,
    (c: { req: { param: (name: string) => string | undefined } }) => McpScope,
  ][] = [
    ['/mcp', () => ({ all: true })],
    ['/mcp/agent/:name', (c) => ({ agent: { namespace: 'default', name: c.req.param('name') ?? '' } })],
    ['/mcp/team/:name', (c) => ({ team: { namespace: 'default', name: c.req.param('name') ?? '' } })],
    [
      '/mcp/team/:namespace/:name',
      (c) => ({ team: { namespace: c.req.param('namespace') ?? '', name: c.req.param('name') ?? '' } }),
    ],
    [
      '/mcp/agent/:namespace/:name',
      (c) => ({ agent: { namespace: c.req.param('namespace') ?? '', name: c.req.param('name') ?? '' } }),
    ],
  ]
  for (const [path, scope] of mcpRoutes) {
    app.post(path, mcpBody, (c) => mcp.handle(c.req.raw, scope(c), c.get('body'), c.get('principal')))
    app.on(['GET', 'DELETE'], path, (c) => mcp.handle(c.req.raw, scope(c), undefined, c.get('principal')))
    app.all(path, (c) =>
      jsonRpcError(
        405,
        -32600,
        `${c.req.method} is not allowed on ${c.req.path.slice(0, 200)}; use POST, GET or DELETE`,
        { allow: 'GET, POST, DELETE' },
      ),
    )
  }

  // A2A: cards, and JSON-RPC at each agent's and each team's base URL.
  const refOf = (c: { req: { param: (name: string) => string | undefined } }): ObjectRef => ({
    namespace: c.req.param('namespace') ?? 'default',
    name: c.req.param('name') ?? '',
  })
  const a2aBody = jsonBody(bodyLimits, (refusal) =>
    rpcError(refusal.status, null, refusal.code === 'invalid_json' ? -32700 : -32600, refusal.message),
  )
  app.get('/a2a', (c) => a2a.list(c.req.raw, c.get('principal')))
  for (const [kind, base] of [
    ['Agent', '/a2a/agent/:name'],
    ['Agent', '/a2a/agent/:namespace/:name'],
    ['Team', '/a2a/team/:name'],
    ['Team', '/a2a/team/:namespace/:name'],
  ] as const) {
    app.get(`${base}/.well-known/agent-card.json`, (c) => a2a.card(c.req.raw, kind, refOf(c), false))
    app.get(`${base}/.well-known/agent.json`, (c) => a2a.card(c.req.raw, kind, refOf(c), true))
    app.post(base, a2aBody, (c) => a2a.rpc(c.req.raw, kind, refOf(c), c.get('body'), c.get('principal')))
    app.all(base, (c) =>
      rpcError(405, null, -32600, `${c.req.method} is not allowed on ${c.req.path.slice(0, 200)}; use POST`, {
        allow: 'POST',
      }),
    )
  }

  dashboardRoutes(app, { ...deps, admission })

  for (const [path, allow] of [
    ['/v1/chat/completions', 'POST'],
    ['/v1/models', 'GET'],
    ['/v1/models/*', 'GET'],
    ['/metrics', 'GET'],
    ['/healthz', 'GET'],
    ['/readyz', 'GET'],
    ['/ui', 'GET'],
    ['/ui/', 'GET'],
    ['/ui/api/state', 'GET'],
    ['/ui/api/chat', 'POST'],
  ] as const) {
    app.all(path, (c) =>
      errorResponse(405, `${c.req.method} is not allowed on ${c.req.path.slice(0, 200)}; use ${allow}`, {
        code: 'method_not_allowed',
        headers: { allow },
      }),
    )
  }

  app.notFound((c) =>
    errorResponse(404, `there is no route ${c.req.method} ${new URL(c.req.url).pathname.slice(0, 200)}`, {
      code: 'not_found',
    }),
  )
  app.onError((err, c) => {
    if (c.req.raw.signal.aborted) {
      // The client left; whatever failed after that failed for nobody. Not a server error.
      deps.log.info('client went away', { method: c.req.method, path: c.req.path.slice(0, 200) })
      return errorResponse(499, 'the client closed the request', { code: 'client_closed_request' })
    }
    deps.log.error('request failed', {
      method: c.req.method,
      path: c.req.path.slice(0, 200),
      error: err.message,
    })
    return errorResponse(500, 'the gateway failed to handle the request; see its log', {
      code: 'internal_error',
    })
  })
  return {
    app,
    // Tracing or CORS on, every request gets its server span or its CORS headers: no lane around the app.
    lane:
      traces !== undefined || deps.corsOrigins.length > 0
        ? undefined
        : {
            chat,
            allowedHosts: deps.allowedHosts,
            auth,
            body: bodyLimits,
            record,
            log: deps.log,
          },
    close: () => mcp.close(),
    endIdleStreams: () => mcp.endNotificationStreams(),
  }
}
