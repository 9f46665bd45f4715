/**
 * Keeps every resource's Available condition current. Any change to a resource re-reconciles it and the
 * resources that reference it; a changed condition re-reconciles its dependents in turn, so a Secret that
 * appears makes its Model, then the Model's agents, then their teams Available without a restart.
 */
import type { AnyResource, Condition, Status } from '../api/index.ts'
import type { Catalog } from '../store/index.ts'
import type { Capabilities } from './availability.ts'
import { CAPABILITIES, availabilityOf } from './availability.ts'
import { WorkQueue } from './queue.ts'

export interface AvailabilityControllerOptions {
  readonly capabilities?: Capabilities
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
}

export class AvailabilityController {
  readonly #catalog: Catalog
  readonly #caps: Capabilities
  readonly #now: () => Date
  readonly #queue: WorkQueue
  #unsubscribe: (() => void) | undefined

  constructor(catalog: Catalog, options: AvailabilityControllerOptions = {}) {
    this.#catalog = catalog
    this.#caps = options.capabilities ?? CAPABILITIES
    this.#now = options.now ?? (() => new Date())
    this.#queue = new WorkQueue((key) => this.#reconcile(key), options.onError)
  }

  /** Reconciles everything once and then follows changes. Resolves when the first pass has converged. */
  async start(): Promise<void> {
    const store = this.#catalog.store
    this.#unsubscribe = store.subscribe((events) => {
      for (const e of events) {
        if (e.type === 'status') {
          // Another condition (a model probe's) may change this resource's availability, and its
          // dependents care when availability itself moved. A reconcile that changes nothing writes nothing.
          this.#queue.add(e.resource.key)
          this.#enqueueDependents(e.resource.key)
          continue
        }
        if (e.type !== 'deleted') this.#queue.add(e.resource.key)
        this.#enqueueDependents(e.resource.key)
      }
    })
    for (const r of store.list()) this.#queue.add(r.key)
    await this.#queue.idle()
  }

  /** Resolves when no reconcile is queued or running. */
  idle(): Promise<void> {
    return this.#queue.idle()
  }

  close(): void {
    this.#unsubscribe?.()
    this.#queue.close()
  }

  #enqueueDependents(key: string): void {
    for (const d of this.#catalog.dependentsOf(key)) this.#queue.add(d)
  }

  async #reconcile(key: string): Promise<void> {
    const store = this.#catalog.store
    const resource = store.get(key)
    if (resource === undefined) return
    const verdict = availabilityOf(resource, this.#catalog, this.#caps)
    if (verdict === undefined) return
    const current = store.status(key)
    const before = current?.conditions.find((c) => c.type === 'Available')
    if (
      before?.status === verdict.status &&
      before.reason === verdict.reason &&
      before.message === verdict.message
    ) {
      return
    }
    const condition: Condition = {
      type: 'Available',
      ...verdict,
      // The transition time moves only when the status flips, as Kubernetes conditions do.
      lastTransitionTime:
        before?.status === verdict.status ? before.lastTransitionTime : this.#now().toISOString(),
      ...observed(resource),
    }
    const next: Status = {
      ...current,
      conditions: [...(current?.conditions.filter((c) => c.type !== 'Available') ?? []), condition],
    }
    await store.writeStatus(key, next)
  }
}

function observed(r: AnyResource): { observedGeneration?: number } {
  return r.meta.generation === undefined ? {} : { observedGeneration: r.meta.generation }
}
