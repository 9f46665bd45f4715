/**
 * Model health: every Model (and every agent that names its own model id, ArkAgent's `model: gpt-4o`) is
 * probed at its poll interval with a cheap call the data plane makes (list or retrieve the model, never a
 * completion), and the verdict is kept as the resource's ModelReachable condition. Availability folds that
 * condition in, so a model whose key was revoked turns its Model unavailable, and its agents follow.
 *
 * The probe itself belongs to whoever holds the provider clients (the gateway's runtime); this controller
 * only schedules, de-duplicates and records, so it never imports the data plane.
 */
import type { AnyResource, ResourceOf } from '../api/index.ts'
import type { Catalog, StatusWriter } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { setCondition } from './conditions.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'

export const REACHABLE = 'ModelReachable'

export type ProbeTarget = ResourceOf<'Model'> | ResourceOf<'Agent'>

export interface ModelProber {
  /** The verdict for the resource's model; undefined when there is nothing to say (nothing to probe). */
  probe(resource: ProbeTarget, signal: AbortSignal): Promise<Verdict | undefined>
}

export interface ModelProbeOptions {
  readonly prober: ModelProber
  /** Interval for agents' own model ids, which have no pollInterval of their own (default 60 s). */
  readonly intervalSeconds?: number
  /** A probe that takes longer than this counts as unreachable (default 10 s). */
  readonly timeoutMs?: number
  /** Probes running at the same time (default 16). */
  readonly concurrency?: number
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
  readonly metrics?: ReconcileMetrics
}

/** Verdicts that may be a blip: recorded only when the next probe, soon after, agrees. */
const TRANSIENT = new Set(['Unreachable', 'UpstreamError'])
/** How soon a model that just failed is probed again, at most. */
const RETRY_MS = 10_000
const DEFAULT_INTERVAL = 60

export class ModelProbeController {
  readonly #catalog: Catalog
  readonly #writer: StatusWriter
  readonly #options: ModelProbeOptions
  readonly #controller: Controller
  /** Transient failures (unreachable, upstream 5xx) in a row, by key: one blip does not take a model down. */
  readonly #transient = new Map<string, number>()

  constructor(catalog: Catalog, writer: StatusWriter, options: ModelProbeOptions) {
    this.#catalog = catalog
    this.#writer = writer
    this.#options = options
    this.#controller = new Controller(
      'model-probe',
      catalog,
      (key, signal) => this.#reconcile(key, signal),
      // A Secret or ConfigMap that changed may hold the key a Model uses: its dependents are probed at once.
      { kinds: new Set(['Model', 'Agent']) },
      {
        concurrency: options.concurrency ?? 16,
        ...(options.onError === undefined ? {} : { onError: options.onError }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      },
    )
  }

  /** Probes everything once (without waiting) and then at each resource's interval, following changes. */
  start(): void {
    void this.#controller.start()
  }

  /** Resolves when no probe is queued or running. */
  idle(): Promise<void> {
    return this.#controller.idle()
  }

  close(): void {
    this.#controller.close()
  }

  async #reconcile(key: string, stop: AbortSignal): Promise<{ requeueAfterMs?: number } | undefined> {
    const store = this.#catalog.store
    const resource = store.get(key)
    if (resource === undefined) {
      this.#transient.delete(key)
      return undefined
    }
    if (!isTarget(resource)) {
      // It stopped naming a model of its own: its old verdict must not keep it unavailable.
      this.#transient.delete(key)
      await this.#record(resource, undefined)
      return undefined
    }
    const timeoutMs = this.#options.timeoutMs ?? 10_000
    const timeout = new AbortController()
    const timer = setTimeout(() => {
      timeout.abort(new DOMException(`the probe took longer than ${String(timeoutMs)} ms`, 'TimeoutError'))
    }, timeoutMs)
    let verdict: Verdict | undefined
    try {
      verdict = await this.#options.prober.probe(resource, AbortSignal.any([stop, timeout.signal]))
    } finally {
      clearTimeout(timer)
    }
    if (stop.aborted) return undefined
    if (verdict === undefined && timeout.signal.aborted) {
      verdict = {
        status: 'False',
        reason: 'Unreachable',
        message: `the model did not answer the probe within ${String(timeoutMs)} ms`,
      }
    }
    // The resource (or a Secret it reads) changed while it was probed: that verdict is about the old version.
    // The change queued this key again, so a new probe runs as soon as this one returns.
    if (store.get(key) !== resource) return undefined
    let transient = this.#transient.get(key) ?? 0
    if (verdict?.status === 'False' && TRANSIENT.has(verdict.reason)) transient++
    else transient = 0
    this.#transient.set(key, transient)
    if (transient !== 1) await this.#record(resource, verdict)
    const failing = store.status(key)?.conditions.some((c) => c.type === REACHABLE && c.status === 'False')
    const interval = this.#intervalMs(resource)
    // A model that is failing, or had a blip, is looked at again soon, so it recovers (or is marked down)
    // without waiting a whole pollInterval.
    return { requeueAfterMs: failing === true || transient > 0 ? Math.min(interval, RETRY_MS) : interval }
  }

  #intervalMs(r: ProbeTarget): number {
    const seconds =
      r.kind === 'Model' ? r.spec.pollIntervalSeconds : (this.#options.intervalSeconds ?? DEFAULT_INTERVAL)
    // At least a second: a zero pollInterval would probe in a busy loop. Below 2^31 ms for setTimeout.
    return Math.min(Math.max(seconds, 1) * 1000, 2 ** 31 - 1)
  }

  #record(resource: AnyResource, verdict: Verdict | undefined): Promise<void> {
    return setCondition(this.#writer, resource, REACHABLE, verdict, this.#options.now)
  }
}

function isTarget(r: AnyResource): r is ProbeTarget {
  return r.kind === 'Model' || (r.kind === 'Agent' && r.spec.model !== undefined && 'id' in r.spec.model)
}
