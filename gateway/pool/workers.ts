/**
 * The workers of one process: a Redis Streams consumer per agent pool it serves, each gated by the agent's
 * semantic probe. `ark worker --agent ns/name` serves one pool; `ark dev` with REDIS_URL serves every agent
 * of its manifests and follows them as they change.
 */
import type { ObjectRef } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { RedisSettings } from '../assemble.ts'
import type { Logger } from '../log.ts'
import type { AgentRuntime } from '../runtime/agent-runtime.ts'
import type { SemanticVerdict } from '../runtime/semantic-probe.ts'
import { SemanticProbe } from '../runtime/semantic-probe.ts'
import { agentKey } from '../runtime/subtasks.ts'
import { RedisWorker } from './redis-worker.ts'
import type { WorkerMetrics } from './worker-metrics.ts'

export interface PoolWorkersOptions {
  readonly catalog: Catalog
  readonly runtime: AgentRuntime
  readonly redis: RedisSettings
  /**
   * One agent's pool; every agent's as the catalog changes (`ark dev`); or `shared`: every agent without a pool
   * of its own (no replicas: the ARK dialect's), as the shared runtime on a cluster serves them.
   */
  readonly agents: ObjectRef | 'all' | 'shared'
  /** Tasks each worker runs at once; default the agent's limits.maxConcurrentTasks, else `defaultConcurrency`. */
  readonly concurrency?: number
  readonly defaultConcurrency: number
  readonly claimIdleMs?: number
  readonly maxAttempts?: number
  readonly metrics: WorkerMetrics
  readonly log: Logger
  /** This process's consumer name in each pool's group (default random). */
  readonly consumer?: string
}

export interface PoolStatus {
  readonly pool: string
  readonly ready: boolean
  readonly reason: string
}

interface Served {
  readonly agent: ObjectRef
  readonly worker: RedisWorker
  readonly probe: SemanticProbe
  readonly started: Promise<void>
  /** Whether the worker takes the pool's tasks now, and why not: its gate, its gauge and /readyz. */
  readonly verdict: () => { readonly ready: boolean; readonly reason: string }
}

export class PoolWorkers {
  readonly #options: PoolWorkersOptions
  readonly #served = new Map<string, Served>()
  readonly #stopping = new Set<Promise<void>>()
  #unsubscribe: (() => void) | undefined
  #closed = false

  constructor(options: PoolWorkersOptions) {
    this.#options = options
  }

  /** Starts the workers; resolves once each is reading its stream. Rejects when Redis cannot be reached. */
  async start(): Promise<void> {
    const { agents, catalog } = this.#options
    if (agents !== 'all' && agents !== 'shared') {
      await this.#serve(agents)
      return
    }
    this.#unsubscribe = catalog.store.subscribe(() => void this.#follow())
    await this.#follow()
  }

  /** Whether every pool's reader is connected to Redis (true when there is none yet). */
  connected(): boolean {
    return [...this.#served.values()].every((s) => s.worker.connected)
  }

  /** Per pool: whether this process takes its tasks now, and why not. */
  status(): PoolStatus[] {
    return [...this.#served.entries()].map(([pool, s]) => ({ pool, ...s.verdict() }))
  }

  /**
   * Stops taking tasks; running ones get `graceMs` to finish (default: as long as they take), then are
   * handed back to their pools for other workers.
   */
  async stop(options: { readonly graceMs?: number } = {}): Promise<void> {
    this.#closed = true
    this.#unsubscribe?.()
    const all = [...this.#served.keys()].map((pool) => this.#drop(pool, options.graceMs))
    await Promise.all([...all, ...this.#stopping])
  }

  async #follow(): Promise<void> {
    if (this.#closed) return
    const shared = this.#options.agents === 'shared'
    const wanted = new Map(
      this.#options.catalog
        .list('Agent')
        .filter((a) => !shared || a.spec.replicas === undefined)
        .map((a) => [agentKey(a.ref), a.ref]),
    )
    for (const pool of this.#served.keys()) if (!wanted.has(pool)) void this.#drop(pool, 0)
    await Promise.all(
      [...wanted]
        .filter(([pool]) => !this.#served.has(pool))
        .map(([pool, agent]) =>
          this.#serve(agent).catch((err: unknown) => {
            this.#options.log.error('worker did not start', { pool, error: String(err) })
          }),
        ),
    )
  }

  #serve(agent: ObjectRef): Promise<void> {
    const { catalog, runtime, redis, log, metrics } = this.#options
    const pool = agentKey(agent)
    const existing = this.#served.get(pool)
    if (existing !== undefined) return existing.started
    const probe = new SemanticProbe(runtime, catalog, agent, (v: SemanticVerdict) => {
      log[v.ready ? 'info' : 'warn']('semantic probe', { pool, ready: v.ready, reason: v.reason })
    })
    // The worker is built with its gate and its gauges, which read it: tie the knot through a holder.
    const self: { worker?: RedisWorker } = {}
    const verdict = () => {
      // An agent its own manifests lack yet (a ConfigMap update that reached the gateway first): a task of
      // it could only be answered "not found".
      if (catalog.get('Agent', agent) === undefined)
        return { ready: false, reason: `Agent ${pool} is not in the manifests` }
      if (self.worker?.connected !== true) return { ready: false, reason: 'Redis is not reachable' }
      return probe.verdict
    }
    const concurrency = () =>
      this.#options.concurrency ??
      catalog.get('Agent', agent)?.spec.limits.maxConcurrentTasks ??
      this.#options.defaultConcurrency
    const observer = metrics.track(pool, {
      inFlight: () => self.worker?.inFlight ?? 0,
      ready: () => verdict().ready,
    })
    const worker = new RedisWorker({
      url: redis.url,
      ...(redis.prefix === undefined ? {} : { prefix: redis.prefix }),
      agent,
      ...(this.#options.consumer === undefined ? {} : { consumer: this.#options.consumer }),
      maxConcurrentTasks: concurrency,
      run: (task, context) => runtime.run(task, context),
      ready: () => verdict().ready,
      observer,
      ...(this.#options.claimIdleMs === undefined ? {} : { claimIdleMs: this.#options.claimIdleMs }),
      ...(this.#options.maxAttempts === undefined ? {} : { maxAttempts: this.#options.maxAttempts }),
    })
    self.worker = worker
    // Its tool servers connect now, not on the first task's time.
    runtime.warm(agent)
    probe.start()
    const started = worker.start()
    this.#served.set(pool, { agent, worker, probe, started, verdict })
    return started.then(() => log.info('worker started', { pool }))
  }

  #drop(pool: string, graceMs: number | undefined): Promise<void> {
    const s = this.#served.get(pool)
    if (s === undefined) return Promise.resolve()
    this.#served.delete(pool)
    s.probe.close()
    this.#options.runtime.cool(s.agent)
    this.#options.metrics.untrack(pool)
    const stopping = s.worker.stop(graceMs === undefined ? {} : { graceMs }).finally(() => {
      this.#stopping.delete(stopping)
    })
    this.#stopping.add(stopping)
    return stopping
  }
}
