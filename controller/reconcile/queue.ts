/**
 * The work queue of the reconcile kit, as client-go's rate-limited delaying queue:
 * - a key added several times before it is processed is processed once (de-duplication);
 * - a key is never processed by two workers at once: added while it runs, it runs again afterwards;
 * - `addAfter` keeps at most one timer per key, the earliest, so a key that requeues itself on every pass does
 *   not accumulate timers;
 * - `addRateLimited` retries with per-key exponential backoff (5 ms doubling up to `maxDelayMs`), and
 *   `forget` resets it once a pass succeeds.
 */
export interface WorkQueueOptions {
  /** Keys processed at the same time (default 1). */
  readonly concurrency?: number
  /** First retry delay (default 5 ms) and the most a retry waits (default 60 s). */
  readonly baseDelayMs?: number
  readonly maxDelayMs?: number
  /** Told the queue's depth whenever it changes (a gauge). */
  readonly onDepth?: (depth: number) => void
}

export class WorkQueue {
  /** Keys waiting to be processed, in order. */
  readonly #queue = new Set<string>()
  /** Keys being processed now; a key added meanwhile is "dirty" and goes back in when it finishes. */
  readonly #processing = new Set<string>()
  readonly #dirty = new Set<string>()
  readonly #waiting = new Map<string, { at: number; timer: ReturnType<typeof setTimeout> }>()
  readonly #failures = new Map<string, number>()
  readonly #work: (key: string) => Promise<void>
  readonly #concurrency: number
  readonly #baseDelayMs: number
  readonly #maxDelayMs: number
  readonly #onDepth: ((depth: number) => void) | undefined
  readonly #idleWaiters: (() => void)[] = []
  #workers = 0
  #closed = false

  constructor(work: (key: string) => Promise<void>, options: WorkQueueOptions = {}) {
    this.#work = work
    this.#concurrency = Math.max(1, options.concurrency ?? 1)
    this.#baseDelayMs = options.baseDelayMs ?? 5
    this.#maxDelayMs = options.maxDelayMs ?? 60_000
    this.#onDepth = options.onDepth
  }

  get depth(): number {
    return this.#queue.size
  }

  add(key: string): void {
    if (this.#closed) return
    if (this.#processing.has(key)) {
      this.#dirty.add(key)
      return
    }
    if (this.#queue.has(key)) return
    this.#queue.add(key)
    this.#onDepth?.(this.#queue.size)
    this.#spawn()
  }

  /** Adds the key after `ms`; a key already waiting keeps whichever time comes first. */
  addAfter(key: string, ms: number): void {
    if (this.#closed) return
    if (ms <= 0) {
      this.add(key)
      return
    }
    const at = Date.now() + ms
    const waiting = this.#waiting.get(key)
    if (waiting !== undefined) {
      if (waiting.at <= at) return
      clearTimeout(waiting.timer)
    }
    // Delays alone must not keep a process alive.
    const timer = setTimeout(
      () => {
        this.#waiting.delete(key)
        this.add(key)
      },
      Math.min(ms, 2 ** 31 - 1),
    )
    ;(timer as { unref?: () => void }).unref?.()
    this.#waiting.set(key, { at, timer })
  }

  /** Adds the key after its backoff: 5 ms, then twice as long for every failure in a row. */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0
    this.#failures.set(key, failures + 1)
    this.addAfter(key, Math.min(this.#baseDelayMs * 2 ** failures, this.#maxDelayMs))
  }

  /** The key succeeded: its next failure starts the backoff afresh. */
  forget(key: string): void {
    this.#failures.delete(key)
  }

  /** Failures in a row of a key (what its next backoff is computed from). */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0
  }

  /** Resolves when nothing is queued or running (keys waiting on a timer do not count). */
  idle(): Promise<void> {
    if (this.#workers === 0 && this.#queue.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  close(): void {
    this.#closed = true
    this.#queue.clear()
    this.#dirty.clear()
    for (const w of this.#waiting.values()) clearTimeout(w.timer)
    this.#waiting.clear()
    this.#onDepth?.(0)
    this.#settle()
  }

  #spawn(): void {
    while (this.#workers < this.#concurrency && this.#queue.size > 0) {
      this.#workers++
      void this.#worker()
    }
  }

  async #worker(): Promise<void> {
    // Let the current synchronous burst of add() calls land first, so a batch is processed together.
    await Promise.resolve()
    for (;;) {
      if (this.#closed) break
      const key = this.#queue.values().next().value
      if (key === undefined) break
      this.#queue.delete(key)
      this.#onDepth?.(this.#queue.size)
      this.#processing.add(key)
      try {
        await this.#work(key)
      } catch {
        // The work function reports its own errors (the kit requeues them); nothing escapes a worker.
      }
      this.#processing.delete(key)
      if (this.#dirty.delete(key)) this.add(key)
    }
    this.#workers--
    this.#settle()
  }

  #settle(): void {
    if (this.#workers > 0 || (this.#queue.size > 0 && !this.#closed)) return
    for (const resolve of this.#idleWaiters.splice(0)) resolve()
  }
}
