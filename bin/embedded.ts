/**
 * The embedded system, assembled once: a control plane over a manifests folder that knows what this build can
 * run, the gateway over its catalog, and the model probes that keep each Model's ModelReachable condition
 * current. With `redis`, tasks go through Redis Streams, and unless `workers` is false this process also
 * runs a worker for every agent (`ark dev` with REDIS_URL; `ark gateway` runs none). `ark dev`, `ark
 * gateway`, the end-to-end tests and the benchmarks all start here, so they run the same thing.
 */
import type { ProviderType, ToolType } from '../controller/api/index.ts'
import type { Capabilities, Catalog, ResourceView } from '../controller/index.ts'
import {
  CAPABILITIES,
  A2ADiscoveryController,
  McpDiscoveryController,
  MemoryEvents,
  ModelProbeController,
  QueryController,
  TokenUsageController,
  ToolModuleController,
  startControlPlane,
} from '../controller/index.ts'
import type { BuiltinTool, Gateway, GatewayOptions } from '../gateway/index.ts'
import {
  BUILTIN_TOOLS,
  DEFAULT_WORKER_CONCURRENCY,
  PROVIDERS,
  PoolWorkers,
  WorkerMetrics,
  createGateway,
  discoverAgentCard,
  mcpDiscovery,
  silentLogger,
  upstreamFetch,
} from '../gateway/index.ts'
import { queryRunner } from './query-runner.ts'

export interface EmbeddedOptions extends Omit<GatewayOptions, 'catalog'> {
  readonly manifests: string
  /**
   * Read resources from a cluster instead of `manifests` (`ark gateway --kubeconfig`): read-only, with the
   * status `ark controller` writes; no reconcilers, probes or module checks run here.
   */
  readonly cluster?: EmbeddedCatalog
  /** Follow the folder for changes (default true). */
  readonly watch?: boolean
  readonly onWatchError?: (err: unknown) => void
  /**
   * Seconds between probes of agents' own model ids (Models use their pollInterval); 0 turns model probes
   * off (default 60).
   */
  readonly probeIntervalSeconds?: number
  /** With `redis`: run a worker for every agent in this process (default true). */
  readonly workers?: boolean
  /**
   * Run the folder's Queries, as `ark controller` runs a cluster's: once each, their status and Events kept in
   * memory (`ark dev`; default false). Never with `cluster`, whose controller runs them.
   */
  readonly queries?: boolean
  /** Worker settings, with `redis` and `workers`. */
  readonly claimIdleMs?: number
  readonly maxAttempts?: number
}

/** What this build can execute, which decides what is Available. */
export function capabilities(options: {
  readonly builtins?: Readonly<Record<string, BuiltinTool>> | undefined
  readonly sandbox?: unknown
  readonly mcp?: unknown
  readonly mcpStdio?: boolean | undefined
}): Capabilities {
  const toolTypes = new Set<ToolType>(CAPABILITIES.toolTypes)
  // Webhook and Wasm tools run in the sandbox, MCP tools through the MCP client, when there is one.
  if (options.sandbox === false) {
    toolTypes.delete('http')
    toolTypes.delete('wasm')
  }
  const mcp = options.mcp !== false
  if (!mcp) toolTypes.delete('mcp')
  return {
    ...CAPABILITIES,
    builtinTools: new Set([...Object.keys(BUILTIN_TOOLS), ...Object.keys(options.builtins ?? {})]),
    providers: new Set(Object.keys(PROVIDERS) as ProviderType[]),
    toolTypes,
    mcp,
    mcpStdio: mcp && options.mcpStdio === true,
  }
}

/** The resources the system serves, from a folder (with its reconcilers) or from a cluster (read-only). */
export interface EmbeddedCatalog {
  readonly store: ResourceView
  readonly catalog: Catalog
  /** Rescans (a folder) and waits for the reconciles it caused. */
  refresh(): Promise<void>
  /** Resolves when no reconcile is pending. */
  settled(): Promise<void>
  close(): Promise<void>
}

export interface Embedded {
  readonly controlPlane: EmbeddedCatalog
  readonly gateway: Gateway
  /** Absent when probes are off. */
  readonly probes: ModelProbeController | undefined
  /** Loads the modules of sandboxed Tools as they appear: their ModuleLoaded condition (absent on a cluster). */
  readonly toolModules: ToolModuleController | undefined
  /** MCPServer discovery, when this process writes status (a folder) and has the MCP client. */
  readonly mcpDiscovery: McpDiscoveryController | undefined
  /** A2AServer discovery (cards into status, and the Agent each one makes), when this process writes status. */
  readonly a2aDiscovery: A2ADiscoveryController | undefined
  /** Agents' daily token usage into their status (limits.maxDailyTokens), when this process writes status. */
  readonly tokenUsage: TokenUsageController | undefined
  /** This process's pool workers, with `redis` (and `workers` not false). */
  readonly pools: PoolWorkers | undefined
  /** The folder's Queries, with `queries`. */
  readonly queries: QueryController | undefined
  close(): Promise<void>
}

export async function startEmbedded(options: EmbeddedOptions): Promise<Embedded> {
  const {
    manifests,
    cluster,
    watch,
    onWatchError,
    probeIntervalSeconds,
    workers,
    claimIdleMs,
    maxAttempts,
    queries: runQueries,
    ...gatewayOptions
  } = options
  const folder =
    cluster === undefined
      ? await startControlPlane(manifests, {
          ...(watch === undefined ? {} : { watch }),
          ...(onWatchError === undefined ? {} : { onError: onWatchError }),
          capabilities: capabilities(options),
        })
      : undefined
  const cp: EmbeddedCatalog = folder ?? (cluster as EmbeddedCatalog)
  // A folder has no API server to keep Events: they stay here, for the dashboard to show.
  const events = runQueries === true && folder !== undefined ? new MemoryEvents() : undefined
  const gateway = createGateway({
    ...gatewayOptions,
    ...(events === undefined ? {} : { queryEvents: (ns, name) => events.of('Query', ns, name) }),
    catalog: cp.catalog,
    providers: { fetch: await upstreamFetch(), ...gatewayOptions.providers },
  })
  const log = options.log ?? silentLogger
  // In-process pools serve every agent here: each is prepared (its tool servers connected) as it appears.
  if (options.redis === undefined) gateway.runtime.warmAll()
  const interval = probeIntervalSeconds ?? 60
  let probes: ModelProbeController | undefined
  // Status is the writer's: the folder's own reconcilers here, `ark controller` on a cluster.
  if (interval > 0 && folder !== undefined) {
    probes = new ModelProbeController(folder.catalog, folder.store, {
      prober: { probe: (resource, signal) => gateway.runtime.probe(resource, signal) },
      intervalSeconds: interval,
      onError: (key, err) => {
        log.warn('model probe failed', { resource: key, error: String(err) })
      },
    })
    probes.start()
  }
  const toolModules =
    folder === undefined
      ? undefined
      : new ToolModuleController(folder.catalog, folder.store, {
          checker: { check: (tool, signal) => gateway.runtime.checkTool(tool, signal) },
          onError: (key, err) => {
            log.warn('tool module check failed', { resource: key, error: String(err) })
          },
        })
  toolModules?.start()
  const mcp = gateway.mcp
  const discovery =
    folder === undefined || mcp === undefined
      ? undefined
      : new McpDiscoveryController(folder.catalog, folder.store, {
          discovery: mcpDiscovery(mcp, folder.catalog),
          onError: (key, err) => {
            log.warn('MCP server discovery failed', { resource: key, error: String(err) })
          },
        })
  discovery?.start()
  const a2aDiscovery =
    folder === undefined
      ? undefined
      : new A2ADiscoveryController(folder.catalog, folder.store, {
          fetchCard: discoverAgentCard,
          onError: (key, err) => {
            log.warn('A2A server discovery failed', { resource: key, error: String(err) })
          },
        })
  a2aDiscovery?.start()
  // The runtime's count (this process's, or Redis shared with the workers) read into status every ~30 s.
  const tokenUsage =
    folder === undefined
      ? undefined
      : new TokenUsageController(folder.catalog, folder.store, {
          usage: gateway.budget,
          onError: (key, err) => {
            log.warn('daily token usage not read', { resource: key, error: String(err) })
          },
        })
  tokenUsage?.start()
  // One process owns the folder: a claim needs no write, and there is no object to delete or finalize.
  const queries =
    events === undefined || folder === undefined
      ? undefined
      : new QueryController(folder.catalog, folder.store, {
          runner: queryRunner(folder.catalog, gateway, log),
          objects: {
            metadataOf: () => undefined,
            claim: () => Promise.resolve(true),
            setFinalizer: () => Promise.resolve(),
            delete: () => Promise.resolve(),
          },
          events,
          identity: 'ark-dev',
          onError: (key, err) => {
            log.warn('query failed', { resource: key, error: String(err) })
          },
        })
  await queries?.start()
  let pools: PoolWorkers | undefined
  if (options.redis !== undefined && workers !== false) {
    pools = new PoolWorkers({
      catalog: cp.catalog,
      runtime: gateway.runtime,
      redis: options.redis,
      agents: 'all',
      defaultConcurrency: options.poolConcurrency ?? DEFAULT_WORKER_CONCURRENCY,
      ...(claimIdleMs === undefined ? {} : { claimIdleMs }),
      ...(maxAttempts === undefined ? {} : { maxAttempts }),
      metrics: new WorkerMetrics(gateway.metrics.registry),
      log,
    })
    await pools.start()
  }
  return {
    controlPlane: cp,
    gateway,
    probes,
    toolModules,
    mcpDiscovery: discovery,
    a2aDiscovery,
    tokenUsage,
    pools,
    queries,
    async close() {
      await queries?.close()
      await pools?.stop()
      tokenUsage?.close()
      discovery?.close()
      a2aDiscovery?.close()
      toolModules?.close()
      probes?.close()
      await gateway.close()
      await cp.close()
    },
  }
}
