/**
 * Keeps every resource's Available condition current. Any change to a resource re-reconciles it and the
 * resources that reference it; a changed condition re-reconciles its dependents in turn, so a Secret that
 * appears makes its Model, then the Model's agents, then their teams Available without a restart.
 */
import type { Catalog, StatusWriter } from '../store/index.ts'
import type { Capabilities } from './availability.ts'
import { CAPABILITIES, availabilityOf } from './availability.ts'
import { setCondition } from './conditions.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'

export interface AvailabilityControllerOptions {
  readonly capabilities?: Capabilities
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
  readonly metrics?: ReconcileMetrics
}

export class AvailabilityController {
  readonly #controller: Controller

  constructor(catalog: Catalog, writer: StatusWriter, options: AvailabilityControllerOptions = {}) {
    const caps = options.capabilities ?? CAPABILITIES
    const now = options.now ?? (() => new Date())
    this.#controller = new Controller(
      'availability',
      catalog,
      async (key) => {
        const resource = catalog.store.get(key)
        if (resource === undefined) return undefined
        const verdict = availabilityOf(resource, catalog, caps)
        if (verdict !== undefined) await setCondition(writer, resource, 'Available', verdict, now)
        return undefined
      },
      // Another condition (a model probe's) may change a resource's availability, and its dependents care
      // when availability itself moved: status changes trigger too. A reconcile that changes nothing writes
      // nothing, so this settles.
      { kinds: 'all', status: true },
      {
        ...(options.onError === undefined ? {} : { onError: options.onError }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      },
    )
  }

  /** Reconciles everything once and then follows changes. Resolves when the first pass has converged. */
  start(): Promise<void> {
    return this.#controller.start()
  }

  /** Resolves when no reconcile is queued or running. */
  idle(): Promise<void> {
    return this.#controller.idle()
  }

  close(): void {
    this.#controller.close()
  }
}
