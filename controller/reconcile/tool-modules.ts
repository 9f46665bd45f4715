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
import type { ResourceOf } from '../api/index.ts'
import type { Catalog, StatusWriter } from '../store/index.ts'
import { setCondition } from './conditions.ts'
import type { Verdict } from './availability.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'

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
  readonly metrics?: ReconcileMetrics
}

export class ToolModuleController {
  readonly #controller: Controller

  constructor(catalog: Catalog, writer: StatusWriter, options: ToolModuleOptions) {
    const retryMs = options.retryIntervalMs ?? 60_000
    this.#controller = new Controller(
      'tool-modules',
      catalog,
      async (key, stop) => {
        const tool = catalog.store.get(key)
        if (tool?.kind !== 'Tool') return undefined
        const verdict = await options.checker.check(tool, stop)
        // The Tool changed while its module loaded: that verdict is about the old version, and the change
        // queued it again.
        if (stop.aborted || catalog.store.get(key) !== tool) return undefined
        await setCondition(writer, tool, MODULE_LOADED, verdict, options.now)
        return verdict?.status === 'False' && retryMs > 0 ? { requeueAfterMs: retryMs } : undefined
      },
      // A ConfigMap that holds a module, or a Secret a config value reads, changed under its Tool.
      { kinds: new Set(['Tool']) },
      {
        concurrency: 4,
        ...(options.onError === undefined ? {} : { onError: options.onError }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      },
    )
  }

  start(): void {
    void this.#controller.start()
  }

  /** Resolves when no check is queued or running. */
  idle(): Promise<void> {
    return this.#controller.idle()
  }

  close(): void {
    this.#controller.close()
  }
}
