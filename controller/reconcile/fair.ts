/**
 * A bounded number of slots shared fairly across tenants (namespaces): each tenant waits in its own FIFO
 * queue and freed slots go round-robin over the tenants that are waiting, so one namespace's flood of
 * Queries delays another namespace's by at most one turn per slot, not by the whole flood.
 */
export class FairSlots {
  readonly #limit: number
  #inUse = 0
  readonly #waiting = new Map<string, (() => void)[]>()
  /** Tenants with waiters, in turn order. */
  readonly #turns: string[] = []

  constructor(limit: number) {
    this.#limit = Math.max(1, limit)
  }

  get inUse(): number {
    return this.#inUse
  }

  get waiting(): number {
    let n = 0
    for (const q of this.#waiting.values()) n += q.length
    return n
  }

  /**
   * Resolves with a release function once a slot is free for this tenant; rejects if `signal` aborts first.
   * Release exactly once.
   */
  acquire(tenant: string, signal?: AbortSignal): Promise<() => void> {
    if (this.#inUse < this.#limit && this.#turns.length === 0) {
      this.#inUse++
      return Promise.resolve(this.#releaser())
    }
    return new Promise((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener('abort', onAbort)
        resolve(this.#releaser())
      }
      const onAbort = () => {
        const q = this.#waiting.get(tenant)
        const i = q?.indexOf(grant) ?? -1
        if (q !== undefined && i >= 0) {
          q.splice(i, 1)
          if (q.length === 0) this.#drop(tenant)
        }
        reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
      }
      if (signal?.aborted === true) {
        onAbort()
        return
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      let q = this.#waiting.get(tenant)
      if (q === undefined) {
        this.#waiting.set(tenant, (q = []))
        this.#turns.push(tenant)
      }
      q.push(grant)
    })
  }

  #releaser(): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      this.#inUse--
      this.#next()
    }
  }

  #next(): void {
    while (this.#inUse < this.#limit && this.#turns.length > 0) {
      const tenant = this.#turns.shift() as string
      const q = this.#waiting.get(tenant)
      const grant = q?.shift()
      if (q === undefined || grant === undefined) {
        this.#waiting.delete(tenant)
        continue
      }
      // The tenant goes to the back of the line if it still has work waiting.
      if (q.length > 0) this.#turns.push(tenant)
      else this.#waiting.delete(tenant)
      this.#inUse++
      grant()
    }
  }

  #drop(tenant: string): void {
    this.#waiting.delete(tenant)
    const i = this.#turns.indexOf(tenant)
    if (i >= 0) this.#turns.splice(i, 1)
  }
}
