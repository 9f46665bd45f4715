/**
 * `ark worker --agent <ns>/<name>`: one agent pool's worker. It reads the manifests (the agent, its Model,
 * Tools and Secrets) from a folder or, with --source cluster, from the agent's namespace on a cluster; follows
 * them live, runs the agent's tasks from its Redis stream, and serves /healthz, /readyz and /metrics. On
 * SIGTERM it stops taking tasks, lets running ones finish for the grace period and hands the rest back to the
 * pool, so a rolling update loses nothing.
 *
 * `ark worker --shared`: the shared runtime. The same, for every agent without a pool of its own (no
 * replicas: ARK-dialect Agents), as they come and go.
 */
import { hostname } from 'node:os'
import type { ObjectRef } from '../controller/api/index.ts'
import { startControlPlane } from '../controller/index.ts'
import type { ProviderSettings, RedisSettings } from '../gateway/index.ts'
import { createLogger, createWorker, redactedUrl, serve, upstreamFetch } from '../gateway/index.ts'
import { capabilities } from './embedded.ts'
import { untilStopped } from './signals.ts'

export interface WorkerCommand {
  readonly manifests: string
  /** Read the agent and what it uses from a cluster instead of `manifests` (read-only). */
  readonly cluster?: { readonly kubeconfig?: string; readonly namespaces?: readonly string[] }
  /** `<ns>/<name>` (or a bare name), or `shared`. */
  readonly agents: string
  readonly redis: RedisSettings
  readonly host: string
  readonly port: number
  readonly concurrency?: number
  readonly shutdownGraceMs: number
  readonly id?: string
  readonly maxIterations: number
  readonly taskTimeoutMs: number
  readonly providers: ProviderSettings
  readonly sandboxThreads: number
  readonly claimIdleMs: number
  readonly maxAttempts: number
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/

/** `ns/name` or a bare `name` (namespace default), each a Kubernetes name. */
export function parseAgent(text: string): ObjectRef {
  const parts = text.split('/')
  const ref =
    parts.length === 1
      ? { namespace: 'default', name: parts[0] ?? '' }
      : { namespace: parts[0] ?? '', name: parts.slice(1).join('/') }
  if (!NAME.test(ref.namespace) || !NAME.test(ref.name))
    throw new Error(
      `--agent must be <namespace>/<name> or <name> (lowercase Kubernetes names), got ${JSON.stringify(text)}`,
    )
  return ref
}

export async function worker(options: WorkerCommand): Promise<number> {
  const agent = options.agents === 'shared' ? 'shared' : parseAgent(options.agents)
  const pool = agent === 'shared' ? 'shared' : `${agent.namespace}/${agent.name}`
  const log = createLogger('worker')
  const cluster = options.cluster
  const cp =
    cluster === undefined
      ? await startControlPlane(options.manifests, {
          onError: (err) => log.warn('watch error', { error: String(err) }),
          capabilities: capabilities({}),
        })
      : await (
          await import('./cluster.ts')
        ).openClusterCatalog({
          ...(cluster.kubeconfig === undefined ? {} : { kubeconfig: cluster.kubeconfig }),
          // A pool's pods may read their own namespace only (the RoleBinding the controller applies there).
          ...(agent !== 'shared'
            ? { namespaces: [agent.namespace] }
            : cluster.namespaces === undefined
              ? {}
              : { namespaces: cluster.namespaces }),
          onError: (path, err) => log.warn('list/watch failed; retrying', { path, error: String(err) }),
        })
  if (agent !== 'shared' && cp.catalog.get('Agent', agent) === undefined)
    log.warn('agent not found; the worker waits for it', {
      pool,
      ...(cluster === undefined ? { manifests: options.manifests } : { source: 'cluster' }),
    })
  const w = createWorker({
    catalog: cp.catalog,
    agent,
    redis: options.redis,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    claimIdleMs: options.claimIdleMs,
    maxAttempts: options.maxAttempts,
    id: options.id ?? `${hostname()}-${crypto.randomUUID().slice(0, 8)}`,
    maxIterations: options.maxIterations,
    taskTimeoutMs: options.taskTimeoutMs,
    providers: { fetch: await upstreamFetch(), ...options.providers },
    sandboxThreads: options.sandboxThreads,
    log,
    processMetrics: !('Deno' in globalThis),
  })
  const server = await serve(w.fetch, { host: options.host, port: options.port })
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${String(server.port)}`
  log.info('serving', {
    pool,
    health: `${url}/readyz`,
    metrics: `${url}/metrics`,
    redis: redactedUrl(options.redis.url),
  })
  const stopped = untilStopped()
  // While Redis cannot be reached the worker keeps trying (readyz says so); a signal still stops it. Redis
  // refusing it (a wrong password, a key of the wrong type) will not get better: say so and exit.
  try {
    await Promise.race([w.start().then(() => log.info('taking tasks', { pool })), stopped])
  } catch (err) {
    log.error('the worker cannot use Redis', {
      pool,
      redis: redactedUrl(options.redis.url),
      error: err instanceof Error ? err.message : String(err),
    })
    await w.stop({ graceMs: 0 })
    await server.close()
    await cp.close()
    return 1
  }
  await stopped
  log.info('stopping', { pool, pools: w.status(), graceSeconds: options.shutdownGraceMs / 1000 })
  await w.stop({ graceMs: options.shutdownGraceMs })
  await server.close()
  await cp.close()
  log.info('stopped', { pool })
  return 0
}
