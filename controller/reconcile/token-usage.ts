/**
 * Daily token usage in status: every agent with limits.maxDailyTokens gets `dailyTokenUsage` (the UTC day,
 * the tokens used, the limit) and, while the day's budget is spent, a BudgetExceeded condition (as
 * ark-operator sets one). It does not touch availability: a spent agent is refused per run, with the time
 * its budget resets, by the runtime.
 *
 * The count belongs to whoever holds it (the runtime's budget: this process's memory, or Redis shared by
 * every worker); this controller only reads it, about every 30 s per agent and at each UTC midnight, never
 * per request, so it never imports the data plane.
 */
import type { AnyResource, DailyTokenUsage, ObjectRef, Status } from '../api/index.ts'
import type { Catalog, StatusWriter } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { withCondition } from './conditions.ts'
import type { ReconcileMetrics } from './kit.ts'
import { Controller } from './kit.ts'

export const BUDGET_EXCEEDED = 'BudgetExceeded'

/** Where agents' usage is counted (the gateway's TokenBudget). */
export interface TokenUsageSource {
  /** Tokens the agent used today (UTC), at once or later; rejects when that cannot be known now. */
  usedToday(agent: ObjectRef): number | Promise<number>
}

export interface TokenUsageOptions {
  readonly usage: TokenUsageSource
  /** How often an agent's usage is read again (default 30 s). */
  readonly intervalMs?: number
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
  readonly metrics?: ReconcileMetrics
}

const DEFAULT_INTERVAL_MS = 30_000

export class TokenUsageController {
  readonly #controller: Controller

  constructor(catalog: Catalog, writer: StatusWriter, options: TokenUsageOptions) {
    const now = options.now ?? (() => new Date())
    const interval = options.intervalMs ?? DEFAULT_INTERVAL_MS
    this.#controller = new Controller(
      'token-usage',
      catalog,
      async (key) => {
        const resource = catalog.store.get(key)
        if (resource?.kind !== 'Agent') return undefined
        const limit = resource.spec.limits.maxDailyTokens
        if (limit === undefined) {
          const status = catalog.status(key)
          if (
            status?.dailyTokenUsage === undefined &&
            status?.conditions.some((c) => c.type === BUDGET_EXCEEDED) !== true
          )
            return undefined
          // The limit was taken out: what was said about it goes too.
          await writer.updateStatus(key, (current, latest) => withUsage(current, latest, undefined, now))
          return undefined
        }
        const used = await options.usage.usedToday(resource.ref)
        const at = now()
        const usage: DailyTokenUsage = { date: at.toISOString().slice(0, 10), totalTokens: used, limit }
        await writer.updateStatus(key, (current, latest) => withUsage(current, latest, usage, now))
        // Again in a while, and at midnight, when the count starts again.
        return { requeueAfterMs: Math.min(interval, untilMidnight(at) + 1000) }
      },
      // The agent's own changes only (a new limit); usage itself is polled.
      { kinds: new Set(['Agent']), dependents: false },
      {
        concurrency: 4,
        ...(options.onError === undefined ? {} : { onError: options.onError }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      },
    )
  }

  /** Reads every limited agent's usage once (without waiting), then at the interval, following changes. */
  start(): void {
    void this.#controller.start()
  }

  /** Resolves when no read is queued or running. */
  idle(): Promise<void> {
    return this.#controller.idle()
  }

  close(): void {
    this.#controller.close()
  }
}

/** The status with `usage` and its BudgetExceeded condition (both gone for undefined); undefined: unchanged. */
function withUsage(
  current: Status | undefined,
  resource: AnyResource,
  usage: DailyTokenUsage | undefined,
  now: () => Date,
): Status | undefined {
  const base = current ?? { conditions: [] }
  const before = base.dailyTokenUsage
  const changed =
    before?.date !== usage?.date ||
    before?.totalTokens !== usage?.totalTokens ||
    before?.limit !== usage?.limit
  let next: Status = base
  if (changed) {
    const rest: { -readonly [K in keyof Status]: Status[K] } = { ...base }
    delete rest.dailyTokenUsage
    next = usage === undefined ? rest : { ...rest, dailyTokenUsage: usage }
  }
  const verdict: Verdict | undefined =
    usage !== undefined && usage.totalTokens >= usage.limit
      ? {
          status: 'True',
          reason: 'DailyLimitReached',
          message: `used ${String(usage.totalTokens)} of ${String(usage.limit)} tokens on ${usage.date} (limits.maxDailyTokens); runs are refused until the budget resets at UTC midnight`,
        }
      : undefined
  return withCondition(next, resource, BUDGET_EXCEEDED, verdict, now) ?? (changed ? next : undefined)
}

function untilMidnight(at: Date): number {
  return Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1) - at.getTime()
}
