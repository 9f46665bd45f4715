/**
 * The gateway's bound on runs in flight (--max-in-flight), shared fairly across namespaces.
 *
 * A plain counter lets one namespace's flood take every slot, and then every other namespace is refused
 * until the flood drains: the starvation ARK's users report. Here the last tenth of the slots (the reserve)
 * goes only to namespaces holding less than an equal share of the rest, and the last half of the reserve
 * only to namespaces holding nothing. A namespace alone may fill all but the reserve, and however many
 * flood, a namespace that holds nothing finds room; while several hold slots, one that is past its share is
 * refused first and the others keep theirs. Refusal rather than a waiting line: a refused caller gets a
 * fast 503 with Retry-After and may try another replica, and nothing piles up in memory.
 */

/** The share of the slots kept for namespaces under their fair share. */
const RESERVE = 0.1

export class InFlightBound {
  readonly max: number
  /** Slots past which only namespaces under their share are admitted. */
  readonly #open: number
  /** Slots at the end kept for namespaces that hold none. */
  readonly #newcomers: number
  #total = 0
  /** Slots held, by namespace; a namespace holding none has no entry (its size counts who is active). */
  readonly #held = new Map<string, number>()

  constructor(max: number) {
    this.max = max
    // Under ten slots none is reserved: a bound that small is a test's or a tiny replica's, used whole.
    this.#open = max - Math.floor(max * RESERVE)
    this.#newcomers = Math.ceil((max - this.#open) / 2)
  }

  /** Runs in flight now. */
  get total(): number {
    return this.#total
  }

  /** Whether a run of `namespace` would be refused now (for a protocol that answers before it takes). */
  full(namespace: string): boolean {
    return this.#refuses(this.#held.get(namespace) ?? 0)
  }

  #refuses(held: number): boolean {
    if (this.#total >= this.max) return true
    // Past the open part: a namespace that holds nothing gets in while any slot is free; one that holds some
    // only while it is under its share and the newcomers' slots are left free.
    return (
      this.#total >= this.#open &&
      held > 0 &&
      (held >= this.#open / this.#held.size || this.#total >= this.max - this.#newcomers)
    )
  }

  /** Runs in flight now for one namespace. */
  heldBy(namespace: string): number {
    return this.#held.get(namespace) ?? 0
  }

  /**
   * Takes a slot for a run of `namespace`, synchronously (concurrent requests cannot all pass the check): the
   * function that gives it back (once, however often it is called), or undefined when the run is refused.
   */
  take(namespace: string): (() => void) | undefined {
    const held = this.#held.get(namespace) ?? 0
    if (this.#refuses(held)) return undefined
    this.#total++
    this.#held.set(namespace, held + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#total--
      const now = (this.#held.get(namespace) ?? 1) - 1
      if (now === 0) this.#held.delete(namespace)
      else this.#held.set(namespace, now)
    }
  }
}
