/**
 * The cluster backend of the store: every kind of both dialects, plus ConfigMaps and Secrets, listed and
 * watched (one Reflector per kind and namespace), decoded by the same adapters as a manifests folder, and
 * kept in memory. Status is read from each object's status subresource and written back to it, in the
 * resource's own dialect.
 *
 * - Change detection compares spec, labels, annotations and generation (sameResource), never
 *   resourceVersion: a status write shows up as a `status` event, not as a modified resource, so prepared
 *   agents and their provider clients survive it.
 * - An object the adapters reject keeps its last valid version, as a folder does, and is reported in
 *   problems() (the controller turns those into a condition and a Warning Event on the object).
 * - Names are unique per internal kind across both dialects (`Agent foo` and `ArkAgent foo` both answer to
 *   `agent/foo`): the first one seen wins and the other is reported.
 * - Status writes are JSON merge patches of the status subresource carrying the resourceVersion they were
 *   computed from; a 409 re-reads the object and applies the update again. Only the status the update
 *   returns is written, so another writer's fields and conditions survive.
 * - Secret values live only in memory; service-account tokens and Helm release Secrets are not kept at all.
 */
import type { AnyResource, KindDef, Problem, Status } from '../api/index.ts'
import { KIND_DEFS, apiVersionOf, decodeDocument, decodeStatus, encodeStatus } from '../api/index.ts'
import type { KubeClient, KubeObject } from '../kube/client.ts'
import { KubeError } from '../kube/client.ts'
import { Reflector } from './reflector.ts'
import type { DerivedWriter, ResourceStore, StatusUpdate, StoreEvent, StoreListener } from './store.ts'
import { sameResource } from './store.ts'

export interface KubeStoreOptions {
  /** Namespaces to watch; absent: all of them. */
  readonly namespaces?: readonly string[]
  /** Which kinds to watch (default all). A gateway has no use for Queries and Evaluations. */
  readonly kinds?: (def: KindDef) => boolean
  readonly defaultNamespace?: string
  /** A list or watch failed (the reflector retries by itself). */
  readonly onError?: (path: string, err: unknown) => void
}

/** One object of the cluster and what it decoded into. */
interface Source {
  readonly id: string
  readonly def: KindDef
  readonly object: KubeObject
  /** The last valid decoding: kept when a later version is rejected. */
  readonly resources: readonly AnyResource[]
  readonly problems: readonly Problem[]
  /** The errors that rejected the object's current version; empty when it decoded. */
  readonly rejected: readonly Problem[]
}

/** An object whose current version the adapters rejected: the controller marks it (condition, Event). */
export interface Rejection {
  /** Stable id of the object: `<apiVersion>/<kind>/<namespace>/<name>`. */
  readonly id: string
  readonly apiVersion: string
  readonly kind: string
  readonly namespace: string
  readonly name: string
  readonly uid?: string
  readonly generation?: number
  /** The errors; empty when the object is fine again (or gone: see `gone`). */
  readonly problems: readonly Problem[]
  readonly gone: boolean
}

/** Secret types nothing in ark reads, which can be large and many. */
const IGNORED_SECRET_TYPES = new Set(['kubernetes.io/service-account-token', 'helm.sh/release.v1'])
const MAX_CONFLICT_RETRIES = 8

export class KubeStore implements ResourceStore, DerivedWriter {
  readonly #client: KubeClient
  readonly #options: KubeStoreOptions
  readonly #defaultNamespace: string
  readonly #reflectors: Reflector[] = []
  readonly #sources = new Map<string, Source>()
  /** Which sources define each key, in arrival order: the first one wins. */
  readonly #claims = new Map<string, string[]>()
  readonly #resources = new Map<string, AnyResource>()
  readonly #statuses = new Map<string, Status>()
  readonly #listeners = new Set<StoreListener>()
  readonly #rejectionListeners = new Set<(r: Rejection) => void>()
  #pending: StoreEvent[] = []
  #flushScheduled = false
  #problems: readonly Problem[] | undefined
  #started = false

  constructor(client: KubeClient, options: KubeStoreOptions = {}) {
    this.#client = client
    this.#options = options
    this.#defaultNamespace = options.defaultNamespace ?? 'default'
  }

  async start(): Promise<void> {
    const defs = KIND_DEFS.filter((d) => this.#options.kinds?.(d) ?? true)
    const namespaces = this.#options.namespaces ?? [undefined]
    for (const def of defs) {
      for (const ns of namespaces) {
        const path = collectionPath(def, ns)
        const reflector = new Reflector(
          this.#client,
          path,
          {
            replace: (items) => this.#replace(def, ns, items),
            event: (type, object) => {
              if (type === 'DELETED') this.#remove(def, object)
              else this.#upsert(def, object)
            },
            error: (err) => this.#options.onError?.(path, err),
          },
          // Service-account tokens never even reach this process (RBAC cannot filter by type; the server can).
          def.group === '' && def.kind === 'Secret'
            ? { fieldSelector: 'type!=kubernetes.io/service-account-token' }
            : {},
        )
        this.#reflectors.push(reflector)
      }
    }
    await Promise.all(this.#reflectors.map((r) => r.start()))
    // Everything seen so far is the initial view; subscribers list() it after start().
    this.#pending = []
    this.#started = true
  }

  async close(): Promise<void> {
    this.#listeners.clear()
    await Promise.all(this.#reflectors.map((r) => r.stop()))
  }

  get(key: string): AnyResource | undefined {
    return this.#resources.get(key)
  }

  list(): IterableIterator<AnyResource> {
    return this.#resources.values()
  }

  problems(): readonly Problem[] {
    this.#problems ??= this.#collectProblems()
    return this.#problems
  }

  subscribe(listener: StoreListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  status(key: string): Status | undefined {
    return this.#statuses.get(key)
  }

  dialectStatus(key: string): Record<string, unknown> | undefined {
    const resource = this.#resources.get(key)
    const status = this.#statuses.get(key)
    return resource === undefined || status === undefined ? undefined : encodeStatus(resource, status)
  }

  /** The object a resource was decoded from (its metadata: uid, finalizers, deletionTimestamp). */
  objectOf(key: string): KubeObject | undefined {
    return this.#sourceOf(key)?.object
  }

  async updateStatus(key: string, update: StatusUpdate): Promise<void> {
    await this.#patchLatest(
      () => this.#sourceOf(key),
      (source) => {
        // Gone while its reconcile ran, as a 404 from the status subresource would say.
        const resource = this.#resources.get(key)
        if (resource === undefined) return undefined
        const next = update(this.#statuses.get(key), resource)
        if (next === undefined) return undefined
        if (!isPrimary(source, resource)) {
          // Generated from another resource (an ArkTeam's inline role): no object of its own to write to.
          this.#statuses.set(key, next)
          this.#emit({ type: 'status', resource, status: next })
          return undefined
        }
        const encoded = encodeStatus(resource, next)
        return encoded === undefined ? undefined : { status: withoutEmptyStrings(encoded) }
      },
    )
  }

  /** Objects whose current version is rejected now. */
  rejections(): Rejection[] {
    return [...this.#sources.values()].filter((s) => s.rejected.length > 0).map((s) => rejectionOf(s, false))
  }

  /** Told when an object becomes rejected, changes its errors, is fixed, or goes away while rejected. */
  onRejection(listener: (r: Rejection) => void): () => void {
    this.#rejectionListeners.add(listener)
    return () => this.#rejectionListeners.delete(listener)
  }

  /**
   * Sets (or with `condition` undefined removes) one condition on an object's status, whether or not it
   * decoded: how a rejected object is told what is wrong with it.
   */
  async setObjectCondition(
    id: string,
    condition: { type: string; status: 'True' | 'False'; reason: string; message: string } | undefined,
    type: string,
  ): Promise<void> {
    await this.#patchLatest(
      () => this.#sources.get(id),
      (source) => {
        const status = source.object.status as { conditions?: unknown } | undefined
        const conditions = Array.isArray(status?.conditions)
          ? (status.conditions as { type?: unknown }[])
          : []
        const others = conditions.filter((c) => c.type !== type)
        const before = conditions.find((c) => c.type === type) as Record<string, unknown> | undefined
        if (condition === undefined && before === undefined) return undefined
        if (
          condition !== undefined &&
          before?.status === condition.status &&
          before.reason === condition.reason &&
          before.message === condition.message
        ) {
          return undefined
        }
        const next =
          condition === undefined
            ? others
            : [
                ...others,
                {
                  ...condition,
                  lastTransitionTime: new Date().toISOString(),
                  ...(source.object.metadata?.generation === undefined
                    ? {}
                    : { observedGeneration: source.object.metadata.generation }),
                },
              ]
        return { status: withoutEmptyStrings({ conditions: next }) }
      },
    )
  }

  /** Metadata of the object behind a resource (uid, finalizers, deletionTimestamp). */
  metadataOf(key: string): KubeObject['metadata'] {
    return this.objectOf(key)?.metadata
  }

  /**
   * Sets an annotation and adds a finalizer in one merge patch conditional on the resourceVersion read: the
   * Query controller's claim. False when the annotation is already set (someone claimed it first) or the
   * object is gone or being deleted.
   */
  claim(key: string, annotation: string, value: string, finalizer: string): Promise<boolean> {
    return this.#patchLatest(
      () => this.#sourceOf(key),
      (source) => {
        const m = source.object.metadata
        if (
          m === undefined ||
          m.annotations?.[annotation] !== undefined ||
          m.deletionTimestamp !== undefined
        ) {
          return undefined
        }
        const current = m.finalizers ?? []
        return {
          metadata: {
            annotations: { [annotation]: value },
            ...(current.includes(finalizer) ? {} : { finalizers: [...current, finalizer] }),
          },
        }
      },
    )
  }

  /** Adds or removes a finalizer, on top of the latest version (a 409 re-reads and tries again). */
  async setFinalizer(key: string, finalizer: string, present: boolean): Promise<void> {
    await this.#patchLatest(
      () => this.#sourceOf(key),
      (source) => {
        const current = source.object.metadata?.finalizers ?? []
        if (current.includes(finalizer) === present) return undefined
        return {
          metadata: {
            finalizers: present ? [...current, finalizer] : current.filter((f) => f !== finalizer),
          },
        }
      },
    )
  }

  /**
   * Server-side apply of each object as the controller's field manager, owned by `owner` (an ownerReference
   * with its uid: the garbage collector deletes them with it, and a recreated owner does not adopt them).
   */
  async applyDerived(owner: AnyResource, objects: readonly Record<string, unknown>[]): Promise<void> {
    const uid = owner.meta.uid
    if (uid === undefined) throw new Error(`${owner.key} has no uid: it was not read from the cluster`)
    for (const object of objects) {
      const def = KIND_DEFS.find((d) => apiVersionOf(d) === object.apiVersion && d.kind === object.kind)
      const metadata = (object.metadata ?? {}) as { name?: string; namespace?: string }
      if (def === undefined || metadata.name === undefined)
        throw new Error(
          `cannot apply ${String(object.apiVersion)} ${String(object.kind)}: not a kind ark knows`,
        )
      const body = {
        ...object,
        metadata: {
          ...metadata,
          ownerReferences: [
            {
              apiVersion: owner.origin.apiVersion,
              kind: owner.origin.kind,
              name: owner.ref.name,
              uid,
              controller: true,
              blockOwnerDeletion: false,
            },
          ],
        },
      }
      await this.#client.request('PATCH', `${collectionPath(def, metadata.namespace)}/${metadata.name}`, {
        query: { fieldManager: 'ark-controller', force: true },
        contentType: 'application/apply-patch+yaml',
        body: withoutEmptyStrings(body),
      })
    }
  }

  /** Garbage collection removes what an owner derived, through the ownerReference applyDerived set. */
  releaseDerived(): Promise<void> {
    return Promise.resolve()
  }

  /** Deletes the object behind a resource (only the one this store saw: a recreated namespace/name is spared). */
  async delete(key: string): Promise<void> {
    const source = this.#sourceOf(key)
    if (source === undefined) return
    try {
      await this.#client.request('DELETE', objectPath(source), {
        body: {
          kind: 'DeleteOptions',
          apiVersion: 'v1',
          preconditions: { uid: source.object.metadata?.uid },
        },
      })
    } catch (err) {
      if (err instanceof KubeError && (err.status === 404 || err.status === 409)) return
      throw err
    }
  }

  #sourceOf(key: string): Source | undefined {
    const id = this.#claims.get(key)?.[0]
    return id === undefined ? undefined : this.#sources.get(id)
  }

  /**
   * One write that must not undo another writer's: a JSON merge patch built from the latest version of the
   * object this store has, sent with that version's resourceVersion. A `status` patch goes to the status
   * subresource. A 409 (someone wrote first) reads the object again and builds the patch again from it.
   * `build` returns undefined when nothing needs writing. Resolves true when a patch landed; false when
   * nothing was written or the object is gone.
   */
  async #patchLatest(
    find: () => Source | undefined,
    build: (source: Source) => { metadata?: Record<string, unknown>; status?: unknown } | undefined,
  ): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      const source = find()
      if (source === undefined) return false
      const patch = build(source)
      if (patch === undefined) return false
      const resourceVersion = source.object.metadata?.resourceVersion
      const body =
        patch.status === undefined
          ? { metadata: { ...patch.metadata, resourceVersion } }
          : { metadata: { resourceVersion }, status: patch.status }
      try {
        const object = await this.#client.request<KubeObject>(
          'PATCH',
          objectPath(source) + (patch.status === undefined ? '' : '/status'),
          { body, contentType: 'application/merge-patch+json' },
        )
        this.#upsert(source.def, object)
        return true
      } catch (err) {
        if (!(err instanceof KubeError)) throw err
        if (err.status === 404) return false
        if (err.status !== 409 || attempt >= MAX_CONFLICT_RETRIES) throw err
        let fresh: KubeObject
        try {
          fresh = await this.#client.request<KubeObject>('GET', objectPath(source))
        } catch (e) {
          if (e instanceof KubeError && e.status === 404) return false
          throw e
        }
        this.#upsert(source.def, fresh)
      }
    }
  }

  /** A relist: objects of this kind (and namespace) that are not in it were deleted meanwhile. */
  #replace(def: KindDef, namespace: string | undefined, items: readonly KubeObject[]): void {
    const seen = new Set<string>()
    for (const object of items) {
      seen.add(sourceId(def, object))
      this.#upsert(def, object)
    }
    for (const source of [...this.#sources.values()]) {
      if (source.def !== def || seen.has(source.id)) continue
      if (namespace !== undefined && source.object.metadata?.namespace !== namespace) continue
      this.#remove(def, source.object)
    }
  }

  #upsert(def: KindDef, incoming: KubeObject): void {
    let object = incoming
    if (def.kind === 'Secret' && def.group === '' && IGNORED_SECRET_TYPES.has(String(object.type))) return
    const id = sourceId(def, object)
    const previous = this.#sources.get(id)
    if (previous !== undefined && isOlder(object, previous.object)) return
    object = slim(object)
    const { status: rawStatus, ...spec } = object
    if (previous !== undefined && previous.rejected.length === 0 && sameGeneration(previous.object, object)) {
      // Only status (or resourceVersion) moved, as after each of the controller's own writes: the decoding
      // of the spec still holds, and only the status is read again.
      const source: Source = { ...previous, object }
      this.#sources.set(id, source)
      for (const r of source.resources) this.#claim(r, source, rawStatus)
      return
    }
    // Status is not the adapters' business: a status another writer shaped oddly must not reject the spec.
    const decoded = decodeDocument(
      { value: { ...spec, apiVersion: apiVersionOf(def), kind: def.kind } },
      this.#defaultNamespace,
    )
    const valid = decoded.resources.length > 0 || decoded.identities.length === 0
    const resources = valid ? decoded.resources : (previous?.resources ?? [])
    const problems =
      valid || previous === undefined ? decoded.problems : [...decoded.problems, keptNote(def, object)]
    // Core kinds (ConfigMap, Secret) have no status to say it in: their problems are only logged.
    const rejected = valid || def.group === '' ? [] : decoded.problems.filter((p) => p.severity === 'error')
    const source: Source = { id, def, object, resources, problems, rejected }
    this.#sources.set(id, source)
    if (rejected.length > 0 || (previous?.rejected.length ?? 0) > 0) {
      if (JSON.stringify(rejected) !== JSON.stringify(previous?.rejected)) this.#tellRejection(source, false)
    }
    this.#problems = undefined
    const before = previous?.resources ?? []
    for (const r of before) if (!resources.some((n) => n.key === r.key)) this.#unclaim(r.key, id)
    for (const r of resources) this.#claim(r, source, rawStatus)
  }

  #remove(def: KindDef, object: KubeObject): void {
    const id = sourceId(def, object)
    const source = this.#sources.get(id)
    if (source === undefined) return
    this.#sources.delete(id)
    this.#problems = undefined
    if (source.rejected.length > 0) this.#tellRejection(source, true)
    for (const r of source.resources) this.#unclaim(r.key, id)
  }

  #claim(r: AnyResource, source: Source, rawStatus: unknown): void {
    let claims = this.#claims.get(r.key)
    if (claims === undefined) this.#claims.set(r.key, (claims = []))
    if (!claims.includes(source.id)) claims.push(source.id)
    if (claims[0] !== source.id) return
    const current = this.#resources.get(r.key)
    const status = isPrimary(source, r) ? decodeStatus(r, rawStatus) : this.#statuses.get(r.key)
    if (current === undefined) {
      this.#resources.set(r.key, r)
      this.#setStatus(r.key, status)
      this.#emit({ type: 'added', resource: r })
      return
    }
    if (current !== r && !sameResource(current, r)) {
      this.#resources.set(r.key, r)
      this.#setStatus(r.key, status)
      this.#emit({ type: 'modified', resource: r, previous: current })
      return
    }
    // The same resource (identity kept: consumers compare by reference); only its status may have moved.
    if (status !== undefined && JSON.stringify(status) !== JSON.stringify(this.#statuses.get(r.key))) {
      this.#statuses.set(r.key, status)
      this.#emit({ type: 'status', resource: current, status })
    }
  }

  #unclaim(key: string, id: string): void {
    const claims = this.#claims.get(key)
    if (claims === undefined) return
    const wasWinner = claims[0] === id
    const rest = claims.filter((c) => c !== id)
    if (rest.length === 0) this.#claims.delete(key)
    else this.#claims.set(key, rest)
    if (!wasWinner) return
    const resource = this.#resources.get(key)
    this.#resources.delete(key)
    this.#statuses.delete(key)
    if (resource !== undefined) this.#emit({ type: 'deleted', resource })
    // The next claimant (the other dialect's object of the same name) takes over.
    const next = rest[0] === undefined ? undefined : this.#sources.get(rest[0])
    const r = next?.resources.find((x) => x.key === key)
    if (next !== undefined && r !== undefined) this.#claim(r, next, next.object.status)
  }

  #tellRejection(source: Source, gone: boolean): void {
    if (!this.#started) return
    const r = rejectionOf(source, gone)
    for (const listener of this.#rejectionListeners) listener(r)
  }

  #setStatus(key: string, status: Status | undefined): void {
    if (status === undefined) this.#statuses.delete(key)
    else this.#statuses.set(key, status)
  }

  #emit(event: StoreEvent): void {
    if (!this.#started) return
    this.#pending.push(event)
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    // Events of one burst (a relist, a page of watch events) reach listeners as one batch.
    queueMicrotask(() => {
      this.#flushScheduled = false
      const events = this.#pending
      this.#pending = []
      for (const listener of this.#listeners) listener(events)
    })
  }

  #collectProblems(): Problem[] {
    const problems: Problem[] = []
    for (const source of this.#sources.values()) {
      problems.push(...source.problems)
      for (const r of source.resources) {
        const winner = this.#claims.get(r.key)?.[0]
        if (winner === undefined || winner === source.id) continue
        const first = this.#sources.get(winner)
        problems.push({
          severity: 'error',
          kind: source.def.kind,
          namespace: r.ref.namespace,
          name: r.ref.name,
          message: `duplicate: ${first?.def.kind ?? 'another object'} ${r.ref.namespace}/${r.ref.name} already defines ${r.kind.toLowerCase()} ${r.ref.name}; this one is ignored (names are shared by both dialects)`,
        })
      }
    }
    return problems
  }
}

function rejectionOf(source: Source, gone: boolean): Rejection {
  const m = source.object.metadata
  return {
    id: source.id,
    apiVersion: apiVersionOf(source.def),
    kind: source.def.kind,
    namespace: m?.namespace ?? '',
    name: m?.name ?? '',
    ...(m?.uid === undefined ? {} : { uid: m.uid }),
    ...(m?.generation === undefined ? {} : { generation: m.generation }),
    problems: gone ? [] : source.rejected,
    gone,
  }
}

/** What the cache does not need of an object: managedFields, and kubectl's copy of the whole last apply. */
function slim(object: KubeObject): KubeObject {
  const m = object.metadata
  if (m === undefined || (m.managedFields === undefined && m.annotations?.[LAST_APPLIED] === undefined)) {
    return object
  }
  const metadata: Record<string, unknown> = { ...m }
  delete metadata.managedFields
  if (m.annotations?.[LAST_APPLIED] !== undefined) {
    metadata.annotations = Object.fromEntries(
      Object.entries(m.annotations).filter(([k]) => k !== LAST_APPLIED),
    )
  }
  return { ...object, metadata }
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'

/**
 * The spec cannot have changed: the same generation (custom resources bump it on every spec change, and
 * only then), uid, labels and annotations. Objects without a generation (ConfigMaps, Secrets) always decode.
 */
function sameGeneration(a: KubeObject, b: KubeObject): boolean {
  const x = a.metadata
  const y = b.metadata
  if (x?.generation === undefined || x.generation !== y?.generation || x.uid !== y.uid) return false
  return (
    x.deletionTimestamp === y.deletionTimestamp &&
    JSON.stringify(x.labels) === JSON.stringify(y.labels) &&
    JSON.stringify(x.annotations) === JSON.stringify(y.annotations) &&
    JSON.stringify(x.finalizers) === JSON.stringify(y.finalizers)
  )
}

function sourceId(def: KindDef, object: KubeObject): string {
  return `${apiVersionOf(def)}/${def.kind}/${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`
}

function isPrimary(source: Source, r: AnyResource): boolean {
  return r.origin.ownerKey === undefined && r.ref.name === source.object.metadata?.name
}

/**
 * etcd's resourceVersions are integers: a watch event older than what a status write already returned must
 * not roll the cache back. Anything that is not an integer is compared as never older.
 */
function isOlder(a: KubeObject, b: KubeObject): boolean {
  const x = Number(a.metadata?.resourceVersion)
  const y = Number(b.metadata?.resourceVersion)
  return Number.isSafeInteger(x) && Number.isSafeInteger(y) && x < y
}

function keptNote(def: KindDef, object: KubeObject): Problem {
  return {
    severity: 'warning',
    kind: def.kind,
    ...(object.metadata?.namespace === undefined ? {} : { namespace: object.metadata.namespace }),
    ...(object.metadata?.name === undefined ? {} : { name: object.metadata.name }),
    message: 'keeping the last valid version until this object is fixed',
  }
}

export function collectionPath(def: KindDef, namespace?: string): string {
  const base = def.group === '' ? `/api/${def.version}` : `/apis/${def.group}/${def.version}`
  return namespace === undefined ? `${base}/${def.plural}` : `${base}/namespaces/${namespace}/${def.plural}`
}

function objectPath(source: Source): string {
  return `${collectionPath(source.def, source.object.metadata?.namespace)}/${source.object.metadata?.name ?? ''}`
}

/**
 * The API server in ../shared/kube (1.20.2 built with reflect2 1.0.2) reads an empty string in a custom
 * resource's body as null and rejects it ("must be of type string"). Empty optional fields are left out
 * instead, and an empty condition message (a required field) says its reason. Harmless on any cluster.
 */
function withoutEmptyStrings(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => withoutEmptyStrings(v, key))
  if (typeof value !== 'object' || value === null) return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (v === '') {
      if (key === 'conditions' && k === 'message') out[k] = (value as { reason?: unknown }).reason ?? '-'
      continue
    }
    out[k] = withoutEmptyStrings(v, k)
  }
  return out
}
