/**
 * The resource store: where resources come from. Two backends implement it: a manifests folder (ManifestStore
 * below) and a cluster (kube-store.ts). The data plane holds only the read side (ResourceView); the control
 * plane also writes status (StatusWriter).
 */
import { decodeDocument, encodeStatus } from '../api/index.ts'
import type { AnyResource, Identity, Problem, Status } from '../api/index.ts'
import type { FileState, ManifestSource, RawDocument, SourceBatch } from './source.ts'

export type StoreEvent =
  | { readonly type: 'added'; readonly resource: AnyResource }
  | { readonly type: 'modified'; readonly resource: AnyResource; readonly previous: AnyResource }
  | { readonly type: 'deleted'; readonly resource: AnyResource }
  /** A resource's status changed (written by a reconciler). */
  | { readonly type: 'status'; readonly resource: AnyResource; readonly status: Status }

export type StoreListener = (events: readonly StoreEvent[]) => void

/**
 * What the data plane reads: resources, their status and what is wrong with the source. Nothing here writes;
 * gateways and workers hold only this.
 */
export interface ResourceView {
  get(key: string): AnyResource | undefined
  list(): IterableIterator<AnyResource>
  /** Everything wrong with the source right now: invalid documents, duplicates, unreadable files. */
  problems(): readonly Problem[]
  /** Called with every batch of changes after `start()`; the initial load arrives as one batch of `added`. */
  subscribe(listener: StoreListener): () => void
  status(key: string): Status | undefined
  /** Status as the resource's own dialect writes it (what `kubectl get -o yaml` would show). */
  dialectStatus(key: string): Record<string, unknown> | undefined
}

/**
 * A change to one resource's status, computed from its status as it is now. Returning `undefined` writes
 * nothing. A backend that loses a race (a 409 from the API server) reads the status again and calls the
 * update again, so an update must be a pure function of `current`.
 */
export type StatusUpdate = (current: Status | undefined, resource: AnyResource) => Status | undefined

/** The control plane's only way to change status. */
export interface StatusWriter {
  /** Resolves once the write landed (or was found unnecessary, or the resource is gone). */
  updateStatus(key: string, update: StatusUpdate): Promise<void>
}

/**
 * Writes the resources a reconciler derives from another: the Agent an A2AServer's card describes. Both
 * backends treat them as their owner's: on a cluster they carry an ownerReference (the garbage collector
 * removes them with it), in a folder they live beside the files, in memory, as long as their owner does.
 */
export interface DerivedWriter {
  /** Creates or updates `objects` (manifests of either dialect, with their namespace) as `owner`'s. */
  applyDerived(owner: AnyResource, objects: readonly Record<string, unknown>[]): Promise<void>
  /** `owner` is gone: what it derived goes too (on a cluster, its garbage collector does this). */
  releaseDerived(ownerKey: string): Promise<void>
}

/** A source of resources with its status: a manifests folder here, a cluster in kube-store.ts. */
export interface ResourceStore extends ResourceView, StatusWriter {
  /** Loads everything; resolves once the first full view is in (an informer's HasSynced). */
  start(): Promise<void>
  close(): Promise<void>
}

interface DocEntry {
  readonly resources: readonly AnyResource[]
  readonly identities: readonly Identity[]
  readonly problems: readonly Problem[]
}

interface FileEntry {
  readonly docs: readonly DocEntry[]
  readonly problems: readonly Problem[]
}

const sameIdentity = (a: Identity, b: Identity) =>
  a.apiVersion === b.apiVersion && a.kind === b.kind && a.namespace === b.namespace && a.name === b.name

/**
 * A store fed by a ManifestSource. Semantics follow `kubectl apply`: a document that becomes invalid keeps
 * the last valid version of its resource (and says so), an unreadable file keeps what it last held, a
 * deleted file deletes its resources. Names are unique per internal kind across both dialects, because both
 * `Agent foo` and `ArkAgent foo` would answer to `agent/foo`: the first (by file path, then document order)
 * wins and the other is reported.
 */
export class ManifestStore implements ResourceStore, DerivedWriter {
  readonly #source: ManifestSource
  readonly #defaultNamespace: string
  readonly #files = new Map<string, FileEntry>()
  #resources = new Map<string, AnyResource>()
  readonly #statuses = new Map<string, Status>()
  #problems: readonly Problem[] = []
  #folderProblems: readonly Problem[] = []
  readonly #listeners = new Set<StoreListener>()
  /** What applyDerived last applied, by its file. */
  readonly #derived = new Map<string, readonly RawDocument[]>()

  constructor(source: ManifestSource, options: { defaultNamespace?: string } = {}) {
    this.#source = source
    this.#defaultNamespace = options.defaultNamespace ?? 'default'
  }

  start(): Promise<void> {
    return this.#source.start((batch) => this.#apply(batch))
  }

  close(): Promise<void> {
    this.#listeners.clear()
    return this.#source.close()
  }

  /** Rescan the source now; resolves when the resulting changes were delivered. */
  refresh(): Promise<void> {
    return this.#source.rescan()
  }

  get(key: string): AnyResource | undefined {
    return this.#resources.get(key)
  }

  list(): IterableIterator<AnyResource> {
    return this.#resources.values()
  }

  problems(): readonly Problem[] {
    return this.#problems
  }

  subscribe(listener: StoreListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  status(key: string): Status | undefined {
    return this.#statuses.get(key)
  }

  updateStatus(key: string, update: StatusUpdate): Promise<void> {
    const resource = this.#resources.get(key)
    // Like a 404 from the status subresource: the resource went away while its reconcile ran.
    if (resource === undefined) return Promise.resolve()
    const status = update(this.#statuses.get(key), resource)
    if (status === undefined) return Promise.resolve()
    this.#statuses.set(key, status)
    this.#emit([{ type: 'status', resource, status }])
    return Promise.resolve()
  }

  /**
   * Derived resources are a file of their own that no folder holds (`~derived/<owner key>`: sorted after every
   * real path, so a resource written by hand wins a name both claim). They go through the same decoding and
   * merge as the folder's files, and re-applying the same objects changes nothing.
   */
  applyDerived(owner: AnyResource, objects: readonly Record<string, unknown>[]): Promise<void> {
    const file = derivedFile(owner.key)
    const documents = objects.map((value, index) => ({ index, line: 1, value }))
    if (JSON.stringify(this.#derived.get(file)) === JSON.stringify(documents)) return Promise.resolve()
    this.#derived.set(file, documents)
    this.#apply({
      changes: [{ file, status: 'loaded', documents, problems: [] }],
      folderProblems: this.#folderProblems,
    })
    return Promise.resolve()
  }

  releaseDerived(ownerKey: string): Promise<void> {
    const file = derivedFile(ownerKey)
    if (!this.#derived.delete(file)) return Promise.resolve()
    this.#apply({ changes: [{ file, status: 'removed' }], folderProblems: this.#folderProblems })
    return Promise.resolve()
  }

  dialectStatus(key: string): Record<string, unknown> | undefined {
    const resource = this.#resources.get(key)
    const status = this.#statuses.get(key)
    return resource === undefined || status === undefined ? undefined : encodeStatus(resource, status)
  }

  #apply(batch: SourceBatch): void {
    for (const change of batch.changes) this.#applyFile(change)
    this.#folderProblems = batch.folderProblems
    const events = this.#merge()
    this.#emit(events)
  }

  #applyFile(change: FileState): void {
    const previous = this.#files.get(change.file)
    if (change.status === 'removed') {
      this.#files.delete(change.file)
      return
    }
    if (change.status === 'unreadable') {
      const kept = previous?.docs.filter((d) => d.resources.length > 0) ?? []
      const note: Problem[] =
        kept.length === 0
          ? []
          : [
              {
                severity: 'warning',
                file: change.file,
                message: `keeping the ${String(kept.flatMap((d) => d.resources).length)} resource(s) last loaded from this file until it can be read again`,
              },
            ]
      this.#files.set(change.file, { docs: kept, problems: [...change.problems, ...note] })
      return
    }
    const lastGood = previous?.docs.filter((d) => d.resources.length > 0) ?? []
    const docs = change.documents.map((doc): DocEntry => {
      const decoded = decodeDocument(
        { value: doc.value, file: change.file, index: doc.index, line: doc.line },
        this.#defaultNamespace,
      )
      if (decoded.resources.length > 0 || decoded.identities.length === 0) return decoded
      // Rejected: keep the last valid version of the same resource from this file, as the apiserver would.
      const kept = lastGood.find((d) =>
        d.identities.some((id) => decoded.identities.some((n) => sameIdentity(id, n))),
      )
      if (kept === undefined) return decoded
      const id = decoded.identities[0]
      return {
        resources: kept.resources,
        identities: kept.identities,
        problems: [
          ...decoded.problems,
          {
            severity: 'warning',
            file: change.file,
            index: doc.index,
            line: doc.line,
            ...(id === undefined ? {} : { kind: id.kind, namespace: id.namespace, name: id.name }),
            message: 'keeping the last valid version until this document is fixed',
          },
        ],
      }
    })
    this.#files.set(change.file, { docs, problems: change.problems })
  }

  /** Rebuilds the merged view and returns how it differs from the previous one. */
  #merge(): StoreEvent[] {
    const next = new Map<string, AnyResource>()
    const problems: Problem[] = [...this.#folderProblems]
    const files = [...this.#files.keys()].sort()
    for (const file of files) {
      const entry = this.#files.get(file)
      if (entry === undefined) continue
      problems.push(...entry.problems)
      for (const doc of entry.docs) {
        problems.push(...doc.problems)
        for (const r of doc.resources) {
          const first = next.get(r.key)
          if (first === undefined) {
            next.set(r.key, r)
            continue
          }
          problems.push({
            severity: 'error',
            ...(r.origin.file === undefined ? {} : { file: r.origin.file }),
            ...(r.origin.index === undefined ? {} : { index: r.origin.index }),
            kind: r.origin.kind,
            namespace: r.ref.namespace,
            name: r.ref.name,
            message: `duplicate: ${describeOrigin(first)} already defines ${r.kind.toLowerCase()} ${r.ref.namespace}/${r.ref.name}; this one is ignored (names are shared by both dialects)`,
          })
        }
      }
    }
    this.#problems = problems

    const events: StoreEvent[] = []
    for (const [key, r] of next) {
      const before = this.#resources.get(key)
      if (before === undefined) events.push({ type: 'added', resource: r })
      else if (before !== r && !sameResource(before, r))
        events.push({ type: 'modified', resource: r, previous: before })
      else next.set(key, before) // keep identity: consumers may compare by reference
    }
    for (const [key, r] of this.#resources) {
      if (!next.has(key)) {
        events.push({ type: 'deleted', resource: r })
        this.#statuses.delete(key)
      }
    }
    this.#resources = next
    return events
  }

  #emit(events: readonly StoreEvent[]): void {
    if (events.length === 0) return
    for (const listener of this.#listeners) listener(events)
  }
}

function describeOrigin(r: AnyResource): string {
  const where =
    r.origin.file === undefined ? '' : ` in ${r.origin.file} (document ${String((r.origin.index ?? 0) + 1)})`
  return `${r.origin.kind}${where}`
}

/**
 * Whether a new version of a resource changes anything its consumers use: spec, labels, annotations,
 * generation, identity and origin. Not resourceVersion, which every status write bumps: a status write must
 * not look like a change, or it would flush prepared agents and their provider clients.
 */
export function sameResource(a: AnyResource, b: AnyResource): boolean {
  if (a.meta.generation !== b.meta.generation || a.meta.uid !== b.meta.uid) return false
  return (
    JSON.stringify([a.spec, a.meta.labels, a.meta.annotations, a.origin]) ===
    JSON.stringify([b.spec, b.meta.labels, b.meta.annotations, b.origin])
  )
}

function derivedFile(ownerKey: string): string {
  return `~derived/${ownerKey}`
}
