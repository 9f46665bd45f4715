/**
 * What the gateway (gateway.ts) and a pool worker (worker.ts) build alike: the agent runtime with its
 * sandbox, the task queue (in-process, or on Redis Streams) with pool limits read from the catalog, and the
 * metrics of both. One place, so that a task runs the same in `ark dev`, `ark gateway` + `ark worker`, tests
 * and benchmarks.
 */
import { Registry } from 'prom-client'
import type { ObjectRef } from '../controller/api/index.ts'
import type { Catalog } from '../controller/store/index.ts'
import { Sandbox } from '../sandbox/index.ts'
import type { Logger } from './log.ts'
import { Metrics } from './metrics.ts'
import { MemoryQueue } from './pool/memory.ts'
import type { PoolLimits } from './pool/queue.ts'
import { RedisQueue } from './pool/redis-queue.ts'
import { AgentRuntime } from './runtime/agent-runtime.ts'
import type { TokenBudget } from './runtime/budget.ts'
import { MemoryBudget, RedisBudget } from './runtime/budget.ts'
import type { ProviderSettings } from './runtime/providers/registry.ts'
import { providerFactory } from './runtime/providers/registry.ts'
import { McpClients } from './runtime/mcp/client.ts'
import { registerMcpMetrics } from './runtime/mcp/metrics.ts'
import { mcpServerTools, mcpToolKind } from './runtime/mcp/tools.ts'
import { BUILTIN_TOOLS } from './runtime/tools/builtin.ts'
import { TOOL_KINDS } from './runtime/tools/kinds.ts'
import type { BuiltinTool } from './runtime/tools/tool.ts'

export const DEFAULTS = {
  maxBodyBytes: 4 * 1024 * 1024,
  bodyTimeoutMs: 30_000,
  maxIterations: 20,
  taskTimeoutMs: 120_000,
  poolConcurrency: 64,
  maxQueued: 256,
  /** `ark dev` and `ark gateway` set these two; a gateway built without them has no such bound. */
  maxInFlight: 4096,
  maxQueueWaitMs: 30_000,
} as const

/** Where pools live when they are not in this process. */
export interface RedisSettings {
  readonly url: string
  /** Key prefix, so that several ark installations can share one Redis (default `ark`). */
  readonly prefix?: string
  /**
   * Refuse a run at once (503 `no_workers`) when no worker of its pool is alive, rather than queue it until
   * its deadline (default false: pools autoscaled from zero start on a backlog).
   */
  readonly requireWorkers?: boolean
}

export interface RuntimeSettings {
  /** Tool-loop bound per task (default 20). */
  readonly maxIterations?: number
  /** Task timeout for agents without limits.timeoutSeconds (default 120 s). */
  readonly taskTimeoutMs?: number
  /** Pool size for agents that do not set replicas or maxConcurrentTasks (default 64). */
  readonly poolConcurrency?: number
  /** Tasks that may wait in each pool beyond its concurrency (default 256); more get 429. */
  readonly maxQueued?: number
  /** Built-in tools beyond ark's own (BUILTIN_TOOLS): an embedder's. */
  readonly builtins?: Readonly<Record<string, BuiltinTool>>
  /** Environment defaults (API keys, base URLs), the mock stand-in for keyless models, timeouts, retries. */
  readonly providers?: ProviderSettings
  /**
   * Runs webhook and `wasm` tools. Default: a sandbox of this process's own, with its metrics, closed with
   * it; false: none, and agents with such tools cannot run.
   */
  readonly sandbox?: Sandbox | false
  /** Plugin threads of the own sandbox (default 4). */
  readonly sandboxThreads?: number
  /**
   * Connects to MCP servers for `mcp` Tools and ArkAgent `mcpServers`. Default: connections of this process's
   * own, with their metrics, closed with it; false: none, and agents with MCP tools cannot run.
   */
  readonly mcp?: McpClients | false
  /** ArkAgent mcpServers given as a command (stdio) are started: `ark dev` only (default false). */
  readonly mcpStdio?: boolean
  /**
   * Where agents' daily token usage (limits.maxDailyTokens) is counted. Default: on Redis (shared by every
   * runtime there) when pools are, else in this process; one given is not closed with the assembly.
   */
  readonly budget?: TokenBudget
}

export interface AssemblyOptions extends RuntimeSettings {
  /** Pools on Redis Streams; absent: in this process. */
  readonly redis?: RedisSettings
  /** This process's name in Redis (its reply stream); default random. */
  readonly queueId?: string
  readonly log: Logger
  readonly processMetrics?: boolean
}

export interface Assembly {
  readonly runtime: AgentRuntime
  readonly sandbox: Sandbox | undefined
  /**
   * Where tasks are submitted: pools in this process, or the pools' Redis streams, where `ark worker`
   * processes (or this process's own workers, `ark dev` with REDIS_URL) take them. Agent-as-tool calls and
   * subtasks go through it too, so they reach the other agent's pool wherever it runs.
   */
  readonly queue: MemoryQueue | RedisQueue
  readonly metrics: Metrics
  /** The MCP client connections agents' tools use (undefined with `mcp: false`). */
  readonly mcp: McpClients | undefined
  /** Agents' daily token usage, as the runtime counts it: what their status reports. */
  readonly budget: TokenBudget
  /** Closes the queue, then the runtime and the sandbox this assembly made. */
  close(): Promise<void>
}

export function assemble(catalog: Catalog, options: AssemblyOptions): Assembly {
  const registry = new Registry()
  // Metrics read the queue's stats only when scraped, so they may be made before it.
  const metrics = new Metrics({
    registry,
    catalog,
    pools: () => queue.stats(),
    ...(options.processMetrics === undefined ? {} : { processMetrics: options.processMetrics }),
  })
  const ownSandbox = options.sandbox === undefined
  const sandbox =
    options.sandbox === false
      ? undefined
      : (options.sandbox ??
        new Sandbox({
          ...(options.sandboxThreads === undefined ? {} : { maxThreads: options.sandboxThreads }),
          registry,
        }))
  const ownMcp = options.mcp === undefined
  const mcp =
    options.mcp === false
      ? undefined
      : (options.mcp ?? new McpClients({ log: options.log, stdio: options.mcpStdio === true }))
  if (ownMcp && mcp !== undefined) registerMcpMetrics(registry, mcp)
  const taskTimeoutMs = options.taskTimeoutMs ?? DEFAULTS.taskTimeoutMs
  const { redis } = options
  const ownBudget = options.budget === undefined
  const budget =
    options.budget ??
    (redis === undefined
      ? new MemoryBudget()
      : new RedisBudget({ url: redis.url, ...(redis.prefix === undefined ? {} : { prefix: redis.prefix }) }))
  const runtime = new AgentRuntime({
    budget,
    ...(sandbox === undefined ? {} : { sandbox }),
    ...(mcp === undefined
      ? {}
      : {
          toolKinds: { ...TOOL_KINDS, mcp: mcpToolKind(mcp, { log: options.log }) },
          serverTools: mcpServerTools(mcp, { log: options.log }),
        }),
    catalog,
    createProvider: providerFactory(options.providers),
    builtins: { ...BUILTIN_TOOLS, ...options.builtins },
    maxIterations: options.maxIterations ?? DEFAULTS.maxIterations,
    timeoutMs: taskTimeoutMs,
    observe: (agent, event) => metrics.observe(agent, event),
  })
  const poolConcurrency = options.poolConcurrency ?? DEFAULTS.poolConcurrency
  const maxQueued = options.maxQueued ?? DEFAULTS.maxQueued
  const limitsOf = (ref: ObjectRef): PoolLimits => {
    const s = catalog.get('Agent', ref)?.spec
    const concurrency =
      s === undefined || (s.replicas === undefined && s.limits.maxConcurrentTasks === undefined)
        ? poolConcurrency
        : (s.replicas ?? 1) * (s.limits.maxConcurrentTasks ?? 1)
    return { concurrency, maxQueued }
  }
  const queue =
    redis === undefined
      ? new MemoryQueue((task, context) => runtime.run(task, context), limitsOf)
      : new RedisQueue({
          url: redis.url,
          ...(redis.prefix === undefined ? {} : { prefix: redis.prefix }),
          ...(options.queueId === undefined ? {} : { id: options.queueId }),
          limitsOf,
          timeoutMsOf(ref) {
            const seconds = catalog.get('Agent', ref)?.spec.limits.timeoutSeconds
            return seconds === undefined ? taskTimeoutMs : seconds * 1000
          },
          log: options.log,
          ...(redis.requireWorkers === undefined ? {} : { requireWorkers: redis.requireWorkers }),
        })
  runtime.submit = async (task, signal) => (await queue.submit(task, { signal })).result
  // submit_subtask: admitted (or refused, with the reason) now, the result collected later.
  runtime.enqueue = (task, signal) => queue.submit(task, { signal })
  return {
    runtime,
    sandbox,
    queue,
    metrics,
    mcp,
    budget,
    async close() {
      await queue.close()
      runtime.close()
      if (ownBudget) await budget.close()
      if (ownSandbox) await sandbox?.close()
      if (ownMcp) await mcp?.close()
    },
  }
}
