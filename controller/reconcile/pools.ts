/**
 * Pools on a cluster: every agent with replicas (ArkAgents, and an ArkTeam's inline roles) gets a Deployment
 * of `ark worker --agent <ns>/<name>` in its namespace, owned by the resource it came from, so that
 * `kubectl scale arkagent x --replicas 5` scales pods and deleting the ArkAgent deletes them. Agents without
 * replicas (the ARK dialect's) run on the shared runtime the chart deploys, not here.
 *
 * One reconcile, level-based as every other:
 * - the namespace's ServiceAccount, RoleBinding (to the read-only data-plane ClusterRole) and Redis Secret,
 *   applied once per namespace and process unless they change;
 * - the Deployment, applied server-side. Its pod template carries a digest of every ConfigMap and Secret
 *   the agent reaches (its systemPromptRef, its Model's key, ...), so changing one rolls the pool;
 * - with KEDA, a ScaledObject (0 to the agent's replicas, on its stream's lag) and no replicas in the
 *   Deployment, which the HPA owns; a drained pool (replicas: 0) has no ScaledObject;
 * - the agent's status: replicas, readyReplicas, Progressing and Degraded, read from the Deployment.
 *   Available stays the availability reconciler's: whether the agent can serve, on which the gateway
 *   routes. A pool KEDA scaled to zero can serve: its requests wait in the stream for the worker KEDA starts.
 *
 * A Deployment of the same name that ark does not own is never taken over: the agent is Degraded and says so.
 * Deployments are watched through a label selector, so the cache holds the pools and nothing else.
 */
import type { AgentSpec, AnyResource, Resource } from '../api/index.ts'
import { referencesOf, resourceKey } from '../api/index.ts'
import type { KubeClient, KubeObject } from '../kube/client.ts'
import { KubeError } from '../kube/client.ts'
import type { Catalog, StatusWriter, StoreEvent } from '../store/index.ts'
import { Reflector } from '../store/reflector.ts'
import { withCondition } from './conditions.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'
import type { PoolSettings } from './pool-deployment.ts'
import {
  AGENT_ANNOTATION,
  DEGRADED,
  MANAGED_SELECTOR,
  PROGRESSING,
  digest,
  kedaObjects,
  namespaceObjects,
  poolDeployment,
  poolState,
} from './pool-deployment.ts'

export interface PoolControllerOptions {
  readonly client: KubeClient
  /** The object each resource was read from (its uid for the ownerReference): the KubeStore. */
  readonly objects: { objectOf(key: string): KubeObject | undefined }
  readonly settings: PoolSettings
  /** The Redis every pool's workers use (the controller's own --redis-url). */
  readonly redisUrl: string
  /** Namespaces watched; absent: all. */
  readonly namespaces?: readonly string[]
  readonly metrics?: ReconcileMetrics
  readonly onError?: (key: string, err: unknown) => void
}

type AgentResource = Resource<'Agent', AgentSpec>

const FIELD_MANAGER = 'ark-controller'
/** Kinds whose change may change what a pool's pods read: followed back to the agents that reach them. */
const CONFIG_KINDS = new Set(['ConfigMap', 'Secret', 'Model', 'Tool', 'MCPServer', 'Settings', 'Memory'])
/** How far back dependents are followed (a Secret, its Model, the Settings naming it, the agent). */
const MAX_DEPTH = 4
/** Objects are applied again after this long even when nothing asked for it: one deleted by hand comes back. */
const REAPPLY_MS = 10 * 60_000

export class PoolController {
  readonly #catalog: Catalog
  readonly #writer: StatusWriter
  readonly #options: PoolControllerOptions
  readonly #controller: Controller
  readonly #reflectors: Reflector[] = []
  /** The pools' Deployments by `namespace/name`, as the watch delivers them. */
  readonly #deployments = new Map<string, KubeObject>()
  /**
   * What was last applied at each path: its digest, the generation the server answered and when. A reconcile
   * runs on every change of a pool's Deployment (each pod that becomes ready); it writes only when what it
   * wants changed, someone else changed the Deployment's spec (its generation moved), or a while has passed
   * (an object deleted behind its back comes back).
   */
  readonly #applied = new Map<string, { digest: string; generation?: number; at: number }>()
  /**
   * The Redis Secret's version per namespace, as its apply answered: it goes into the config hash (a new
   * Redis URL rolls the pools) without waiting for the watch to deliver it, and without its content.
   */
  readonly #redisSecrets = new Map<string, string>()
  /** Pools whose ScaledObject is known to be absent (drained), so it is not deleted on every reconcile. */
  readonly #unscaled = new Set<string>()

  constructor(catalog: Catalog, writer: StatusWriter, options: PoolControllerOptions) {
    this.#catalog = catalog
    this.#writer = writer
    this.#options = options
    this.#controller = new Controller(
      'pools',
      catalog,
      (key, signal) => this.#reconcile(key, signal),
      { kinds: new Set(['Agent']), map: (e) => this.#affected(e) },
      {
        // Each reconcile waits on the API server; pools of different agents converge side by side.
        concurrency: 4,
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
        ...(options.onError === undefined ? {} : { onError: options.onError }),
      },
    )
  }

  /**
   * Lists and watches the pools' Deployments, then reconciles every agent; resolves when converged, or at
   * close() if the Deployments cannot be listed until then.
   */
  async start(): Promise<void> {
    for (const ns of this.#options.namespaces ?? [undefined]) {
      const path =
        ns === undefined ? '/apis/apps/v1/deployments' : `/apis/apps/v1/namespaces/${ns}/deployments`
      const reflector = new Reflector(
        this.#options.client,
        path,
        {
          replace: (items) => {
            const seen = new Set(items.map((d) => idOf(d)))
            for (const id of [...this.#deployments.keys()])
              if (!seen.has(id) && (ns === undefined || id.startsWith(`${ns}/`))) this.#forget(id)
            for (const d of items) this.#store(d)
          },
          event: (type, d) => (type === 'DELETED' ? this.#forget(idOf(d)) : this.#store(d)),
          error: (err) => this.#options.onError?.(path, err),
        },
        { labelSelector: MANAGED_SELECTOR },
      )
      this.#reflectors.push(reflector)
    }
    // A first list that keeps failing (RBAC without the Deployments rule, an API server away) is retried
    // by the reflectors until close(); then nothing starts.
    const synced = Promise.all(this.#reflectors.map((r) => r.start()))
    const closed = new Promise<void>((resolve) =>
      this.#controller.signal.addEventListener('abort', () => resolve()),
    )
    await Promise.race([synced, closed])
    if (this.#controller.signal.aborted) return
    await this.#controller.start()
  }

  idle(): Promise<void> {
    return this.#controller.idle()
  }

  close(): void {
    this.#controller.close()
    for (const r of this.#reflectors) void r.stop()
  }

  #store(d: KubeObject): void {
    this.#deployments.set(idOf(d), d)
    const agent = d.metadata?.annotations?.[AGENT_ANNOTATION]
    if (agent !== undefined) this.#controller.enqueue(`Agent/${agent}`)
  }

  #forget(id: string): void {
    const d = this.#deployments.get(id)
    this.#deployments.delete(id)
    const agent = d?.metadata?.annotations?.[AGENT_ANNOTATION]
    if (agent !== undefined) this.#controller.enqueue(`Agent/${agent}`)
  }

  /** The agents a change may roll: those that reach a changed ConfigMap, Secret, Model, ... */
  #affected(e: StoreEvent): string[] {
    const r = e.resource
    if (e.type === 'status' || !CONFIG_KINDS.has(r.kind)) return []
    const out = new Set<string>()
    const { providersSecret, redisSecret } = this.#options.settings
    // The Secrets every pod of a namespace reads through its environment.
    if (r.kind === 'Secret' && (r.ref.name === providersSecret || r.ref.name === redisSecret))
      for (const a of this.#catalog.list('Agent')) if (a.ref.namespace === r.ref.namespace) out.add(a.key)
    let frontier = [r.key]
    const seen = new Set(frontier)
    for (let depth = 0; depth < MAX_DEPTH && frontier.length > 0; depth++) {
      const next: string[] = []
      for (const key of frontier)
        for (const d of this.#catalog.dependentsOf(key)) {
          if (seen.has(d)) continue
          seen.add(d)
          if (d.startsWith('Agent/')) out.add(d)
          else next.push(d)
        }
      frontier = next
    }
    return [...out]
  }

  async #reconcile(key: string, signal: AbortSignal): Promise<undefined | { requeueAfterMs: number }> {
    const [, namespace = '', name = ''] = key.split('/')
    const id = `${namespace}/${name}`
    const resource = this.#catalog.store.get(key)
    const existing = this.#deployments.get(id)
    if (resource?.kind !== 'Agent' || resource.spec.replicas === undefined) {
      if (existing !== undefined && this.#roleRemoved(existing, namespace)) await this.#deletePool(existing)
      return undefined
    }
    const agent = resource as AgentResource
    const { settings } = this.#options
    const owner = this.#options.objects.objectOf(key)
    const uid = owner?.metadata?.uid
    if (owner === undefined || uid === undefined) return undefined

    const foreign = existing === undefined ? await this.#foreign(id, uid) : undefined
    if (foreign !== undefined) {
      await this.#report(agent, undefined, {
        reason: 'DeploymentConflict',
        message: `a Deployment named ${name} exists in ${namespace} and ark does not manage it (${foreign}); rename the agent or delete that Deployment`,
      })
      return { requeueAfterMs: 60_000 }
    }
    try {
      await this.#converge(agent, owner, existing, signal)
    } catch (err) {
      if (signal.aborted || !(err instanceof KubeError)) throw err
      // What the API server refused (a name too long, an admission policy, KEDA not installed) is the
      // agent's to show, with the server's words; the reconcile is retried with backoff all the same.
      await this.#report(agent, this.#deployments.get(id), {
        reason: err.status === 404 && settings.keda !== undefined ? 'KedaUnavailable' : 'ApplyFailed',
        message: err.message.slice(0, 500),
      })
      throw err
    }
    await this.#report(agent, this.#deployments.get(id))
    return undefined
  }

  /** Applies what the pool needs: its namespace's objects, its Deployment and, with KEDA, its ScaledObject. */
  async #converge(
    agent: AgentResource,
    owner: KubeObject,
    existing: KubeObject | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const { namespace, name } = agent.ref
    const id = `${namespace}/${name}`
    const { settings, redisUrl } = this.#options
    await this.#ensureNamespace(namespace)
    signal.throwIfAborted()
    const ownerReference = {
      apiVersion: String(owner.apiVersion),
      kind: String(owner.kind),
      name: owner.metadata?.name ?? name,
      uid: owner.metadata?.uid,
      controller: true,
      blockOwnerDeletion: false,
    }
    const withOwner = (o: Record<string, unknown>) => ({
      ...o,
      metadata: { ...(o.metadata as object), ownerReferences: [ownerReference] },
    })
    const deployment = poolDeployment(agent, settings, this.#configHash(agent))
    const path = `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`
    if (settings.keda !== undefined && existing !== undefined) await this.#handOverReplicas(path, existing)
    signal.throwIfAborted()
    const applied = await this.#applyChanged(path, withOwner(deployment), { current: existing })
    if (applied !== undefined) this.#store(applied)

    if (settings.keda !== undefined) {
      const keda = { ...settings, keda: settings.keda }
      if ((agent.spec.replicas ?? 0) > 0) {
        this.#unscaled.delete(id)
        for (const o of kedaObjects(agent, keda, redisUrl)) {
          signal.throwIfAborted()
          const m = o.metadata as { name: string }
          const plural = o.kind === 'ScaledObject' ? 'scaledobjects' : 'triggerauthentications'
          await this.#applyChanged(
            `/apis/keda.sh/v1alpha1/namespaces/${namespace}/${plural}/${m.name}`,
            withOwner(o),
          )
        }
      } else if (!this.#unscaled.has(id)) {
        // Drained: KEDA must not scale it back up.
        await this.#deleteScaledObject(namespace, name)
        this.#unscaled.add(id)
      }
    }
  }

  /**
   * Before the first apply without replicas (KEDA's HPA owns them from then on), the current count is applied
   * under a field manager of its own: dropping a field only ark-controller owned would reset it to 1.
   */
  async #handOverReplicas(path: string, existing: KubeObject): Promise<void> {
    const replicas = (existing.spec as { replicas?: number } | undefined)?.replicas
    // Only while ark-controller's own apply holds the field: once the HPA has it, a count read from the
    // cache could be older than the HPA's last scale.
    const fields = (existing.metadata?.managedFields ?? []) as {
      manager?: string
      operation?: string
      fieldsV1?: { 'f:spec'?: { 'f:replicas'?: unknown } }
    }[]
    const ours = fields.some(
      (f) =>
        f.manager === FIELD_MANAGER &&
        f.operation === 'Apply' &&
        f.fieldsV1?.['f:spec']?.['f:replicas'] !== undefined,
    )
    if (replicas === undefined || !ours) return
    await this.#options.client.request('PATCH', path, {
      query: { fieldManager: 'ark-controller-replicas', force: true },
      contentType: 'application/apply-patch+yaml',
      body: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata:
          existing.metadata === undefined
            ? {}
            : { name: existing.metadata.name, namespace: existing.metadata.namespace },
        spec: { replicas },
      },
    })
  }

  async #deleteScaledObject(namespace: string, name: string): Promise<void> {
    const path = `/apis/keda.sh/v1alpha1/namespaces/${namespace}/scaledobjects/${name}`
    await this.#deleteIfPresent(path)
    this.#applied.delete(path)
  }

  /**
   * Whether a pool whose agent is not in the store (or not pooled) should go. An ArkAgent's pool never goes
   * here: its ownerReference takes it with the ArkAgent, and an ArkAgent missing from this store may only be
   * rejected in its current version (kept running on its last valid one, which a restarted controller never
   * saw), or have lost its name to an ARK Agent. A role's pool goes when its team is here, decoded in its
   * current version, and no longer has the role.
   */
  #roleRemoved(d: KubeObject, namespace: string): boolean {
    const owners = (d.metadata?.ownerReferences ?? []) as { kind?: string; name?: string; uid?: string }[]
    const owner = owners[0]
    if (owner?.kind !== 'ArkTeam' || owner.name === undefined) return false
    const team = this.#options.objects.objectOf(resourceKey('Team', namespace, owner.name))
    return team?.metadata?.uid === owner.uid
  }

  /** Why a Deployment of this name that the cache does not hold is not ark's; undefined when there is none. */
  async #foreign(id: string, uid: string): Promise<string | undefined> {
    const [namespace = '', name = ''] = id.split('/')
    let d: KubeObject
    try {
      d = await this.#options.client.request<KubeObject>(
        'GET',
        `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`,
      )
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined
      throw err
    }
    const owners = (d.metadata?.ownerReferences ?? []) as { uid?: string }[]
    if (owners.some((o) => o.uid === uid)) return undefined
    return owners.length > 0 ? 'it has another owner' : 'it has no owner'
  }

  async #ensureNamespace(namespace: string): Promise<void> {
    for (const o of namespaceObjects(namespace, this.#options.settings, this.#options.redisUrl)) {
      const m = o.metadata as { name: string }
      const path =
        o.kind === 'RoleBinding'
          ? `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings/${m.name}`
          : `/api/v1/namespaces/${namespace}/${o.kind === 'Secret' ? 'secrets' : 'serviceaccounts'}/${m.name}`
      const applied = await this.#applyChanged(path, o)
      if (applied !== undefined && o.kind === 'Secret')
        this.#redisSecrets.set(
          namespace,
          `${applied.metadata?.uid ?? ''}@${applied.metadata?.resourceVersion ?? ''}`,
        )
    }
  }

  /**
   * A digest of what the pool's pods read when they start, or could read differently after a change: every
   * ConfigMap and Secret the agent reaches through its references (its prompt, its Model's key, its tools'
   * headers), by identity and version (never by content: the annotation is readable by anyone who can read
   * the Deployment), the namespace's provider Secret, and the Redis Secret as it was last applied.
   */
  #configHash(agent: AgentResource): string {
    const store = this.#catalog.store
    const parts: string[] = []
    const version = (r: AnyResource | undefined, label: string) => {
      if (r === undefined) return `${label}:absent`
      const rv = r.meta.resourceVersion
      // A folder has no resourceVersion; its digest is only ever compared with itself.
      return `${label}:${r.meta.uid ?? ''}@${rv ?? digest(JSON.stringify(r.spec))}`
    }
    const { providersSecret } = this.#options.settings
    const providers = resourceKey('Secret', agent.ref.namespace, providersSecret)
    parts.push(
      version(store.get(providers), providers),
      `redis:${this.#redisSecrets.get(agent.ref.namespace) ?? ''}`,
    )
    const seen = new Set<string>([agent.key])
    let frontier: AnyResource[] = [agent]
    for (let depth = 0; depth < MAX_DEPTH && frontier.length > 0; depth++) {
      const next: AnyResource[] = []
      for (const r of frontier)
        for (const ref of referencesOf(r)) {
          if (ref.kind === 'Service' || ref.kind === 'Agent' || ref.kind === 'Team') continue
          const k = resourceKey(ref.kind, ref.ref.namespace, ref.ref.name)
          if (seen.has(k)) continue
          seen.add(k)
          const found = store.get(k)
          if (ref.kind === 'ConfigMap' || ref.kind === 'Secret') parts.push(version(found, k))
          else if (found !== undefined) next.push(found)
        }
      frontier = next
    }
    return digest(parts.sort().join('\n')).slice(0, 16)
  }

  /** Writes the pool's state into the agent's status; `failure`: what keeps the pool from converging. */
  async #report(
    agent: AgentResource,
    deployment: KubeObject | undefined,
    failure?: { reason: string; message: string },
  ): Promise<void> {
    const conflict = failure?.reason === 'DeploymentConflict' ? failure : undefined
    const desired = agent.spec.replicas ?? 0
    const state = poolState(deployment, desired)
    const progressing = conflict === undefined ? state.progressing : { status: 'False' as const, ...conflict }
    const degraded = failure === undefined ? state.degraded : { status: 'True' as const, ...failure }
    const now = () => new Date()
    await this.#writer.updateStatus(agent.key, (current, latest) => {
      const progressed = withCondition(current, latest, PROGRESSING, progressing, now)
      const degradedNow = withCondition(progressed ?? current, latest, DEGRADED, degraded, now)
      const conditions = (degradedNow ?? progressed ?? current)?.conditions ?? []
      // A conflict says nothing about the pool's pods: the counts stay as they were.
      const counts =
        conflict === undefined ? { replicas: state.replicas, readyReplicas: state.readyReplicas } : {}
      const countsChanged =
        conflict === undefined &&
        (current?.replicas !== state.replicas || current.readyReplicas !== state.readyReplicas)
      if (progressed === undefined && degradedNow === undefined && !countsChanged) return undefined
      return { ...current, conditions, ...counts }
    })
  }

  /**
   * Applies `body` unless the same body was applied at `path` within REAPPLY_MS and, for an object the cache
   * holds (`current`), its generation is still the one that apply produced. Resolves with what the server
   * answered, or undefined when nothing was sent.
   */
  async #applyChanged(
    path: string,
    body: Record<string, unknown>,
    options: { readonly current?: KubeObject | undefined } = {},
  ): Promise<KubeObject | undefined> {
    const wanted = digest(JSON.stringify(body))
    const last = this.#applied.get(path)
    const tracked = 'current' in options
    if (
      last?.digest === wanted &&
      Date.now() - last.at < REAPPLY_MS &&
      (!tracked ||
        (options.current !== undefined && options.current.metadata?.generation === last.generation))
    )
      return undefined
    const applied = await this.#apply(path, body)
    this.#applied.set(path, { digest: wanted, generation: applied.metadata?.generation, at: Date.now() })
    return applied
  }

  async #apply(path: string, body: Record<string, unknown>): Promise<KubeObject> {
    return this.#options.client.request<KubeObject>('PATCH', path, {
      query: { fieldManager: FIELD_MANAGER, force: true },
      contentType: 'application/apply-patch+yaml',
      body,
    })
  }

  /** A removed role's pool: its Deployment, and its ScaledObject and TriggerAuthentication with KEDA. */
  async #deletePool(d: KubeObject): Promise<void> {
    const m = d.metadata ?? {}
    const namespace = m.namespace ?? ''
    const name = m.name ?? ''
    if (this.#options.settings.keda !== undefined) {
      await this.#deleteScaledObject(namespace, name)
      await this.#deleteIfPresent(
        `/apis/keda.sh/v1alpha1/namespaces/${namespace}/triggerauthentications/${name}-redis`,
      )
      this.#unscaled.delete(`${namespace}/${name}`)
    }
    await this.#delete(d)
  }

  async #delete(d: KubeObject): Promise<void> {
    const m = d.metadata ?? {}
    this.#applied.delete(`/apis/apps/v1/namespaces/${m.namespace ?? ''}/deployments/${m.name ?? ''}`)
    await this.#deleteIfPresent(
      `/apis/apps/v1/namespaces/${m.namespace ?? ''}/deployments/${m.name ?? ''}`,
      m.uid,
    )
  }

  async #deleteIfPresent(path: string, uid?: string): Promise<void> {
    try {
      await this.#options.client.request('DELETE', path, {
        body: {
          kind: 'DeleteOptions',
          apiVersion: 'v1',
          propagationPolicy: 'Background',
          ...(uid === undefined ? {} : { preconditions: { uid } }),
        },
      })
    } catch (err) {
      if (err instanceof KubeError && (err.status === 404 || err.status === 409)) return
      throw err
    }
  }
}

function idOf(d: KubeObject): string {
  return `${d.metadata?.namespace ?? ''}/${d.metadata?.name ?? ''}`
}
