/**
 * One call assembles the embedded data plane over a catalog: the agent runtime, in-process pools, metrics
 * and the HTTP app. The caller (the CLI, a test, an embedder) owns the catalog and the listening socket.
 */
import type { ObjectRef } from '../controller/api/index.ts'
import type { Catalog } from '../controller/store/index.ts'
import { createApp } from './app.ts'
import type { Logger } from './log.ts'
import { silentLogger } from './log.ts'
import { Metrics } from './metrics.ts'
import { MemoryQueue } from './pool/memory.ts'
import type { PoolLimits, TaskQueue } from './pool/queue.ts'
import { Registry } from 'prom-client'
import { Sandbox } from '../sandbox/index.ts'
import { AgentRuntime } from './runtime/agent-runtime.ts'
import type { ProviderSettings } from './runtime/providers/registry.ts'
import { providerFactory } from './runtime/providers/registry.ts'
import { BUILTIN_TOOLS } from './runtime/tools/builtin.ts'
import type { BuiltinTool } from './runtime/tools/tool.ts'

export interface GatewayOptions {
  /** Also decides the default namespace: `agent/<name>` means the catalog's. */
  readonly catalog: Catalog
  /** Largest request body, in bytes (default 4 MiB). */
  readonly maxBodyBytes?: number
  /** Tool-loop bound per task (default 20). */
  readonly maxIterations?: number
  /** Task timeout for agents without limits.timeoutSeconds (default 120 s). */
  readonly taskTimeoutMs?: number
  /** Pool size for agents that do not set replicas or maxConcurrentTasks (default 64). */
  readonly poolConcurrency?: number
  /** Tasks that may wait in each pool beyond its concurrency (default 256); more get 429. */
  readonly maxQueued?: number
  /** Built-in tools beyond noop, terminate and calculator (an embedder's own tools). */
  readonly builtins?: Readonly<Record<string, BuiltinTool>>
  /** Environment defaults (API keys, base URLs), the mock stand-in for keyless models, timeouts, retries. */
  readonly providers?: ProviderSettings
  readonly log?: Logger
  readonly processMetrics?: boolean
  /** Readiness beyond "constructed" (default: always ready). */
  readonly ready?: () => boolean
  /**
   * Runs webhook and `wasm` tools. Default: a sandbox of the gateway's own, with its metrics, closed with it;
   * false: none, and agents with such tools cannot run.
   */
  readonly sandbox?: Sandbox | false
  /** Plugin threads of the gateway's own sandbox (default 4). */
  readonly sandboxThreads?: number
}

export interface Gateway {
  readonly fetch: (request: Request) => Response | Promise<Response>
  readonly runtime: AgentRuntime
  readonly sandbox: Sandbox | undefined
  readonly queue: TaskQueue
  readonly metrics: Metrics
  /** Stops taking tasks and waits for running ones. */
  close(): Promise<void>
}

export const DEFAULTS = {
  maxBodyBytes: 4 * 1024 * 1024,
  maxIterations: 20,
  taskTimeoutMs: 120_000,
  poolConcurrency: 64,
  maxQueued: 256,
} as const

export function createGateway(options: GatewayOptions): Gateway {
  const { catalog } = options
  const log = options.log ?? silentLogger
  const builtins = { ...BUILTIN_TOOLS, ...options.builtins }
  const poolConcurrency = options.poolConcurrency ?? DEFAULTS.poolConcurrency
  const maxQueued = options.maxQueued ?? DEFAULTS.maxQueued

  // The runtime reports to metrics, and metrics read the queue, which runs the runtime: tie the knot late.
  const sink: { metrics?: Metrics } = {}
  const registry = new Registry()
  const ownSandbox = options.sandbox === undefined
  const sandbox =
    options.sandbox === false
      ? undefined
      : (options.sandbox ??
        new Sandbox({
          ...(options.sandboxThreads === undefined ? {} : { maxThreads: options.sandboxThreads }),
          registry,
        }))
  const runtime = new AgentRuntime({
    ...(sandbox === undefined ? {} : { sandbox }),
    catalog,
    createProvider: providerFactory(options.providers),
    builtins,
    maxIterations: options.maxIterations ?? DEFAULTS.maxIterations,
    timeoutMs: options.taskTimeoutMs ?? DEFAULTS.taskTimeoutMs,
    observe: (agent, event) => sink.metrics?.observe(agent, event),
  })
  const limitsOf = (ref: ObjectRef): PoolLimits => {
    const agent = catalog.get('Agent', ref)
    const s = agent?.spec
    const concurrency =
      s === undefined || (s.replicas === undefined && s.limits.maxConcurrentTasks === undefined)
        ? poolConcurrency
        : (s.replicas ?? 1) * (s.limits.maxConcurrentTasks ?? 1)
    return { concurrency, maxQueued }
  }
  const queue = new MemoryQueue((task, context) => runtime.run(task, context), limitsOf)
  runtime.submit = async (task, signal) => (await queue.submit(task, { signal })).result
  const metrics = new Metrics({
    registry,
    catalog,
    pools: () => queue.stats(),
    ...(options.processMetrics === undefined ? {} : { processMetrics: options.processMetrics }),
  })
  sink.metrics = metrics
  const app = createApp({
    catalog,
    runtime,
    queue,
    metrics,
    log,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    ready: options.ready ?? (() => true),
  })
  return {
    fetch: (request) => app.fetch(request),
    runtime,
    queue,
    metrics,
    sandbox,
    async close() {
      await queue.close()
      runtime.close()
      if (ownSandbox) await sandbox?.close()
    },
  }
}
