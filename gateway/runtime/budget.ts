/**
 * Daily token budgets (ArkAgent `limits.maxDailyTokens`): what each agent used today, a UTC day, counted as
 * its model calls complete. The runtime reads it before a run (a run of an agent whose day is spent is not
 * started) and adds each call's usage; the control plane reads it for the agent's status.
 *
 * Two implementations: `MemoryBudget` for a process whose pools are its own (`ark dev`), and `RedisBudget`
 * for runtimes that share pools on Redis, where every worker of an agent counts into one key per agent per
 * day, `<prefix>:budget:<ns>/<name>:<YYYY-MM-DD>` (INCRBY, expiring after 48 h).
 *
 * When Redis cannot be reached: tokens counted meanwhile are kept in the process and added once it is back
 * (an outage does not lose usage, so it never lifts a budget for good); a run may still start on a count
 * read in the last `staleMs` (60 s by default: a blip does not fail requests), and after that the read
 * fails, and the runtime refuses to start runs of limited agents until Redis answers (fail closed).
 */
import { Redis } from 'ioredis'
import type { ObjectRef } from '../../controller/api/index.ts'
import { agentKey } from './subtasks.ts'

export interface TokenBudget {
  /**
   * Tokens the agent used today (UTC): at once when this process keeps the count, else a promise, which
   * rejects with BudgetUnavailableError when that cannot be known.
   */
  usedToday(agent: ObjectRef): number | Promise<number>
  /** Counts tokens to the agent's day; resolves to the day's total as best known (it never rejects). */
  add(agent: ObjectRef, tokens: number): Promise<number>
  close(): Promise<void>
}

/** The day's usage cannot be read (Redis away longer than the budget trusts its last reading). */
export class BudgetUnavailableError extends Error {
  override readonly name = 'BudgetUnavailableError'
}

/** The UTC day of `now`, `YYYY-MM-DD`. */
export function utcDay(now: Date): string {
  return now.toISOString().slice(0, 10)
}

/**
 * utcDay, remembered until the day ends: toISOString is the dearest part of counting a run, and every run of
 * a limited agent or key asks it twice.
 */
export class UtcDays {
  #start = 0
  #end = 0
  #day = ''

  /** The UTC day of `now` (a Date, or epoch milliseconds: no Date is made until the day changes). */
  of(now: Date | number): string {
    const t = typeof now === 'number' ? now : now.getTime()
    if (t < this.#start || t >= this.#end) {
      const at = typeof now === 'number' ? new Date(now) : now
      this.#day = utcDay(at)
      this.#start = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate())
      this.#end = nextUtcMidnight(at).getTime()
    }
    return this.#day
  }
}

/** When the UTC day of `now` ends: the next UTC midnight, when budgets reset. */
export function nextUtcMidnight(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1))
}

/** Whole seconds from `now` to the next UTC midnight (at least 1): a Retry-After for a spent budget. */
export function secondsUntilReset(now: Date): number {
  return Math.max(1, Math.ceil((nextUtcMidnight(now).getTime() - now.getTime()) / 1000))
}

/**
 * Whole seconds from `now` to `resetsAt` (a `budget_exceeded` TaskResult's), at least 1: its Retry-After.
 * Read where the answer is written, since a result may wait in a queue before it is.
 */
export function secondsUntil(resetsAt: string, now: Date = new Date()): number {
  const at = Date.parse(resetsAt)
  return Number.isFinite(at) ? Math.max(1, Math.ceil((at - now.getTime()) / 1000)) : 1
}

export interface BudgetOptions {
  /** The clock (tests move it past midnight). */
  readonly now?: () => Date
}

/** Budgets kept in this process: right when this process runs every task of the agents it counts. */
export class MemoryBudget implements TokenBudget {
  /** Epoch milliseconds: a Date a run is not worth making. */
  readonly #now: () => number
  readonly #calendar = new UtcDays()
  readonly #days = new Map<string, { day: string; used: number }>()

  constructor(options: BudgetOptions = {}) {
    const now = options.now
    this.#now = now === undefined ? Date.now : () => now().getTime()
  }

  usedToday(agent: ObjectRef): number {
    const e = this.#days.get(agentKey(agent))
    return e !== undefined && e.day === this.#calendar.of(this.#now()) ? e.used : 0
  }

  add(agent: ObjectRef, tokens: number): Promise<number> {
    const key = agentKey(agent)
    const day = this.#calendar.of(this.#now())
    let e = this.#days.get(key)
    if (e === undefined || e.day !== day) this.#days.set(key, (e = { day, used: 0 }))
    e.used += Math.max(0, Math.floor(tokens))
    return Promise.resolve(e.used)
  }

  close(): Promise<void> {
    this.#days.clear()
    return Promise.resolve()
  }
}

export interface RedisBudgetOptions extends BudgetOptions {
  readonly url: string
  /** Key prefix, the queue's (default `ark`). */
  readonly prefix?: string
  /** How old a reading may be and still let a run start while Redis cannot be reached (default 60 s). */
  readonly staleMs?: number
  /** Bound of each command (default 2 s): a Redis that hangs must not hold runs. */
  readonly commandTimeoutMs?: number
}

/** Seconds a day's key is kept: the day and the next, so late readers still see it. */
export const BUDGET_KEY_TTL_SECONDS = 48 * 3600

/** What this process knows of one agent's day. */
interface Day {
  readonly day: string
  /** The day's total as Redis last said it (this process's and everyone else's). */
  known: number
  /** When `known` was read (epoch ms); 0: never. */
  knownAt: number
  /** Tokens counted here that Redis has not taken yet (it could not be reached). */
  pending: number
}

/** Budgets shared by every runtime on one Redis. */
export class RedisBudget implements TokenBudget {
  readonly #calendar = new UtcDays()
  readonly #redis: Redis
  readonly #prefix: string
  readonly #now: () => Date
  readonly #staleMs: number
  readonly #days = new Map<string, Day>()

  constructor(options: RedisBudgetOptions) {
    this.#prefix = options.prefix ?? 'ark'
    this.#now = options.now ?? (() => new Date())
    this.#staleMs = options.staleMs ?? 60_000
    // Connected on first use: a process that runs no limited agent never opens it. A command waits at most
    // commandTimeout, connecting included; one retry on a dropped connection.
    this.#redis = new Redis(options.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 2000,
    })
    // Failures reach the callers (and, through the runtime, the run's error); the client reconnects itself.
    this.#redis.on('error', () => undefined)
  }

  /** The key of the agent's day. */
  key(agent: ObjectRef, day: string): string {
    return `${this.#prefix}:budget:${agentKey(agent)}:${day}`
  }

  async usedToday(agent: ObjectRef): Promise<number> {
    const d = this.#day(agent)
    try {
      if (d.pending > 0) return await this.#flush(agent, d)
      const raw = await this.#send(() => this.#redis.get(this.key(agent, d.day)))
      this.#learn(d, raw === null ? 0 : Number(raw))
      return d.known + d.pending
    } catch (err) {
      if (d.knownAt > 0 && this.#now().getTime() - d.knownAt <= this.#staleMs) return d.known + d.pending
      throw new BudgetUnavailableError(
        `its usage today cannot be read from Redis (${err instanceof Error ? err.message : String(err)})`,
        { cause: err },
      )
    }
  }

  async add(agent: ObjectRef, tokens: number): Promise<number> {
    const d = this.#day(agent)
    d.pending += Math.max(0, Math.floor(tokens))
    try {
      return await this.#flush(agent, d)
    } catch {
      // Kept in `pending`: the next add or read brings it to Redis.
      return d.known + d.pending
    }
  }

  async close(): Promise<void> {
    this.#days.clear()
    if (this.#redis.status === 'wait' || this.#redis.status === 'end') {
      this.#redis.disconnect()
      return
    }
    await this.#redis.quit().catch(() => this.#redis.disconnect())
  }

  /** Adds what is pending to the day's key (with its expiry); the day's total. */
  async #flush(agent: ObjectRef, d: Day): Promise<number> {
    const n = d.pending
    if (n === 0) return d.known
    d.pending = 0
    const key = this.key(agent, d.day)
    try {
      const replies = await this.#send(() =>
        this.#redis.multi().incrby(key, n).expire(key, BUDGET_KEY_TTL_SECONDS).exec(),
      )
      const [err, total] = replies?.[0] ?? [new Error('the transaction was aborted'), null]
      if (err !== null) throw err
      this.#learn(d, Number(total))
      return d.known + d.pending
    } catch (err) {
      d.pending += n
      throw err
    }
  }

  /**
   * A command, refused at once while the connection is known to be down (rather than each one waiting its
   * timeout in the offline queue); the first one connects.
   */
  #send<T>(command: () => Promise<T>): Promise<T> {
    const status = this.#redis.status
    if (status === 'reconnecting' || status === 'close' || status === 'end')
      return Promise.reject(new Error(`Redis connection is ${status}`))
    return command()
  }

  #learn(d: Day, total: number): void {
    if (!Number.isFinite(total)) return
    d.known = total
    d.knownAt = this.#now().getTime()
  }

  /** This process's view of the agent's current day, a fresh one after midnight. */
  #day(agent: ObjectRef): Day {
    const key = agentKey(agent)
    const day = this.#calendar.of(this.#now())
    let d = this.#days.get(key)
    // Tokens of a day that ended and never reached Redis are dropped: that day's budget no longer matters.
    if (d === undefined || d.day !== day) this.#days.set(key, (d = { day, known: 0, knownAt: 0, pending: 0 }))
    return d
  }
}

/**
 * One run's view of its agent's budget, for the tool loop: what the day had used when the run started, plus
 * what this run spent since, plus what other runtimes spent as the shared count says. The loop asks before
 * each model call whether the budget is spent; each completed call's usage is counted at once.
 */
export class RunBudget {
  readonly #budget: TokenBudget
  readonly #agent: ObjectRef
  readonly #limit: number
  readonly #now: () => Date
  readonly #id: string
  #day: string
  #used: number

  constructor(options: {
    readonly budget: TokenBudget
    readonly agent: ObjectRef
    /** How clients name the agent (`agent/x`), for messages. */
    readonly id: string
    readonly limit: number
    /** The day's usage when the run started. */
    readonly used: number
    readonly now: () => Date
  }) {
    this.#budget = options.budget
    this.#agent = options.agent
    this.#limit = options.limit
    this.#now = options.now
    this.#id = options.id
    this.#day = utcDay(options.now())
    this.#used = options.used
  }

  /** Counts one model call's tokens, here at once and in the shared budget as soon as it answers. */
  spend(tokens: number): void {
    if (tokens <= 0) return
    this.#roll()
    this.#used += tokens
    const day = this.#day
    void this.#budget.add(this.#agent, tokens).then((total) => {
      // Other runtimes' usage, as the shared count says it (never below what this run knows of itself).
      if (this.#day === day && total > this.#used) this.#used = total
    })
  }

  /** Why the run must not make another model call, or undefined while the day's budget lasts. */
  exceeded(): string | undefined {
    this.#roll()
    if (this.#used < this.#limit) return undefined
    return spentMessage(this.#id, this.#used, this.#limit, this.#now())
  }

  /** A new UTC day began during the run: its count starts again. */
  #roll(): void {
    const day = utcDay(this.#now())
    if (day === this.#day) return
    this.#day = day
    this.#used = 0
  }
}

/** Why an agent may not call its model again today, with when it may. */
export function spentMessage(id: string, used: number, limit: number, now: Date): string {
  return `${id} has used ${String(used)} of its ${String(limit)} tokens today (limits.maxDailyTokens); the budget resets at ${nextUtcMidnight(now).toISOString()} (UTC midnight)`
}
