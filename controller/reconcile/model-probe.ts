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
import type { Catalog } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { recordCondition } from './conditions.ts'

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
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
}

interface Schedule {
  timer: ReturnType<typeof setTimeout> | undefined
  running: Promise<void> | undefined
  /** A change arrived while a probe ran: its verdict is stale; probe again when it ends. */
  again: boolean
  /** Transient failures (unreachable, upstream 5xx) in a row: one blip does not take a model down. */
  transient: number
}

/** Verdicts that may be a blip: recorded only when the next probe, soon after, agrees. */
const TRANSIENT = new Set(['Unreachable', 'UpstreamError'])
/** How soon a model that just failed is probed again, at most. */
const RETRY_MS = 10_000

export class ModelProbeController {
  readonly #catalog: Catalog
  readonly #options: ModelProbeOptions
  readonly #schedules = new Map<string, Schedule>()
  readonly #stop = new AbortController()
  #unsubscribe: (() => void) | undefined

  constructor(catalog: Catalog, options: ModelProbeOptions) {
    this.#catalog = catalog
    this.#options = options
  }

  /** Probes everything once (without waiting) and then at each resource's interval, following changes. */
  start(): void {
    const store = this.#catalog.store
    this.#unsubscribe = store.subscribe((events) => {
      for (const e of events) {
        if (e.type === 'status') continue
        if (e.type === 'deleted') this.#forget(e.resource.key)
        else this.#probeSoon(e.resource)
        // A Secret or ConfigMap that changed may hold the key a Model uses: probe with the new one now.
        for (const d of this.#catalog.dependentsOf(e.resource.key)) {
          const r = store.get(d)
          if (r !== undefined) this.#probeSoon(r)
        }
      }
    })
    for (const r of store.list()) this.#probeSoon(r)
  }

  /** Resolves when no probe is running. */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.#schedules.values()].flatMap((s) =>
        s.running === undefined ? [] : [s.running],
      )
      if (running.length === 0) return
      await Promise.all(running)
    }
  }

  close(): void {
    this.#unsubscribe?.()
    this.#stop.abort()
    for (const s of this.#schedules.values()) clearTimeout(s.timer)
    this.#schedules.clear()
  }

  #probeSoon(r: AnyResource): void {
    if (this.#stop.signal.aborted) return
    if (!isTarget(r)) {
      // It stopped naming a model of its own: its old verdict must not keep it unavailable.
      if (this.#schedules.has(r.key)) this.#forget(r.key)
      this.#record(r, undefined)
      return
    }
    let s = this.#schedules.get(r.key)
    if (s === undefined) {
      s = { timer: undefined, running: undefined, again: false, transient: 0 }
      this.#schedules.set(r.key, s)
    }
    clearTimeout(s.timer)
    s.timer = undefined
    if (s.running !== undefined) {
      s.again = true
      return
    }
    this.#run(r.key, s)
  }

  #run(key: string, s: Schedule): void {
    s.again = false
    s.running = this.#probe(key, s)
      .catch((err: unknown) => this.#options.onError?.(key, err))
      .finally(() => {
        s.running = undefined
        if (this.#schedules.get(key) !== s) return
        const r = this.#catalog.store.get(key)
        if (r === undefined || !isTarget(r)) {
          this.#forget(key)
          return
        }
        if (s.again) {
          this.#run(key, s)
          return
        }
        const failing = this.#catalog.store
          .status(key)
          ?.conditions.some((c) => c.type === REACHABLE && c.status === 'False')
        const interval = this.#intervalMs(r)
        // A model that is failing, or had a blip, is looked at again soon, so it recovers (or is marked
        // down) without waiting a whole pollInterval.
        const delay = failing === true || s.transient > 0 ? Math.min(interval, RETRY_MS) : interval
        s.timer = setTimeout(() => {
          s.timer = undefined
          this.#run(key, s)
        }, delay)
      })
  }

  #forget(key: string): void {
    const s = this.#schedules.get(key)
    if (s !== undefined) clearTimeout(s.timer)
    this.#schedules.delete(key)
  }

  #intervalMs(r: ProbeTarget): number {
    const seconds =
      r.kind === 'Model' ? r.spec.pollIntervalSeconds : (this.#options.intervalSeconds ?? DEFAULT_INTERVAL)
    // At least a second: a zero pollInterval would probe in a busy loop. Below 2^31 ms for setTimeout.
    return Math.min(Math.max(seconds, 1) * 1000, 2 ** 31 - 1)
  }

  async #probe(key: string, s: Schedule): Promise<void> {
    const store = this.#catalog.store
    const resource = store.get(key)
    if (resource === undefined || !isTarget(resource)) return
    const timeoutMs = this.#options.timeoutMs ?? 10_000
    const timeout = new AbortController()
    const timer = setTimeout(() => {
      timeout.abort(new DOMException(`the probe took longer than ${String(timeoutMs)} ms`, 'TimeoutError'))
    }, timeoutMs)
    let verdict: Verdict | undefined
    try {
      verdict = await this.#options.prober.probe(
        resource,
        AbortSignal.any([this.#stop.signal, timeout.signal]),
      )
    } finally {
      clearTimeout(timer)
    }
    if (this.#stop.signal.aborted) return
    if (verdict === undefined && timeout.signal.aborted) {
      verdict = {
        status: 'False',
        reason: 'Unreachable',
        message: `the model did not answer the probe within ${String(timeoutMs)} ms`,
      }
    }
    // The resource (or a Secret it reads) changed while it was probed: that verdict is about the old
    // version, and a new probe runs.
    if (store.get(key) !== resource || s.again) return
    if (verdict?.status === 'False' && TRANSIENT.has(verdict.reason)) {
      s.transient++
      if (s.transient < 2) return
    } else s.transient = 0
    this.#record(resource, verdict)
  }

  #record(resource: AnyResource, verdict: Verdict | undefined): void {
    recordCondition(
      this.#catalog,
      resource,
      REACHABLE,
      verdict,
      this.#options.now ?? (() => new Date()),
      this.#options.onError,
    )
  }
}

const DEFAULT_INTERVAL = 60

function isTarget(r: AnyResource): r is ProbeTarget {
  return r.kind === 'Model' || (r.kind === 'Agent' && r.spec.model !== undefined && 'id' in r.spec.model)
}
