import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RedisServer } from '../../test/redis-server.ts'
import { startRedis } from '../../test/redis-server.ts'
import { createLogger } from '../log.ts'
import { MemoryBudget, RedisBudget } from '../runtime/budget.ts'
import type { Limits, QuotaGrant, QuotaRefusal, RateLimiter } from './quotas.ts'
import { MemoryRateLimiter, Quotas, RedisRateLimiter, duration, parseLimits } from './quotas.ts'
import { Principal } from './scope.ts'

const warnings: string[] = []
const log = createLogger('test', (line) => warnings.push(line))

describe('MemoryRateLimiter', () => {
  it('gives a burst at once, then a token per 1/rate seconds, never more than the burst', () => {
    let now = 0
    const limiter = new MemoryRateLimiter(() => now)
    const take = () => limiter.take('k', 2, 3)
    expect(take().allowed).toBe(true)
    expect(take().allowed).toBe(true)
    const third = take()
    expect(third).toMatchObject({ allowed: true, remaining: 0 })
    expect(third.resetMs).toBeCloseTo(1500)
    const refused = take()
    expect(refused.allowed).toBe(false)
    expect(refused.retryAfterMs).toBeCloseTo(500)
    now = 499
    expect(take().allowed).toBe(false)
    now = 1000
    expect(take().allowed).toBe(true)
    // A long quiet spell fills it up to the burst, not past it.
    now = 100_000
    for (let i = 0; i < 3; i++) expect(take().allowed).toBe(true)
    expect(take().allowed).toBe(false)
    // Buckets are separate.
    expect(limiter.take('other', 2, 3).allowed).toBe(true)
  })
})

describe('duration', () => {
  it('spells durations as OpenAI reset headers do', () => {
    expect(duration(20)).toBe('20ms')
    expect(duration(1500)).toBe('1.5s')
    expect(duration(360_000)).toBe('6m0s')
    expect(duration(3 * 3_600_000 + 2 * 60_000 + 1000)).toBe('3h2m1s')
  })
})

describe('parseLimits', () => {
  it('reads limits and refuses what is wrong, saying where', () => {
    expect(parseLimits({ requestsPerSecond: 0.5, tokensPerDay: 1000 }, 'x')).toEqual({
      requestsPerSecond: 0.5,
      tokensPerDay: 1000,
    })
    expect(parseLimits(undefined, 'x')).toBeUndefined()
    const cases: [unknown, string][] = [
      [[], 'x: must be a mapping'],
      [{ rps: 1 }, 'x: "rps" is not one of requestsPerSecond, burst, tokensPerDay'],
      [{ requestsPerSecond: 0 }, 'x.requestsPerSecond: must be a number above 0'],
      [{ requestsPerSecond: '5' }, 'x.requestsPerSecond: must be a number above 0'],
      [{ requestsPerSecond: 1, burst: 1.5 }, 'x.burst: must be a whole number'],
      [{ burst: 2 }, 'x.burst: needs requestsPerSecond'],
      [{ tokensPerDay: -1 }, 'x.tokensPerDay: must be a whole number'],
    ]
    for (const [value, message] of cases) expect(() => parseLimits(value, 'x'), message).toThrow(message)
  })
})

const refusal = (d: QuotaGrant | QuotaRefusal): QuotaRefusal => {
  if (!('status' in d)) throw new Error('admitted')
  return d
}
const grant = (d: QuotaGrant | QuotaRefusal): QuotaGrant => {
  if ('status' in d) throw new Error(`refused: ${d.message}`)
  return d
}

describe('Quotas', () => {
  const make = (namespaces: Record<string, Limits>, limiter: RateLimiter = new MemoryRateLimiter()) => {
    let now = new Date('2026-12-07T23:00:00Z')
    const budget = new MemoryBudget({ now: () => now })
    const quotas = new Quotas({
      namespaceLimits: (ns) => namespaces[ns],
      limiter,
      budget,
      log,
      now: () => now,
    })
    return { quotas, budget, setNow: (d: string) => (now = new Date(d)) }
  }

  it('lets everything through, at no cost, where nothing is limited', async () => {
    const { quotas } = make({})
    const d = grant(await quotas.admit(new Principal('free'), 'default'))
    expect(d.headers).toEqual({})
    expect(grant(await quotas.admit(undefined, 'default')).headers).toEqual({})
  })

  it('decides at once when every count is in this process, and follows a change of limits', () => {
    const namespaces: Record<string, Limits> = { team: { requestsPerSecond: 10, tokensPerDay: 100 } }
    const { quotas, budget } = make(namespaces)
    const who = new Principal('ci', undefined, 'default', { requestsPerSecond: 5, tokensPerDay: 1000 })
    // Memory buckets and days: no promise, so a limited run takes no more turns than an open one.
    const first = quotas.admit(who, 'team')
    expect(first).not.toBeInstanceOf(Promise)
    const granted = grant(first as QuotaGrant | QuotaRefusal)
    expect(granted.headers).toMatchObject({
      'x-ratelimit-limit-tokens': '100',
      'x-ratelimit-limit-requests': '5',
    })
    // Both days are charged, the key's and the namespace's.
    granted.charge(40)
    expect(budget.usedToday({ namespace: 'ark:key', name: 'ci' })).toBe(40)
    expect(budget.usedToday({ namespace: 'ark:namespace', name: 'team' })).toBe(40)
    // New limits for the namespace (a reload) apply to the next run, not those built for the old ones.
    namespaces.team = { requestsPerSecond: 2, tokensPerDay: 50 }
    const next = grant(quotas.admit(who, 'team') as QuotaGrant | QuotaRefusal)
    expect(next.headers).toMatchObject({
      'x-ratelimit-limit-tokens': '50',
      'x-ratelimit-remaining-tokens': '10',
      'x-ratelimit-limit-requests': '2',
    })
  })

  it("refuses a key's runs past its rate, with Retry-After and OpenAI's headers", async () => {
    const { quotas } = make({})
    const who = new Principal('ci', undefined, 'default', { requestsPerSecond: 0.5, burst: 2 })
    const first = grant(await quotas.admit(who, 'default'))
    expect(first.headers).toMatchObject({
      'x-ratelimit-limit-requests': '2',
      'x-ratelimit-remaining-requests': '1',
    })
    grant(await quotas.admit(who, 'default'))
    const refused = refusal(await quotas.admit(who, 'default'))
    expect(refused).toMatchObject({
      status: 429,
      code: 'rate_limit_exceeded',
      retry: true,
      retryAfterSeconds: 2,
      headers: { 'x-ratelimit-limit-requests': '2', 'x-ratelimit-remaining-requests': '0' },
    })
    expect(refused.message).toContain('the API key "ci" may start 0.5 runs a second (2 at once)')
    // Another key is not held back by it.
    grant(
      await quotas.admit(new Principal('other', undefined, 'default', { requestsPerSecond: 1 }), 'default'),
    )
  })

  it("counts a namespace's runs whoever makes them, and reports the tightest limit", async () => {
    const { quotas } = make({ busy: { requestsPerSecond: 1, burst: 1 } })
    const a = new Principal('a', undefined, 'default', { requestsPerSecond: 100 })
    const b = new Principal('b')
    const first = grant(await quotas.admit(a, 'busy'))
    expect(first.headers['x-ratelimit-limit-requests']).toBe('1')
    const refused = refusal(await quotas.admit(b, 'busy'))
    expect(refused.message).toContain('namespace busy may start 1 runs a second')
    grant(await quotas.admit(b, 'quiet'))
  })

  it('refuses a key whose day is spent until midnight UTC, then lets it in again', async () => {
    const { quotas, setNow } = make({ team: { tokensPerDay: 1_000_000 } })
    const who = new Principal('ci', undefined, 'default', { tokensPerDay: 100 })
    const first = grant(await quotas.admit(who, 'team'))
    // The key's 100 is tighter than the namespace's million.
    expect(first.headers).toMatchObject({
      'x-ratelimit-limit-tokens': '100',
      'x-ratelimit-remaining-tokens': '100',
      'x-ratelimit-reset-tokens': '1h0m0s',
    })
    first.charge(60)
    expect(grant(await quotas.admit(who, 'team')).headers['x-ratelimit-remaining-tokens']).toBe('40')
    first.charge(40)
    const spent = refusal(await quotas.admit(who, 'team'))
    expect(spent).toMatchObject({
      status: 429,
      code: 'daily_token_quota_exceeded',
      retry: false,
      retryAfterSeconds: 3600,
    })
    expect(spent.message).toBe(
      'the API key "ci" has used its 100 tokens for today (UTC); it resets at midnight UTC',
    )
    setNow('2026-12-08T00:00:01Z')
    grant(await quotas.admit(who, 'team'))
  })

  it('refuses when a day cannot be read, and lets runs through when buckets cannot', async () => {
    const broken: RateLimiter = {
      take: () => Promise.reject(new Error('redis away')),
      close: () => Promise.resolve(),
    }
    const { quotas } = make({}, broken)
    grant(await quotas.admit(new Principal('r', undefined, 'default', { requestsPerSecond: 1 }), 'x'))
    grant(await quotas.admit(new Principal('r', undefined, 'default', { requestsPerSecond: 1 }), 'x'))
    // Said once, not per run.
    expect(warnings.filter((l) => l.includes('rate limits cannot be checked'))).toHaveLength(1)
    const budget = new RedisBudget({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 200, staleMs: 0 })
    const blind = new Quotas({ namespaceLimits: () => undefined, limiter: broken, budget, log })
    const refused = refusal(
      await blind.admit(new Principal('d', undefined, 'default', { tokensPerDay: 5 }), 'x'),
    )
    expect(refused).toMatchObject({ status: 503, code: 'quota_unavailable' })
    await budget.close()
  })
})

describe('RedisRateLimiter', () => {
  let redis: RedisServer
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    await redis.stop()
  })

  it('shares one bucket between gateways, atomically: of 200 concurrent takes, the burst gets through', async () => {
    const a = new RedisRateLimiter({ url: redis.url })
    const b = new RedisRateLimiter({ url: redis.url })
    // A rate so slow that no token comes back while the takes run.
    const takes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).take('key:shared', 0.001, 25)),
    )
    expect(takes.filter((t) => t.allowed)).toHaveLength(25)
    const refused = takes.find((t) => !t.allowed)
    expect(refused?.remaining).toBe(0)
    expect(refused?.retryAfterMs).toBeGreaterThan(900_000)
    // Another bucket is its own.
    expect((await a.take('key:other', 0.001, 1)).allowed).toBe(true)
    await a.close()
    await b.close()
  })

  it('gives tokens back at the rate', async () => {
    const limiter = new RedisRateLimiter({ url: redis.url })
    expect((await limiter.take('key:fast', 20, 1)).allowed).toBe(true)
    const refused = await limiter.take('key:fast', 20, 1)
    expect(refused.allowed).toBe(false)
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 20))
    expect((await limiter.take('key:fast', 20, 1)).allowed).toBe(true)
    await limiter.close()
  })
})
