/**
 * A de-duplicating work queue, as controller-runtime's: a key queued twice before it is processed is processed
 * once; a key that fails is retried with exponential backoff.
 */
export class WorkQueue {
  readonly #pending = new Set<string>()
  readonly #retries = new Map<string, number>()
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  readonly #work: (key: string) => Promise<void>
  readonly #onError: (key: string, err: unknown) => void
  #running: Promise<void> | undefined
  #closed = false

  constructor(
    work: (key: string) => Promise<void>,
    onError: (key: string, err: unknown) => void = () => undefined,
  ) {
    this.#work = work
    this.#onError = onError
  }

  add(key: string): void {
    if (this.#closed) return
    this.#pending.add(key)
    this.#running ??= this.#drain()
  }

  /** Resolves when nothing is queued or running (retries waiting on a timer do not count). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running
  }

  close(): void {
    this.#closed = true
    this.#pending.clear()
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
  }

  async #drain(): Promise<void> {
    // Let the current synchronous burst of add() calls land first, so a batch is processed together.
    await Promise.resolve()
    while (this.#pending.size > 0 && !this.#closed) {
      const key = this.#pending.values().next().value as string
      this.#pending.delete(key)
      try {
        await this.#work(key)
        this.#retries.delete(key)
      } catch (err) {
        this.#onError(key, err)
        const attempt = (this.#retries.get(key) ?? 0) + 1
        this.#retries.set(key, attempt)
        const timer = setTimeout(
          () => {
            this.#timers.delete(timer)
            this.add(key)
          },
          Math.min(5 * 2 ** attempt, 60_000),
        )
        this.#timers.add(timer)
      }
    }
    this.#running = undefined
  }
}
