/**
 * `ark controller`: the control plane on a Kubernetes API. It lists and watches every ark resource (both
 * dialects) with their ConfigMaps and Secrets, and while it holds the `ark-controller` Lease it reconciles:
 * availability, model probes, tool modules and Query execution, writing status back and recording Events.
 * Replicas that do not lead keep their cache warm and take over within the lease duration. Queries run on
 * the same pools as the gateway: in this process, or on Redis Streams for `ark worker` processes.
 *
 * /healthz, /readyz and /metrics are served on --port (default 8082).
 */
import type { Registry } from 'prom-client'
import { Counter } from 'prom-client'
import {
  Catalog,
  KubeStore,
  A2ADiscoveryController,
  McpDiscoveryController,
  ModelProbeController,
  QueryController,
  ReconcileMetrics,
  PoolController,
  TokenUsageController,
  ToolModuleController,
  ValidityController,
  recordAvailabilityEvents,
  startReconcilers,
} from '../controller/index.ts'
import { KubeClient } from '../controller/kube/client.ts'
import { EventRecorder } from '../controller/kube/events.ts'
import { LeaderElector } from '../controller/kube/leader.ts'
import type { ProviderSettings, RedisSettings } from '../gateway/index.ts'
import {
  createGateway,
  createLogger,
  discoverAgentCard,
  mcpDiscovery,
  redactedUrl,
  redisKeys,
  serve,
  upstreamFetch,
} from '../gateway/index.ts'
import { capabilities } from './embedded.ts'
import { queryRunner } from './query-runner.ts'
import { untilStopped } from './signals.ts'

export interface ControllerCommand {
  readonly kubeconfig?: string
  /** Namespaces to watch; absent: all. */
  readonly namespaces?: readonly string[]
  readonly host: string
  readonly port: number
  readonly id: string
  readonly leaderElect: boolean
  readonly leaseNamespace?: string
  readonly leaseDurationSeconds: number
  readonly renewDeadlineSeconds: number
  readonly retryPeriodSeconds: number
  readonly maxConcurrentQueries: number
  readonly eventQps: number
  readonly eventBurst: number
  readonly probeIntervalSeconds: number
  readonly redis: RedisSettings | undefined
  readonly maxIterations: number
  readonly taskTimeoutMs: number
  readonly poolConcurrency: number
  readonly maxQueued: number
  readonly providers: ProviderSettings
  readonly sandboxThreads: number
  /** With an image, a Deployment per pooled agent (and the rest of pools.ts); absent: pools run elsewhere. */
  readonly pools?: PoolCommand
}

export interface PoolCommand {
  readonly image: string
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never'
  readonly pullSecrets: readonly string[]
  readonly keda?: {
    readonly tasksPerWorker: number
    readonly cooldownSeconds: number
    readonly pollingSeconds: number
  }
}

export async function controller(options: ControllerCommand): Promise<number> {
  const log = createLogger('controller')
  const client = await KubeClient.connect({ path: options.kubeconfig })
  log.info('connecting', {
    server: client.server.origin,
    from: client.source,
    namespaces: options.namespaces ?? 'all',
    identity: options.id,
  })
  const store = new KubeStore(client, {
    ...(options.namespaces === undefined ? {} : { namespaces: options.namespaces }),
    onError: (path, err) => log.warn('list/watch failed; retrying', { path, error: String(err) }),
  })
  let synced = false
  let elector: LeaderElector | undefined
  const stopped = untilStopped()
  // Everything this process measures goes into the runtime's registry, once the cache is synced.
  const measured: { registry?: Registry } = {}
  const server = await serve(
    (request) => {
      const path = new URL(request.url).pathname
      if (path === '/healthz') return new Response('ok\n')
      if (path === '/readyz') {
        return synced
          ? new Response(`ok (${elector?.isLeader === false ? 'standby' : 'leading'})\n`)
          : new Response('not synced with the API server yet\n', { status: 503 })
      }
      if (path === '/metrics') {
        const r = measured.registry
        if (r === undefined)
          return new Response('', { headers: { 'content-type': 'text/plain; version=0.0.4' } })
        return r.metrics().then((text) => new Response(text, { headers: { 'content-type': r.contentType } }))
      }
      return new Response('not found\n', { status: 404 })
    },
    { host: options.host, port: options.port },
  )
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${String(server.port)}`
  log.info('serving', { health: `${url}/readyz`, metrics: `${url}/metrics` })
  if (options.redis !== undefined)
    log.info('queries run on Redis Streams pools', { redis: redactedUrl(options.redis.url) })
  if (options.pools !== undefined)
    log.info('pooled agents get Deployments', {
      image: options.pools.image,
      pullSecrets: options.pools.pullSecrets,
      keda: options.pools.keda !== undefined,
    })

  // The cache fills (and stays warm) whether or not this replica leads.
  const started = performance.now()
  const interrupted = await Promise.race([store.start().then(() => false), stopped.then(() => true)])
  if (interrupted) {
    await server.close()
    await store.close()
    client.close()
    return 0
  }
  const catalog = new Catalog(store)
  const gateway = createGateway({
    catalog,
    maxIterations: options.maxIterations,
    taskTimeoutMs: options.taskTimeoutMs,
    poolConcurrency: options.poolConcurrency,
    maxQueued: options.maxQueued,
    providers: { fetch: await upstreamFetch(), ...options.providers },
    sandboxThreads: options.sandboxThreads,
    log: createLogger('runtime'),
    processMetrics: !('Deno' in globalThis),
    ...(options.redis === undefined ? {} : { redis: options.redis, replicaId: options.id }),
  })
  measured.registry = gateway.metrics.registry
  const reconcileMetrics = new ReconcileMetrics(gateway.metrics.registry)
  synced = true
  log.info('synced', {
    resources: [...store.list()].length,
    seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  })

  const events = new EventRecorder({
    client,
    component: 'ark-controller',
    host: options.id,
    concurrency: 32,
    // An API server busy writing Events for every step of thousands of Queries is slower at their status.
    qps: options.eventQps,
    burst: options.eventBurst,
    // A Query's start and end are what `kubectl describe` readers look for first (Warnings always count).
    important: (reason) => reason === 'QueryExecutionStart' || reason === 'QueryExecutionComplete',
    onError: (err) => log.debug('event not recorded', { error: String(err) }),
    // Events are best effort (status is the record): past the bounded queue they are dropped, and said so at
    // most once a minute.
    onDropped: (count) => {
      dropped += count
      const now = Date.now()
      if (now - droppedSaid < 60_000) return
      droppedSaid = now
      log.warn('events dropped: more come than --event-qps lets out and the queue holds', { dropped })
    },
  })
  let dropped = 0
  let droppedSaid = 0
  new Counter({
    name: 'ark_controller_events_total',
    help: 'Kubernetes Events by what became of them since start: written, aggregated (folded into a repeat), dropped (queue full), failed.',
    labelNames: ['result'],
    registers: [gateway.metrics.registry],
    collect() {
      // The recorder keeps the counts; a scrape copies them.
      const s = events.stats
      this.reset()
      this.inc({ result: 'written' }, s.written)
      this.inc({ result: 'aggregated' }, s.aggregated)
      this.inc({ result: 'dropped' }, s.dropped)
      this.inc({ result: 'failed' }, s.failed)
    },
  })
  const lead = (signal: AbortSignal) => {
    log.info('leading', { identity: options.id })
    void runWhileLeading(signal).catch((err: unknown) =>
      log.error('reconcilers failed', { error: String(err) }),
    )
  }
  const runWhileLeading = async (signal: AbortSignal) => {
    const onError = (key: string, err: unknown) =>
      log.warn('reconcile failed; retrying', { resource: key, error: String(err) })
    const caps = capabilities({})
    const reconcilers = await startReconcilers(catalog, store, {
      capabilities: caps,
      metrics: reconcileMetrics,
      onError,
    })
    const stopEvents = recordAvailabilityEvents(store, events)
    const probes =
      options.probeIntervalSeconds > 0
        ? new ModelProbeController(catalog, store, {
            prober: { probe: (resource, s) => gateway.runtime.probe(resource, s) },
            intervalSeconds: options.probeIntervalSeconds,
            metrics: reconcileMetrics,
            onError,
          })
        : undefined
    probes?.start()
    const toolModules = new ToolModuleController(catalog, store, {
      checker: { check: (tool, s) => gateway.runtime.checkTool(tool, s) },
      metrics: reconcileMetrics,
      onError,
    })
    toolModules.start()
    const mcp = gateway.mcp
    const discovery =
      mcp === undefined
        ? undefined
        : new McpDiscoveryController(catalog, store, {
            discovery: mcpDiscovery(mcp, catalog),
            metrics: reconcileMetrics,
            onError,
          })
    discovery?.start()
    const a2aDiscovery = new A2ADiscoveryController(catalog, store, {
      fetchCard: discoverAgentCard,
      metrics: reconcileMetrics,
      onError,
    })
    a2aDiscovery.start()
    // Agents' daily token usage, read every ~30 s from where the workers count it (Redis, with --redis-url).
    const tokenUsage = new TokenUsageController(catalog, store, {
      usage: gateway.budget,
      metrics: reconcileMetrics,
      onError,
    })
    tokenUsage.start()
    const queries = new QueryController(catalog, store, {
      runner: queryRunner(catalog, gateway, log),
      objects: store,
      events,
      identity: options.id,
      maxConcurrent: options.maxConcurrentQueries,
      metrics: reconcileMetrics,
      onError,
    })
    await queries.start()
    const validity = new ValidityController(store, events, onError)
    await validity.start()
    // Not awaited: Queries and validity do not wait for the pools' first pass (or for a Deployments list
    // that keeps failing, which the reflector logs and retries until the leadership ends).
    const pools = poolController(options, catalog, store, client, reconcileMetrics, onError)
    void pools?.start().catch((err: unknown) => log.error('pools did not start', { error: String(err) }))
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve()
      else signal.addEventListener('abort', () => resolve(), { once: true })
    })
    log.info('no longer leading: reconcilers stop', { identity: options.id })
    stopEvents()
    validity.close()
    await queries.close()
    discovery?.close()
    a2aDiscovery.close()
    tokenUsage.close()
    pools?.close()
    toolModules.close()
    probes?.close()
    reconcilers.close()
  }

  const leadership = new AbortController()
  const leaseClient = client.withOwnConnections()
  if (options.leaderElect) {
    elector = new LeaderElector({
      // Renewals on connections of their own, never queued behind status writes and Events.
      client: leaseClient,
      namespace: options.leaseNamespace ?? client.namespace,
      name: 'ark-controller',
      identity: options.id,
      leaseDurationSeconds: options.leaseDurationSeconds,
      renewDeadlineSeconds: options.renewDeadlineSeconds,
      retryPeriodSeconds: options.retryPeriodSeconds,
      onStartedLeading: lead,
      onNewLeader: (identity) => log.info('leader', { identity }),
      log,
    })
    elector.start()
  } else lead(leadership.signal)

  await stopped
  log.info('stopping')
  leadership.abort()
  // Releasing the Lease aborts the reconcilers; a successor takes over at once.
  await elector?.stop()
  await events.close()
  await server.close()
  await gateway.close()
  await store.close()
  client.close()
  leaseClient.close()
  log.info('stopped')
  return 0
}

/** The pools reconciler, when the controller was given an image for them (and Redis, which bin/ark.ts checks). */
function poolController(
  options: ControllerCommand,
  catalog: Catalog,
  store: KubeStore,
  client: KubeClient,
  metrics: ReconcileMetrics,
  onError: (key: string, err: unknown) => void,
): PoolController | undefined {
  const pools = options.pools
  const redis = options.redis
  if (pools === undefined || redis === undefined) return undefined
  const prefix = redis.prefix ?? 'ark'
  return new PoolController(catalog, store, {
    client,
    objects: store,
    redisUrl: redis.url,
    ...(options.namespaces === undefined ? {} : { namespaces: options.namespaces }),
    settings: {
      image: pools.image,
      ...(pools.imagePullPolicy === undefined ? {} : { imagePullPolicy: pools.imagePullPolicy }),
      // Fixed names: deploy/rbac lets the controller write these, by name, and nothing else of their kinds.
      serviceAccount: 'ark-worker',
      clusterRole: 'ark-data-plane',
      pullSecrets: pools.pullSecrets,
      redisSecret: 'ark-worker-redis',
      providersSecret: 'ark-providers',
      ...(prefix === 'ark' ? {} : { redisPrefix: prefix }),
      ...(options.providers.withoutKey === undefined
        ? {}
        : { modelsWithoutKey: options.providers.withoutKey }),
      ...(pools.keda === undefined
        ? {}
        : {
            keda: {
              ...pools.keda,
              stream: (agent) => redisKeys.pool(prefix, agent.ref),
            },
          }),
    },
    metrics,
    onError,
  })
}
