/**
 * A pool worker process (`ark worker --agent <ns>/<name>`): the agent runtime over a catalog of manifests,
 * a Redis Streams consumer for the agent's pool, and a small HTTP face for Kubernetes and Prometheus
 * (/healthz, /readyz with the semantic verdict, /metrics). No Kubernetes API: the same process runs in a pod
 * and on a laptop.
 */
import { Hono } from 'hono'
import type { ObjectRef } from '../controller/api/index.ts'
import type { Catalog } from '../controller/store/index.ts'
import type { RedisSettings, RuntimeSettings } from './assemble.ts'
import { assemble } from './assemble.ts'
import type { Logger } from './log.ts'
import { silentLogger } from './log.ts'
import type { Metrics } from './metrics.ts'
import { RedisQueue } from './pool/redis-queue.ts'
import { WorkerMetrics } from './pool/worker-metrics.ts'
import type { PoolStatus } from './pool/workers.ts'
import { PoolWorkers } from './pool/workers.ts'
import { agentKey } from './runtime/subtasks.ts'
import type { AgentRuntime } from './runtime/agent-runtime.ts'

/** Tasks a worker runs at once when neither --concurrency nor the agent's maxConcurrentTasks says. */
export const DEFAULT_WORKER_CONCURRENCY = 16

export interface WorkerOptions extends RuntimeSettings {
  readonly catalog: Catalog
  /** The pool to serve, or `shared`: every agent without replicas, as the catalog changes. */
  readonly agent: ObjectRef | 'shared'
  readonly redis: RedisSettings
  /** Tasks at once (default: the agent's limits.maxConcurrentTasks, else 16). */
  readonly concurrency?: number
  /** A task held this long by a silent worker is taken over (default 30 s). */
  readonly claimIdleMs?: number
  /** Attempts before a task is dead-lettered (default 3). */
  readonly maxAttempts?: number
  /** This worker's consumer name in the pool's group and its reply stream's (default random; a pod name is a good one). */
  readonly id?: string
  readonly log?: Logger
  readonly processMetrics?: boolean
}

export interface Worker {
  /** /healthz, /readyz, /metrics. */
  readonly fetch: (request: Request) => Response | Promise<Response>
  readonly runtime: AgentRuntime
  readonly metrics: Metrics
  status(): PoolStatus[]
  /** Starts taking tasks (resolves once reading the stream; keeps trying while Redis is away). */
  start(): Promise<void>
  /** Stops taking tasks; running ones get `graceMs` to finish, then are handed back to the pool. */
  stop(options?: { readonly graceMs?: number }): Promise<void>
}

export function createWorker(options: WorkerOptions): Worker {
  const { catalog, agent, redis } = options
  const log = options.log ?? silentLogger
  // Agent-as-tool calls and subtasks go to the other agents' pools, wherever their workers run.
  const assembly = assemble(catalog, {
    ...options,
    redis,
    log,
    ...(options.id === undefined ? {} : { queueId: options.id }),
  })
  const { runtime, queue, metrics } = assembly
  // Its pool's depth on its own /metrics: what an HPA on the workers scales on.
  if (queue instanceof RedisQueue && agent !== 'shared') queue.watch(agent)
  const workers = new PoolWorkers({
    catalog,
    runtime,
    redis,
    agents: agent,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    defaultConcurrency: DEFAULT_WORKER_CONCURRENCY,
    ...(options.claimIdleMs === undefined ? {} : { claimIdleMs: options.claimIdleMs }),
    ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
    metrics: new WorkerMetrics(metrics.registry),
    log,
    ...(options.id === undefined ? {} : { consumer: options.id }),
  })
  const pool = agent === 'shared' ? 'shared' : agentKey(agent)
  let started = false
  const status = (): PoolStatus[] =>
    started ? workers.status() : [{ pool, ready: false, reason: 'the worker is starting' }]

  const app = new Hono()
  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', (c) => {
    const pools = status()
    // A pool's worker is ready when its pool is. The shared runtime serves many tenants' agents: one agent
    // whose probe fails (or whose Model lacks its key) must not make every replica NotReady, so it is
    // ready once it takes tasks and reaches Redis; each agent's own gate still keeps its tasks away.
    const ready =
      agent === 'shared' ? started && workers.connected() : pools.length > 0 && pools.every((p) => p.ready)
    return c.json({ status: ready ? 'ready' : 'not ready', pools }, ready ? 200 : 503)
  })
  app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'content-type': metrics.contentType }))
  app.notFound((c) => c.json({ error: `there is no route ${c.req.method} ${c.req.path.slice(0, 200)}` }, 404))

  return {
    fetch: (request) => app.fetch(request),
    runtime,
    metrics,
    status,
    async start() {
      started = true
      await workers.start()
    },
    async stop(stopOptions = {}) {
      await workers.stop(stopOptions)
      await assembly.close()
    },
  }
}
