/**
 * One call assembles the data plane's edge over a catalog: the HTTP app, metrics, the task queue (in-process
 * pools, or the pools' Redis streams) and the agent runtime (which runs in-process pools' tasks and direct
 * model calls). The caller (the CLI, a test, an embedder) owns the catalog and the listening socket.
 */
import type { Catalog } from '../controller/store/index.ts'
import type { Sandbox } from '../sandbox/index.ts'
import { InMemoryPushNotificationStore } from '@a2a-js/sdk/server'
import { NetPolicy } from '../sandbox/index.ts'
import { RedisA2A } from './a2a/redis.ts'
import { createApp } from './app.ts'
import type { JwtVerifier } from './auth/jwt.ts'
import type { KeyRing } from './auth/keys.ts'
import { MemoryRateLimiter, Quotas, RedisRateLimiter } from './auth/quotas.ts'
import type { RedisSettings, RuntimeSettings } from './assemble.ts'
import { DEFAULTS, assemble } from './assemble.ts'
import type { AllowedHosts } from './http/guards.ts'
import type { StreamLimits } from './http/response-stream.ts'
import { STREAM_DEFAULTS } from './http/response-stream.ts'
import type { Logger } from './log.ts'
import type { ServeFetch } from './serve.ts'
import type { LaneDeps } from './openai/node-lane.ts'
import { createLogger, silentLogger } from './log.ts'
import type { Metrics } from './metrics.ts'
import type { TaskQueue } from './pool/queue.ts'
import type { AgentRuntime } from './runtime/agent-runtime.ts'
import type { TokenBudget } from './runtime/budget.ts'
import type { McpClients } from './runtime/mcp/client.ts'
import { Memories } from './runtime/memory/registry.ts'
import { RecentRuns } from './ui/recent-runs.ts'
import type { QueryEvents } from './ui/state.ts'

export { DEFAULTS } from './assemble.ts'

export interface GatewayOptions extends RuntimeSettings {
  /** Also decides the default namespace: `agent/<name>` means the catalog's. */
  readonly catalog: Catalog
  /** Largest request body, in bytes (default 4 MiB). */
  readonly maxBodyBytes?: number
  /** Longest a client may take to send its body, in ms (default 30 s). */
  readonly bodyTimeoutMs?: number
  /** Streamed answers: backpressure, the most one response may buffer, the write timeout. */
  readonly stream?: Partial<StreamLimits>
  /**
   * `Host` headers served (default `any`; the CLI restricts a loopback bind to loopback names, against DNS
   * rebinding).
   */
  readonly allowedHosts?: AllowedHosts
  /** Origins a browser may call from (CORS); default none. */
  readonly corsOrigins?: readonly string[]
  /** One log line per request served (component `access`); default off. */
  readonly accessLog?: boolean
  /**
   * Submit tasks to the pools' Redis streams, for `ark worker` processes to run, instead of running them in
   * this process. Default: in-process pools.
   */
  readonly redis?: RedisSettings
  /** This replica's name in Redis (its reply stream); default random. */
  readonly replicaId?: string
  readonly log?: Logger
  readonly processMetrics?: boolean
  /** Readiness beyond "constructed" (default: always ready). */
  readonly ready?: () => boolean
  /** Runs this gateway admits at once; past it 503 `overloaded` (default: no bound). */
  readonly maxInFlight?: number
  /** How long a request's task may wait for a worker; past it 503 `queue_timeout` (default: its deadline). */
  readonly maxQueueWaitMs?: number
  /** True once the process is shutting down: readiness fails (503 `draining`) while requests are still served. */
  readonly draining?: () => boolean
  /** MCP sessions this replica holds at once (default 1000) and how long an idle one lives (default 30 min). */
  readonly mcpSessions?: { readonly max?: number; readonly idleMs?: number }
  /**
   * Hosts A2A push notifications may be delivered to (patterns as a webhook tool's allowedHosts: `*` is any
   * public host). Default none: push notifications are off.
   */
  readonly a2aPushHosts?: readonly string[]
  /** With keys, every call but health, discovery and metrics needs one (http/authenticate.ts). */
  readonly auth?: {
    readonly keys: KeyRing
    readonly jwt?: JwtVerifier
    readonly metrics?: boolean
    readonly ready?: () => boolean
  }
  /** Queries' Events where this process keeps them (`ark dev`), for the dashboard. */
  readonly queryEvents?: QueryEvents
}

export interface Gateway {
  /** The app; `env` carries what the runtime adapter lets it do to the connection (serve.ts). */
  readonly fetch: ServeFetch
  /** The Node lane beside `fetch` (openai/node-lane.ts), for serve's options; absent under tracing. */
  readonly lane: LaneDeps | undefined
  readonly runtime: AgentRuntime
  readonly sandbox: Sandbox | undefined
  /** The MCP client connections (undefined with `mcp: false`); MCPServer discovery holds them too. */
  readonly mcp: McpClients | undefined
  readonly queue: TaskQueue
  readonly metrics: Metrics
  /** Agents' daily token usage (limits.maxDailyTokens), shared on Redis when pools are: for their status. */
  readonly budget: TokenBudget
  /** Conversation memories, for whoever admits runs beside the routes (Query execution). */
  readonly memories: Memories
  /** The runs admitted lately (the dashboard's list), for whoever admits runs beside the routes. */
  readonly runs: RecentRuns
  /**
   * Ends the streams that would never end by themselves (MCP notification streams), so that a drain waits
   * only for requests that finish.
   */
  endIdleStreams(): void
  /** Stops taking tasks and waits for running ones. */
  close(): Promise<void>
}

export function createGateway(options: GatewayOptions): Gateway {
  const { catalog } = options
  const log = options.log ?? silentLogger
  const assembly = assemble(catalog, {
    ...options,
    log,
    ...(options.replicaId === undefined ? {} : { queueId: options.replicaId }),
  })
  const { runtime, sandbox, queue, metrics } = assembly
  // Replicas that share pools on Redis share A2A tasks there too: any replica answers for any task.
  const a2a =
    options.redis === undefined
      ? undefined
      : new RedisA2A({
          url: options.redis.url,
          ...(options.redis.prefix === undefined ? {} : { prefix: options.redis.prefix }),
          log,
        })
  // In-context memories live where the pools do: on Redis, every replica sees every conversation.
  const memories = new Memories({
    catalog,
    fetch: options.providers?.fetch ?? fetch,
    log,
    ...(options.redis === undefined ? {} : { redis: options.redis }),
  })
  // Quotas come with keys: they are set where keys are (a key's limits, and namespaces').
  const quotas =
    options.auth === undefined
      ? undefined
      : new Quotas({
          namespaceLimits: (ns) => options.auth?.keys.namespaceLimits(ns),
          limiter:
            options.redis === undefined
              ? new MemoryRateLimiter()
              : new RedisRateLimiter({
                  url: options.redis.url,
                  ...(options.redis.prefix === undefined ? {} : { prefix: options.redis.prefix }),
                }),
          budget: assembly.budget,
          log,
        })
  const runs = new RecentRuns()
  const http = createApp({
    catalog,
    runs,
    ...(options.queryEvents === undefined ? {} : { queryEvents: options.queryEvents }),
    runtime,
    memories,
    budget: assembly.budget,
    queue,
    metrics,
    log,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    bodyTimeoutMs: options.bodyTimeoutMs ?? DEFAULTS.bodyTimeoutMs,
    stream: { ...STREAM_DEFAULTS, ...options.stream },
    allowedHosts: options.allowedHosts ?? 'any',
    corsOrigins: options.corsOrigins ?? [],
    ...(options.accessLog === true ? { accessLog: createLogger('access') } : {}),
    ready: options.ready ?? (() => true),
    ...(options.draining === undefined ? {} : { draining: options.draining }),
    ...(options.mcpSessions === undefined ? {} : { mcpSessions: options.mcpSessions }),
    ...(options.auth === undefined ? {} : { auth: options.auth }),
    ...(quotas === undefined ? {} : { quotas }),
    ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
    ...(options.maxQueueWaitMs === undefined ? {} : { maxQueueWaitMs: options.maxQueueWaitMs }),
    ...(a2a === undefined ? {} : { a2a: { store: a2a.store, buses: a2a.buses } }),
    ...(options.a2aPushHosts === undefined || options.a2aPushHosts.length === 0
      ? {}
      : {
          a2aPush: {
            store: a2a?.push ?? new InMemoryPushNotificationStore(),
            policy: new NetPolicy({ allowedHosts: options.a2aPushHosts }),
          },
        }),
  })
  return {
    fetch: (request, env) => http.app.fetch(request, env),
    lane: http.lane,
    runtime,
    queue,
    metrics,
    sandbox,
    mcp: assembly.mcp,
    budget: assembly.budget,
    memories,
    runs,
    endIdleStreams: () => http.endIdleStreams(),
    async close() {
      await http.close()
      await quotas?.close()
      await assembly.close()
      await memories.close()
      await a2a?.close()
    },
  }
}
