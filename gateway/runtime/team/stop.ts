import type { Outcome } from '../events.ts'

/**
 * How a strategy ends a team run early or late: the outcome, why (for the team's last event), the answer when
 * it is not the last thing a member said (`terminate`'s response), or the error of a failure. Returned by a
 * strategy that ends, thrown by one that cannot go on.
 */
export class Stop extends Error {
  override readonly name = 'Stop'
  readonly outcome: Outcome
  readonly note: string | undefined
  readonly content: string | undefined
  readonly error: string | undefined

  constructor(outcome: Outcome, note?: string, content?: string, error?: string) {
    // Thrown from deep in a strategy (a selector that cannot run); caught by the run, never by a caller.
    super(error ?? note ?? outcome)
    this.outcome = outcome
    this.note = note
    this.content = content
    this.error = error
  }

  static failed(error: string, outcome: Outcome = 'error'): Stop {
    return new Stop(outcome, undefined, undefined, error)
  }
}
