/**
 * Tool modules: every Tool that runs in the Wasm sandbox (`wasm`, and `http` through the built-in webhook
 * plugin) has its module loaded, checked and compiled as soon as the Tool appears or changes, and the verdict
 * is kept as its ModuleLoaded condition. Availability folds that condition in, so a malformed module, a bad
 * digest or a missing export makes the Tool unavailable with the reason when it is declared, not when a model
 * first calls it.
 *
 * Loading belongs to whoever holds the sandbox (the gateway's runtime); this controller only schedules and
 * records, so it never imports the data plane.
 */
import type { AnyResource, ResourceOf } from '../api/index.ts'
import type { Catalog } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { recordCondition } from './conditions.ts'

export const MODULE_LOADED = 'ModuleLoaded'

export interface ToolModuleChecker {
  /** The verdict for the Tool's module; undefined when the Tool has none. */
  check(tool: ResourceOf<'Tool'>, signal: AbortSignal): Promise<Verdict | undefined>
}

export interface ToolModuleOptions {
  readonly checker: ToolModuleChecker
  /**
   * How often Tools whose module failed to load are tried again (default 60 s): a download that failed
   * for a moment, or a file that appeared, is picked up without touching the Tool. 0: never.
   */
  readonly retryIntervalMs?: number
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
}

export class ToolModuleController {
  readonly #catalog: Catalog
  readonly #options: ToolModuleOptions
  /** Checks running, by Tool key; a change during a check runs it again after. */
  readonly #running = new Map<string, { promise: Promise<void>; again: boolean }>()
  readonly #stop = new AbortController()
  #unsubscribe: (() => void) | undefined
  #retry: ReturnType<typeof setInterval> | undefined

  constructor(catalog: Catalog, options: ToolModuleOptions) {
    this.#catalog = catalog
    this.#options = options
  }

  start(): void {
    const store = this.#catalog.store
    this.#unsubscribe = store.subscribe((events) => {
      for (const e of events) {
        if (e.type === 'status' || e.type === 'deleted') continue
        this.#checkSoon(e.resource)
        // A ConfigMap that holds a module, or a Secret a config value reads, changed under its Tool.
        for (const d of this.#catalog.dependentsOf(e.resource.key)) {
          const r = store.get(d)
          if (r !== undefined) this.#checkSoon(r)
        }
      }
    })
    for (const r of store.list()) this.#checkSoon(r)
    const every = this.#options.retryIntervalMs ?? 60_000
    if (every > 0) {
      this.#retry = setInterval(() => {
        for (const r of store.list()) {
          const failed = store
            .status(r.key)
            ?.conditions.some((c) => c.type === MODULE_LOADED && c.status === 'False')
          if (failed === true) this.#checkSoon(r)
        }
      }, every)
      // Retries alone must not keep a process alive.
      ;(this.#retry as { unref?: () => void }).unref?.()
    }
  }

  /** Resolves when no check is running. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running.values()].map((r) => r.promise))
  }

  close(): void {
    this.#unsubscribe?.()
    clearInterval(this.#retry)
    this.#stop.abort()
  }

  #checkSoon(r: AnyResource): void {
    if (r.kind !== 'Tool' || this.#stop.signal.aborted) return
    const running = this.#running.get(r.key)
    if (running !== undefined) {
      running.again = true
      return
    }
    const entry = { promise: Promise.resolve(), again: false }
    entry.promise = this.#check(r.key)
      .catch((err: unknown) => this.#options.onError?.(r.key, err))
      .finally(() => {
        this.#running.delete(r.key)
        const now = this.#catalog.store.get(r.key)
        if (entry.again && now !== undefined) this.#checkSoon(now)
      })
    this.#running.set(r.key, entry)
  }

  async #check(key: string): Promise<void> {
    const tool = this.#catalog.store.get(key)
    if (tool?.kind !== 'Tool') return
    const verdict = await this.#options.checker.check(tool, this.#stop.signal)
    // The Tool changed while its module loaded: that verdict is about the old version.
    if (this.#stop.signal.aborted || this.#catalog.store.get(key) !== tool) return
    recordCondition(
      this.#catalog,
      tool,
      MODULE_LOADED,
      verdict,
      this.#options.now ?? (() => new Date()),
      this.#options.onError,
    )
  }
}
