/**
 * The reconcile kit, in the manner of controller-runtime. A reconciler is `(key, signal) => { requeueAfterMs? }`:
 * level-based and idempotent, it reads the current state and converges, whatever event caused the call. The
 * kit owns everything around it, once for every reconciler:
 * - which changes trigger it (`Watches`: the kinds it is For, status changes, and the resources that depend
 *   on a changed one, as the builder's For/Owns/Watches declare);
 * - a de-duplicating work queue with rate-limited retry;
 * - controller-runtime's reconcileHandler switch: an error requeues with backoff; requeueAfter forgets the
 *   backoff and adds the key after that long; success forgets;
 * - metrics: reconciles by result, their duration, and the queue's depth.
 */
import type { Registry } from 'prom-client'
import { Counter, Gauge, Histogram } from 'prom-client'
import type { AnyResource, Kind } from '../api/index.ts'
import type { Catalog, StoreEvent } from '../store/index.ts'
import { WorkQueue } from './queue.ts'

export interface ReconcileResult {
  /** Reconcile this key again after this long (a poll interval, a TTL, a deadline). */
  readonly requeueAfterMs?: number
}

export type Reconciler = (key: string, signal: AbortSignal) => Promise<ReconcileResult | undefined>

/** Which changes reconcile which keys. */
export interface Watches {
  /** Kinds this reconciler is for: a change to one of them reconciles it. */
  readonly kinds: ReadonlySet<Kind> | 'all'
  /** A change to a resource also reconciles the resources of `kinds` that reference it (default true). */
  readonly dependents?: boolean
  /** Status changes trigger like spec changes (default false: a reconciler's own writes would loop). */
  readonly status?: boolean
  /** Extra keys an event should reconcile. */
  readonly map?: (event: StoreEvent) => Iterable<string>
}

export interface ControllerOptions {
  /** Keys reconciled at the same time (default 1). */
  readonly concurrency?: number
  readonly metrics?: ReconcileMetrics
  readonly onError?: (key: string, err: unknown) => void
  /** Backoff of failed reconciles (defaults of WorkQueue: 5 ms doubling to 60 s). */
  readonly baseDelayMs?: number
  readonly maxDelayMs?: number
}

export class Controller {
  readonly name: string
  readonly #catalog: Catalog
  readonly #reconcile: Reconciler
  readonly #watches: Watches
  readonly #options: ControllerOptions
  readonly #queue: WorkQueue
  readonly #stop = new AbortController()
  #unsubscribe: (() => void) | undefined

  constructor(
    name: string,
    catalog: Catalog,
    reconcile: Reconciler,
    watches: Watches,
    options: ControllerOptions = {},
  ) {
    this.name = name
    this.#catalog = catalog
    this.#reconcile = reconcile
    this.#watches = watches
    this.#options = options
    const depth = options.metrics?.depth.labels(name)
    this.#queue = new WorkQueue((key) => this.#handle(key), {
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.baseDelayMs === undefined ? {} : { baseDelayMs: options.baseDelayMs }),
      ...(options.maxDelayMs === undefined ? {} : { maxDelayMs: options.maxDelayMs }),
      ...(depth === undefined ? {} : { onDepth: (n: number) => depth.set(n) }),
    })
  }

  /** Reconciles everything it is for, then follows changes. Resolves when the first pass has converged. */
  async start(): Promise<void> {
    const store = this.#catalog.store
    this.#unsubscribe = store.subscribe((events) => {
      for (const e of events) this.#enqueueFor(e)
    })
    for (const r of store.list()) if (this.#isFor(r)) this.#queue.add(r.key)
    await this.#queue.idle()
  }

  /** Reconcile this key soon (a timer of the caller's, an outside signal). */
  enqueue(key: string, afterMs = 0): void {
    this.#queue.addAfter(key, afterMs)
  }

  /** Resolves when no reconcile is queued or running (keys waiting on a timer do not count). */
  idle(): Promise<void> {
    return this.#queue.idle()
  }

  /** The signal handed to reconciles: aborted by close(). */
  get signal(): AbortSignal {
    return this.#stop.signal
  }

  close(): void {
    this.#unsubscribe?.()
    this.#stop.abort()
    this.#queue.close()
  }

  #isFor(r: AnyResource): boolean {
    return this.#watches.kinds === 'all' || this.#watches.kinds.has(r.kind)
  }

  #enqueueFor(e: StoreEvent): void {
    const w = this.#watches
    if (e.type !== 'status' || w.status === true) {
      // A deleted resource is reconciled too: its reconciler finds it gone and cleans up after it.
      if (this.#isFor(e.resource)) this.#queue.add(e.resource.key)
      if (w.dependents !== false) {
        for (const d of this.#catalog.dependentsOf(e.resource.key)) {
          const r = this.#catalog.store.get(d)
          if (r !== undefined && this.#isFor(r)) this.#queue.add(d)
        }
      }
    }
    if (w.map !== undefined) for (const key of w.map(e)) this.#queue.add(key)
  }

  async #handle(key: string): Promise<void> {
    const m = this.#options.metrics
    const end = m?.duration.startTimer({ controller: this.name })
    try {
      const result = await this.#reconcile(key, this.#stop.signal)
      this.#queue.forget(key)
      if (result?.requeueAfterMs !== undefined) {
        this.#queue.addAfter(key, result.requeueAfterMs)
        m?.total.inc({ controller: this.name, result: 'requeue_after' })
      } else m?.total.inc({ controller: this.name, result: 'success' })
    } catch (err) {
      if (this.#stop.signal.aborted) return
      m?.total.inc({ controller: this.name, result: 'error' })
      m?.errors.inc({ controller: this.name })
      this.#options.onError?.(key, err)
      this.#queue.addRateLimited(key)
    } finally {
      end?.()
    }
  }
}

/** controller-runtime's reconcile metrics, under ark's prefix. */
export class ReconcileMetrics {
  readonly total: Counter<'controller' | 'result'>
  readonly errors: Counter<'controller'>
  readonly duration: Histogram<'controller'>
  readonly depth: Gauge<'name'>

  constructor(registry: Registry) {
    const registers = [registry]
    this.total = new Counter({
      name: 'ark_controller_reconcile_total',
      help: 'Reconciles by controller and result (success, requeue_after, error).',
      labelNames: ['controller', 'result'],
      registers,
    })
    this.errors = new Counter({
      name: 'ark_controller_reconcile_errors_total',
      help: 'Reconciles that failed and were requeued with backoff.',
      labelNames: ['controller'],
      registers,
    })
    this.duration = new Histogram({
      name: 'ark_controller_reconcile_duration_seconds',
      help: 'Time one reconcile took.',
      labelNames: ['controller'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    })
    this.depth = new Gauge({
      name: 'ark_workqueue_depth',
      help: 'Keys waiting in a controller work queue.',
      labelNames: ['name'],
      registers,
    })
  }
}
