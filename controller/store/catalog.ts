/**
 * The catalog: an in-memory, indexed view of a store, kept current by its events. The gateway reads it on the
 * hot path, so a target lookup is one Map.get on the string the client sent (no parsing, no allocation), and
 * values (ConfigMap keys, Secret keys) are read live, so a changed ConfigMap is seen at once.
 */
import { referencesOf, resourceKey } from '../api/index.ts'
import type {
  AnyResource,
  Condition,
  Kind,
  ObjectRef,
  ResourceOf,
  Status,
  ValueSource,
} from '../api/index.ts'
import type { ResourceView, StoreEvent } from './store.ts'

/** The kinds a client can address: `agent/x`, `team/x`, `model/x`. */
export type TargetKind = 'Agent' | 'Team' | 'Model'

export interface Target {
  readonly kind: TargetKind
  readonly resource: ResourceOf<TargetKind>
}

const TARGET_PREFIX: Record<TargetKind, string> = { Agent: 'agent', Team: 'team', Model: 'model' }

export type Resolved =
  | { readonly ok: true; readonly value: string | undefined }
  | { readonly ok: false; readonly reason: string; readonly message: string }

export class Catalog {
  readonly #store: ResourceView
  readonly #byKind = new Map<Kind, Map<string, AnyResource>>()
  readonly #targets = new Map<string, Target>()
  /** Reverse references: key of X to the keys of resources that point at X. */
  readonly #dependents = new Map<string, Set<string>>()
  readonly #references = new Map<string, string[]>()
  readonly #defaultNamespace: string
  readonly #unsubscribe: () => void

  constructor(store: ResourceView, options: { defaultNamespace?: string } = {}) {
    this.#store = store
    this.#defaultNamespace = options.defaultNamespace ?? 'default'
    for (const r of store.list()) this.#add(r)
    this.#unsubscribe = store.subscribe((events) => {
      this.#apply(events)
    })
  }

  close(): void {
    this.#unsubscribe()
  }

  /** The read side of the store: the catalog gives no way to write status. */
  get store(): ResourceView {
    return this.#store
  }

  get<K extends Kind>(kind: K, ref: ObjectRef): ResourceOf<K> | undefined {
    return this.#byKind.get(kind)?.get(resourceKey(kind, ref.namespace, ref.name)) as
      ResourceOf<K> | undefined
  }

  list<K extends Kind>(kind: K): ResourceOf<K>[] {
    return [...(this.#byKind.get(kind)?.values() ?? [])] as ResourceOf<K>[]
  }

  count(kind: Kind): number {
    return this.#byKind.get(kind)?.size ?? 0
  }

  status(key: string): Status | undefined {
    return this.#store.status(key)
  }

  /** The resource's Available condition (whether it can serve, and why not), if it has one yet. */
  available(key: string): Condition | undefined {
    return this.#store.status(key)?.conditions.find((c) => c.type === 'Available')
  }

  /**
   * `agent/name`, `agent/ns/name`, `team/...`, `model/...`, or a bare agent name (default namespace).
   * O(1) and allocation-free: every accepted spelling is a key of one map.
   */
  resolveTarget(name: string): Target | undefined {
    return this.#targets.get(name)
  }

  /**
   * How clients name a target: `agent/<name>` in the default namespace, else `agent/<ns>/<name>` (and the
   * same for team/ and model/). The shortest of the spellings resolveTarget accepts, short of a bare name.
   */
  targetId(kind: TargetKind, ref: ObjectRef): string {
    const prefix = TARGET_PREFIX[kind]
    return ref.namespace === this.#defaultNamespace
      ? `${prefix}/${ref.name}`
      : `${prefix}/${ref.namespace}/${ref.name}`
  }

  /** Keys of the resources that reference `key`. */
  dependentsOf(key: string): ReadonlySet<string> {
    return this.#dependents.get(key) ?? EMPTY
  }

  /**
   * Reads a value now. Query parameters are not the catalog's to know: they resolve to `undefined` here and
   * are filled in per request.
   */
  resolveValue(namespace: string, source: ValueSource): Resolved {
    if ('value' in source) return { ok: true, value: source.value }
    if ('queryParameterRef' in source) return { ok: true, value: undefined }
    if ('serviceRef' in source) {
      return {
        ok: false,
        reason: 'ServiceNotResolvable',
        message: `serviceRef ${source.serviceRef.name} resolves only inside a cluster; use value or a ConfigMap here`,
      }
    }
    const isSecret = 'secretKeyRef' in source
    const ref = isSecret ? source.secretKeyRef : source.configMapKeyRef
    const kind = isSecret ? 'Secret' : 'ConfigMap'
    const holder = this.get(kind, { namespace, name: ref.name })
    if (holder === undefined) {
      if (ref.optional === true) return { ok: true, value: undefined }
      return { ok: false, reason: `${kind}NotFound`, message: `${kind} ${namespace}/${ref.name} not found` }
    }
    const data: Readonly<Record<string, string>> = holder.spec.data
    const value = data[ref.key]
    if (value === undefined) {
      if (ref.optional === true) return { ok: true, value: undefined }
      return {
        ok: false,
        reason: 'KeyNotFound',
        message: `${kind} ${namespace}/${ref.name} has no key "${ref.key}"`,
      }
    }
    return { ok: true, value }
  }

  #apply(events: readonly StoreEvent[]): void {
    for (const e of events) {
      if (e.type === 'added') this.#add(e.resource)
      else if (e.type === 'modified') {
        this.#remove(e.previous)
        this.#add(e.resource)
      } else if (e.type === 'deleted') this.#remove(e.resource)
    }
  }

  #add(r: AnyResource): void {
    let m = this.#byKind.get(r.kind)
    if (m === undefined) this.#byKind.set(r.kind, (m = new Map<string, AnyResource>()))
    m.set(r.key, r)
    for (const name of this.#targetNames(r))
      this.#targets.set(name, { kind: r.kind as TargetKind, resource: r as ResourceOf<TargetKind> })
    // Services are not stored here, so nothing can change under a serviceRef.
    const refs = referencesOf(r).flatMap((x) =>
      x.kind === 'Service' ? [] : [resourceKey(x.kind, x.ref.namespace, x.ref.name)],
    )
    this.#references.set(r.key, refs)
    for (const k of refs) {
      let s = this.#dependents.get(k)
      if (s === undefined) this.#dependents.set(k, (s = new Set()))
      s.add(r.key)
    }
  }

  #remove(r: AnyResource): void {
    this.#byKind.get(r.kind)?.delete(r.key)
    for (const name of this.#targetNames(r)) {
      if (this.#targets.get(name)?.resource.key === r.key) this.#targets.delete(name)
    }
    for (const k of this.#references.get(r.key) ?? []) {
      const s = this.#dependents.get(k)
      s?.delete(r.key)
      if (s?.size === 0) this.#dependents.delete(k)
    }
    this.#references.delete(r.key)
  }

  #targetNames(r: AnyResource): string[] {
    if (r.kind !== 'Agent' && r.kind !== 'Team' && r.kind !== 'Model') return []
    const { namespace, name } = r.ref
    const names = [`${TARGET_PREFIX[r.kind]}/${namespace}/${name}`]
    if (namespace === this.#defaultNamespace) {
      names.push(this.targetId(r.kind, r.ref))
      if (r.kind === 'Agent') names.push(name)
    }
    return names
  }
}

const EMPTY: ReadonlySet<string> = new Set()
