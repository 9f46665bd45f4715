/**
 * The runs this gateway admitted lately, for the dashboard (/ui): which target, through which face, whose
 * key, how it ended, how long it took and what it cost. Never what was asked or answered: the dashboard shows
 * runs to whoever may call their target, and they may not be the caller.
 *
 * A fixed ring of entries: recording a run is one object and one array slot, on the path of every run; the
 * oldest entry makes way for the newest.
 */
import type { Outcome } from '../runtime/events.ts'
import type { TaskResult } from '../runtime/task.ts'
import { succeeded } from '../runtime/task.ts'

/** The face a run came through. */
export type Via = 'openai' | 'a2a' | 'mcp' | 'query' | 'ui'

export interface RecentRun {
  readonly id: string
  /** The target as clients name it: `agent/x`, `team/ns/x`. */
  readonly target: string
  readonly kind: 'Agent' | 'Team'
  readonly namespace: string
  readonly via: Via | undefined
  /** The id of the caller's key (or a JWT's subject); absent without keys. Never the key. */
  readonly key: string | undefined
  /** When it was admitted, in ms since the epoch. */
  readonly startedAt: number
  /** `running` until it ends; then `succeeded` or `failed`. */
  status: 'running' | 'succeeded' | 'failed'
  /** How it ended (events.ts Outcome); absent while it runs. */
  outcome?: Outcome
  /** Why it failed, in the words its caller got. */
  error?: string
  seconds?: number
  iterations?: number
  tokens?: { readonly prompt: number; readonly completion: number; readonly total: number }
}

/** The longest error text kept: the dashboard shows a line, not a stack. */
const MAX_ERROR_CHARS = 300

export class RecentRuns {
  readonly #ring: (RecentRun | undefined)[]
  #next = 0
  readonly capacity: number

  constructor(capacity = 200) {
    this.capacity = capacity
    this.#ring = new Array<RecentRun | undefined>(capacity).fill(undefined)
  }

  /** Records a run as it starts; `finish` completes the same entry. */
  start(run: Omit<RecentRun, 'status' | 'startedAt'>): RecentRun {
    const entry: RecentRun = { ...run, startedAt: Date.now(), status: 'running' }
    this.#ring[this.#next] = entry
    this.#next = (this.#next + 1) % this.capacity
    return entry
  }

  finish(entry: RecentRun, result: TaskResult, seconds: number): void {
    entry.status = succeeded(result) ? 'succeeded' : 'failed'
    entry.outcome = result.outcome
    if (result.error !== undefined) entry.error = result.error.slice(0, MAX_ERROR_CHARS)
    entry.seconds = Math.round(seconds * 1000) / 1000
    entry.iterations = result.iterations
    entry.tokens = {
      prompt: result.usage.promptTokens,
      completion: result.usage.completionTokens,
      total: result.usage.totalTokens,
    }
  }

  /** Newest first, those `include` keeps, at most `limit`. */
  list(include: (run: RecentRun) => boolean = () => true, limit = this.capacity): RecentRun[] {
    const out: RecentRun[] = []
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const run = this.#ring[(this.#next - i + this.capacity) % this.capacity]
      if (run === undefined) break
      if (include(run)) out.push(run)
    }
    return out
  }
}
