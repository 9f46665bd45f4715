/**
 * Quotas: how much an API key, and a namespace, may run. Each has optional limits, set where keys are
 * (keys.ts): `requestsPerSecond` with a `burst` (a token bucket: a run takes one token; tokens come back at
 * the rate, up to the burst) and `tokensPerDay` (model tokens a UTC day, counted as runs end, as ArkAgent
 * `maxDailyTokens` counts an agent's). A run is admitted only when the key's and its target namespace's limits
 * all allow it; ArkAgent budgets apply besides.
 *
 * Refusals are 429 with Retry-After (the next token; for a day's tokens, the next UTC midnight) and the
 * `x-ratelimit-*` headers OpenAI clients read, which admitted runs carry too, for the tightest limit.
 *
 * Where counts live: buckets in this process (`ark dev`), or on the pools' Redis, one hash per key or
 * namespace updated by a script (atomic across gateway replicas, on Redis's clock); day counts in the same
 * TokenBudget as agents' budgets, under refs no resource can have (`ark:key/<id>`, `ark:namespace/<ns>`).
 * A bucket that Redis cannot be asked about lets the run through (requests are the pools' to hold, and they
 * are on the same Redis); a day's count that cannot be read refuses it, as agents' budgets do.
 */
import { Redis } from 'ioredis'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { Logger } from '../log.ts'
import type { TokenBudget } from '../runtime/budget.ts'
import { secondsUntilReset } from '../runtime/budget.ts'
import type { Principal } from './scope.ts'

export interface Limits {
  /** Runs a second, on average; fractions allowed (0.5: one every two seconds). */
  readonly requestsPerSecond?: number
  /** Runs that may start at once after a quiet spell (default: requestsPerSecond rounded up, at least 1). */
  readonly burst?: number
  /** Model tokens a UTC day. */
  readonly tokensPerDay?: number
}

const LIMIT_FIELDS = new Set(['requestsPerSecond', 'burst', 'tokensPerDay'])

/** Checks limits as read from a keys file or a Secret, throwing with the path (`at`) of what is wrong. */
export function parseLimits(value: unknown, at: string): Limits | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`${at}: must be a mapping of requestsPerSecond, burst and tokensPerDay`)
  const fields = value as Record<string, unknown>
  for (const name of Object.keys(fields))
    if (!LIMIT_FIELDS.has(name))
      throw new Error(
        `${at}: ${/^[a-zA-Z]{1,30}$/.test(name) ? `"${name}" is` : 'a field is'} not one of requestsPerSecond, burst, tokensPerDay`,
      )
  const { requestsPerSecond, burst, tokensPerDay } = fields
  if (
    requestsPerSecond !== undefined &&
    !(typeof requestsPerSecond === 'number' && Number.isFinite(requestsPerSecond) && requestsPerSecond > 0)
  )
    throw new Error(`${at}.requestsPerSecond: must be a number above 0`)
  if (burst !== undefined && !(Number.isInteger(burst) && (burst as number) >= 1))
    throw new Error(`${at}.burst: must be a whole number, at least 1`)
  if (burst !== undefined && requestsPerSecond === undefined)
    throw new Error(`${at}.burst: needs requestsPerSecond`)
  if (tokensPerDay !== undefined && !(Number.isInteger(tokensPerDay) && (tokensPerDay as number) >= 1))
    throw new Error(`${at}.tokensPerDay: must be a whole number, at least 1`)
  return {
    ...(requestsPerSecond === undefined ? {} : { requestsPerSecond }),
    ...(burst === undefined ? {} : { burst: burst as number }),
    ...(tokensPerDay === undefined ? {} : { tokensPerDay: tokensPerDay as number }),
  }
}

/** What taking a token from a bucket found. */
export interface Take {
  readonly allowed: boolean
  /** Whole tokens left after this one. */
  readonly remaining: number
  /** Until the next token, in ms (0 when one is there). */
  readonly retryAfterMs: number
  /** Until the bucket is full again, in ms. */
  readonly resetMs: number
}

export interface RateLimiter {
  /**
   * Takes a token from bucket `key`, of `rate` tokens a second and `burst` at most: at once when the bucket
   * is in this process, else a promise (which may reject: the bucket's keeper cannot be asked).
   */
  take(key: string, rate: number, burst: number): Take | Promise<Take>
  close(): Promise<void>
}

function taken(allowed: boolean, tokens: number, rate: number, burst: number): Take {
  return {
    allowed,
    remaining: Math.floor(tokens),
    retryAfterMs: tokens >= 1 ? 0 : ((1 - tokens) / rate) * 1000,
    resetMs: ((burst - tokens) / rate) * 1000,
  }
}

/** Buckets in this process: right when this process admits every run it limits (`ark dev`, one gateway). */
export class MemoryRateLimiter implements RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>()
  readonly #now: () => number

  constructor(now: () => number = () => performance.now()) {
    this.#now = now
  }

  take(key: string, rate: number, burst: number): Take {
    const now = this.#now()
    const b = this.#buckets.get(key)
    let tokens = b === undefined ? burst : Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate)
    const allowed = tokens >= 1
    if (allowed) tokens -= 1
    this.#buckets.set(key, { tokens, at: now })
    return taken(allowed, tokens, rate, burst)
  }

  close(): Promise<void> {
    this.#buckets.clear()
    return Promise.resolve()
  }
}

/**
 * One bucket: refilled for the time since it was last touched, on Redis's own clock (gateways' clocks
 * differ), one token taken if there is one. Kept no longer than it takes to fill up again.
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1])
local at = tonumber(held[2])
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
`

type TakeCommand = (key: string, rate: string, burst: string) => Promise<[number, string]>

/** Buckets on Redis, shared by every gateway replica there. */
export class RedisRateLimiter implements RateLimiter {
  readonly #redis: Redis
  readonly #prefix: string
  #firstConnection: Promise<void> | undefined

  constructor(options: {
    readonly url: string
    readonly prefix?: string
    readonly commandTimeoutMs?: number
  }) {
    this.#prefix = options.prefix ?? 'ark'
    // No offline queue: while Redis is away a take fails at once (and the run goes through) instead of
    // waiting out the command timeout.
    this.#redis = new Redis(options.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: options.commandTimeoutMs ?? 1000,
    })
    // Failures reach the callers; the client reconnects itself.
    this.#redis.on('error', () => undefined)
    this.#redis.defineCommand('arkTakeToken', { numberOfKeys: 1, lua: TAKE })
  }

  async take(key: string, rate: number, burst: number): Promise<Take> {
    // Connected on first use (every take meanwhile waits for that one connection); later, ioredis
    // reconnects by itself and takes fail at once while it does.
    await (this.#firstConnection ??= this.#redis.connect().catch(() => undefined))
    const command = (this.#redis as unknown as { arkTakeToken: TakeCommand }).arkTakeToken.bind(this.#redis)
    const [allowed, tokens] = await command(`${this.#prefix}:ratelimit:${key}`, String(rate), String(burst))
    return taken(allowed === 1, Number(tokens), rate, burst)
  }

  async close(): Promise<void> {
    // Never used: nothing to say goodbye to (quit would connect first).
    if (this.#redis.status === 'wait' || this.#redis.status === 'end') this.#redis.disconnect()
    else await this.#redis.quit().catch(() => this.#redis.disconnect())
  }
}

/** Why a run is refused for a quota: rendered by each protocol as it renders admission's refusals. */
export interface QuotaRefusal {
  readonly status: 429 | 503
  readonly code: 'rate_limit_exceeded' | 'daily_token_quota_exceeded' | 'quota_unavailable'
  readonly message: string
  readonly retryAfterSeconds: number
  /** False for a spent day: retrying before it resets only fails again. */
  readonly retry: boolean
  readonly headers: Readonly<Record<string, string>>
}

/** What `Quotas.admit` decides: the run's grant, or why it is refused. */
export type QuotaDecision = QuotaGrant | QuotaRefusal

/** An admitted run's part in its quotas: the headers to answer with, and what to count once it ends. */
export interface QuotaGrant {
  readonly headers: Readonly<Record<string, string>>
  /** Counts the run's tokens to the day of its key and namespace (never rejects). */
  charge(tokens: number): void
}

const chargeNothing = (): void => undefined
/** The reset of a check without day limits: never read. */
const NO_RESET = { seconds: 0, text: '' }
const FREE: QuotaGrant = { headers: {}, charge: chargeNothing }

/**
 * Whose limits a check applies, a key's or a namespace's, with everything a check needs that does not change
 * between runs: built once per key and per namespace's limits, not per run (runs come by the thousand).
 */
interface Holder {
  readonly label: string
  readonly bucket: string
  readonly day: ObjectRef
  readonly limits: Limits
  /** The limits as the x-ratelimit headers spell them. */
  readonly tokensText: string
  readonly burst: number
  readonly burstText: string
  /** Counts a finished run's tokens to the holder's day. */
  readonly charge: (tokens: number) => void
}

function holder(label: string, bucket: string, day: ObjectRef, limits: Limits, budget: TokenBudget): Holder {
  const rate = limits.requestsPerSecond
  const burst = rate === undefined ? 0 : (limits.burst ?? Math.max(1, Math.ceil(rate)))
  return {
    label,
    bucket,
    day,
    limits,
    tokensText: String(limits.tokensPerDay ?? 0),
    burst,
    burstText: String(burst),
    charge: (tokens) => {
      if (tokens > 0) void budget.add(day, tokens)
    },
  }
}

export interface QuotaDeps {
  /** Namespaces' limits, as the keys' source has them now. */
  readonly namespaceLimits: (namespace: string) => Limits | undefined
  readonly limiter: RateLimiter
  readonly budget: TokenBudget
  readonly log: Logger
  readonly now?: () => Date
}

export class Quotas {
  readonly #deps: QuotaDeps
  /** When the limiter last failed to answer (a warning a minute at most). */
  #warnedAt = 0
  /** Each key's holder, for as long as its Principal lives (a reload makes new ones). */
  readonly #keys = new WeakMap<Principal, Holder>()
  /** Each namespace's holder, rebuilt when its limits change; as many as namespaces with limits. */
  readonly #namespaces = new Map<string, Holder>()

  constructor(deps: QuotaDeps) {
    this.#deps = deps
  }

  /** Whether any limit applies to a run by `who` in `namespace` (else `admit` is not worth its turn). */
  applies(who: Principal | undefined, namespace: string): boolean {
    return who?.limits !== undefined || this.#deps.namespaceLimits(namespace) !== undefined
  }

  #keyHolder(who: Principal, limits: Limits): Holder {
    let h = this.#keys.get(who)
    if (h === undefined)
      this.#keys.set(
        who,
        (h = holder(
          who.named,
          `key:${who.id}`,
          { namespace: 'ark:key', name: who.id },
          limits,
          this.#deps.budget,
        )),
      )
    return h
  }

  #namespaceHolder(namespace: string, limits: Limits): Holder {
    let h = this.#namespaces.get(namespace)
    if (h?.limits !== limits) {
      h = holder(
        `namespace ${namespace}`,
        `namespace:${namespace}`,
        { namespace: 'ark:namespace', name: namespace },
        limits,
        this.#deps.budget,
      )
      this.#namespaces.set(namespace, h)
    }
    return h
  }

  /**
   * Whether a run by `who` in `namespace` may start now; takes its request token(s) when it may. Decided at
   * once when every count it reads is in this process (`ark dev`), so that a limited run takes no more turns
   * than an open one; a promise when one is elsewhere (Redis).
   */
  admit(who: Principal | undefined, namespace: string): QuotaDecision | Promise<QuotaDecision> {
    const keyLimits = who?.limits
    const nsLimits = this.#deps.namespaceLimits(namespace)
    const holders: Holder[] = []
    if (who !== undefined && keyLimits !== undefined) holders.push(this.#keyHolder(who, keyLimits))
    if (nsLimits !== undefined) holders.push(this.#namespaceHolder(namespace, nsLimits))
    if (holders.length === 0) return FREE
    const reset = holders.some((h) => h.limits.tokensPerDay !== undefined)
      ? this.#resetOf(this.#deps.now?.().getTime() ?? Date.now())
      : NO_RESET
    return new QuotaCheck(holders, this.#deps, reset, this.#warn).days(0)
  }

  #reset = { at: 0, seconds: 0, text: '' }

  /** Seconds to the next UTC midnight and their spelling, worked out once a second. */
  #resetOf(nowMs: number): { seconds: number; text: string } {
    const second = Math.floor(nowMs / 1000)
    if (this.#reset.at !== second) {
      const seconds = secondsUntilReset(new Date(nowMs))
      this.#reset = { at: second, seconds, text: duration(seconds * 1000) }
    }
    return this.#reset
  }

  /** Says that buckets cannot be asked, once a minute at most. A bound function: each run's check is given it. */
  readonly #warn = (err: unknown): void => {
    const now = Date.now()
    if (now - this.#warnedAt < 60_000) return
    this.#warnedAt = now
    this.#deps.log.warn('rate limits cannot be checked; runs are let through meanwhile', {
      error: err instanceof Error ? err.message : String(err),
    })
  }

  close(): Promise<void> {
    return this.#deps.limiter.close()
  }
}

/**
 * One run's check of its holders' limits, in order: every day's tokens first (a run refused for its day takes
 * no request token), then each request bucket. Each step goes on at once with a count this process holds,
 * and after the promise of one held elsewhere.
 */
class QuotaCheck {
  readonly #holders: readonly Holder[]
  readonly #deps: QuotaDeps
  readonly #reset: { readonly seconds: number; readonly text: string }
  readonly #warn: (err: unknown) => void
  readonly #headers: Record<string, string> = {}
  #tightestTokens = Infinity
  #tightestRequests = Infinity

  constructor(
    holders: readonly Holder[],
    deps: QuotaDeps,
    reset: { readonly seconds: number; readonly text: string },
    warn: (err: unknown) => void,
  ) {
    this.#holders = holders
    this.#deps = deps
    this.#reset = reset
    this.#warn = warn
  }

  /** The days of holders `from` on, then the requests. */
  days(from: number): QuotaDecision | Promise<QuotaDecision> {
    for (let i = from; i < this.#holders.length; i++) {
      const h = this.#holders[i] as Holder
      if (h.limits.tokensPerDay === undefined) continue
      let used: number | Promise<number>
      try {
        used = this.#deps.budget.usedToday(h.day)
      } catch {
        return this.#unreadable(h)
      }
      if (used instanceof Promise)
        return used.then(
          (n) => this.#day(h, n) ?? this.days(i + 1),
          () => this.#unreadable(h),
        )
      const refused = this.#day(h, used)
      if (refused !== undefined) return refused
    }
    return this.requests(0)
  }

  /** The request buckets of holders `from` on, then the grant. */
  requests(from: number): QuotaDecision | Promise<QuotaDecision> {
    for (let i = from; i < this.#holders.length; i++) {
      const h = this.#holders[i] as Holder
      const rate = h.limits.requestsPerSecond
      if (rate === undefined) continue
      let take: Take | Promise<Take>
      try {
        take = this.#deps.limiter.take(h.bucket, rate, h.burst)
      } catch (err) {
        this.#warn(err)
        continue
      }
      if (take instanceof Promise)
        return take.then(
          (t) => this.#request(h, rate, t) ?? this.requests(i + 1),
          (err: unknown) => {
            // A bucket that cannot be asked lets the run through (see the top of this file).
            this.#warn(err)
            return this.requests(i + 1)
          },
        )
      const refused = this.#request(h, rate, take)
      if (refused !== undefined) return refused
    }
    return this.#grant()
  }

  /** Counts `used` tokens of `h`'s day into the headers; the refusal when none are left. */
  #day(h: Holder, used: number): QuotaRefusal | undefined {
    const remaining = Math.max(0, (h.limits.tokensPerDay ?? 0) - used)
    if (remaining >= this.#tightestTokens) return undefined
    this.#tightestTokens = remaining
    const headers = this.#headers
    headers['x-ratelimit-limit-tokens'] = h.tokensText
    headers['x-ratelimit-remaining-tokens'] = String(remaining)
    headers['x-ratelimit-reset-tokens'] = this.#reset.text
    if (remaining > 0) return undefined
    return {
      status: 429,
      code: 'daily_token_quota_exceeded',
      message: `${h.label} has used its ${h.tokensText} tokens for today (UTC); it resets at midnight UTC`,
      retryAfterSeconds: this.#reset.seconds,
      retry: false,
      headers,
    }
  }

  /** Counts a token taken from `h`'s bucket into the headers; the refusal when there was none. */
  #request(h: Holder, rate: number, take: Take): QuotaRefusal | undefined {
    if (take.allowed && take.remaining >= this.#tightestRequests) return undefined
    this.#tightestRequests = take.allowed ? take.remaining : -1
    const headers = this.#headers
    headers['x-ratelimit-limit-requests'] = h.burstText
    headers['x-ratelimit-remaining-requests'] = String(take.remaining)
    headers['x-ratelimit-reset-requests'] = duration(take.resetMs)
    if (take.allowed) return undefined
    return {
      status: 429,
      code: 'rate_limit_exceeded',
      message: `${h.label} may start ${String(rate)} runs a second (${h.burstText} at once); retry after the time Retry-After says`,
      retryAfterSeconds: Math.max(1, Math.ceil(take.retryAfterMs / 1000)),
      retry: true,
      headers,
    }
  }

  #unreadable(h: Holder): QuotaRefusal {
    return {
      status: 503,
      code: 'quota_unavailable',
      message: `the token count of ${h.label} cannot be read now; retry shortly`,
      retryAfterSeconds: 5,
      retry: true,
      headers: {},
    }
  }

  #grant(): QuotaGrant {
    const days = this.#holders.filter((h) => h.limits.tokensPerDay !== undefined)
    if (days.length === 0) return { headers: this.#headers, charge: chargeNothing }
    if (days.length === 1) return { headers: this.#headers, charge: (days[0] as Holder).charge }
    return {
      headers: this.#headers,
      charge: (tokens) => {
        for (const h of days) h.charge(tokens)
      },
    }
  }
}

/** A duration as OpenAI's reset headers spell it: `20ms`, `1.5s`, `6m0s`, `3h2m1s`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${String(Math.max(0, Math.ceil(ms)))}ms`
  const total = ms / 1000
  if (total < 60) return `${String(Math.round(total * 10) / 10)}s`
  const seconds = Math.floor(total)
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return h > 0 ? `${String(h)}h${String(m)}m${String(s)}s` : `${String(m)}m${String(s)}s`
}
