/**
 * Daily token budgets (limits.maxDailyTokens): counted per UTC day, in this process or on a real Redis shared
 * by several runtimes; a run of a spent agent is refused with the reset time, a run that crosses the budget
 * stops before its next model call, and a new UTC day starts the count again.
 */
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { ObjectRef } from '../../controller/api/index.ts'
import { Catalog, ManifestStore } from '../../controller/store/index.ts'
import { memorySource } from '../../test/manifests.ts'
import type { RedisServer } from '../../test/redis-server.ts'
import { startRedis } from '../../test/redis-server.ts'
import { AgentRuntime } from './agent-runtime.ts'
import type { TokenBudget } from './budget.ts'
import {
  BUDGET_KEY_TTL_SECONDS,
  BudgetUnavailableError,
  MemoryBudget,
  RedisBudget,
  nextUtcMidnight,
  secondsUntil,
  secondsUntilReset,
  utcDay,
} from './budget.ts'
import type { AgentEvent } from './events.ts'
import { createMockProvider } from './providers/mock.ts'
import type { Task } from './task.ts'
import { BUILTIN_TOOLS } from './tools/builtin.ts'

const FRUGAL: ObjectRef = { namespace: 'default', name: 'frugal' }

/** A clock the tests move: late on 1 March 2026, UTC. */
let now: Date
const clock = () => now

beforeEach(() => {
  now = new Date('2026-03-01T23:50:00.000Z')
})

describe('the UTC day', () => {
  it('is the date in UTC, and resets at the next UTC midnight', () => {
    // 23:30 in New York on 1 March is already 2 March in UTC.
    const t = new Date('2026-03-01T23:30:00-05:00')
    expect(utcDay(t)).toBe('2026-03-02')
    expect(nextUtcMidnight(t).toISOString()).toBe('2026-03-03T00:00:00.000Z')
    expect(secondsUntilReset(new Date('2026-03-01T23:59:58.500Z'))).toBe(2)
    expect(secondsUntilReset(new Date('2026-03-01T00:00:00.000Z'))).toBe(86_400)
    expect(secondsUntil('2026-03-02T00:00:00.000Z', new Date('2026-03-01T23:00:00.200Z'))).toBe(3600)
    expect(secondsUntil('2026-03-02T00:00:00.000Z', new Date('2026-03-02T00:00:03.000Z'))).toBe(1)
    expect(secondsUntil('not a date')).toBe(1)
  })
})

describe('MemoryBudget', () => {
  it('adds per agent and starts again at UTC midnight', async () => {
    const budget = new MemoryBudget({ now: clock })
    const other = { namespace: 'default', name: 'other' }
    expect(await budget.add(FRUGAL, 30)).toBe(30)
    expect(await budget.add(FRUGAL, 12)).toBe(42)
    await budget.add(other, 5)
    expect(budget.usedToday(FRUGAL)).toBe(42)
    expect(budget.usedToday(other)).toBe(5)
    now = new Date('2026-03-02T00:00:01.000Z')
    expect(budget.usedToday(FRUGAL)).toBe(0)
    expect(await budget.add(FRUGAL, 7)).toBe(7)
  })
})

// ---------------------------------------------------------------------------------------------------------
// The runtime

const manifests = (limit: number) => `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: frugal }
spec:
  model: mock
  systemPrompt: You help.
  limits: { maxDailyTokens: ${String(limit)} }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: lavish }
spec:
  model: mock
  systemPrompt: You help.
`

interface World {
  readonly catalog: Catalog
  close(): Promise<void>
}

async function world(limit: number): Promise<World> {
  const store = new ManifestStore(memorySource(manifests(limit)))
  await store.start()
  const catalog = new Catalog(store)
  return {
    catalog,
    async close() {
      catalog.close()
      await store.close()
    },
  }
}

const closers: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

async function runtimeWith(limit: number, budget: TokenBudget): Promise<AgentRuntime> {
  const w = await world(limit)
  const runtime = new AgentRuntime({
    catalog: w.catalog,
    createProvider: createMockProvider,
    builtins: BUILTIN_TOOLS,
    budget,
    now: clock,
  })
  closers.push(
    () => w.close(),
    () => runtime.close(),
  )
  return runtime
}

let taskNumber = 0
const task = (content: string, agent: ObjectRef = FRUGAL): Task => ({
  id: `t-${String(++taskNumber)}`,
  agent,
  messages: [{ role: 'user', content }],
  parameters: {},
  stream: false,
  depth: 0,
})

const run = (runtime: AgentRuntime, t: Task, events: AgentEvent[] = []) =>
  runtime.run(t, { signal: new AbortController().signal, emit: (e) => void events.push(e) })

describe('the runtime and the daily budget', () => {
  it('runs while the day has budget left, counts every call, then refuses with the reset time', async () => {
    const budget = new MemoryBudget({ now: clock })
    const runtime = await runtimeWith(30, budget)
    const first = await run(runtime, task('answer: hello'))
    expect(first.outcome).toBe('answer')
    expect(first.usage.totalTokens).toBeGreaterThan(0)
    expect(budget.usedToday(FRUGAL)).toBe(first.usage.totalTokens)
    // The mock counts a token per 4 characters: a long question spends the rest of the day's 30.
    const second = await run(runtime, task(`answer: ${'many words '.repeat(20)}`))
    expect(second.outcome).toBe('answer')
    expect(budget.usedToday(FRUGAL)).toBeGreaterThanOrEqual(30)

    const events: AgentEvent[] = []
    const refused = await run(runtime, task('answer: once more'), events)
    expect(refused.outcome).toBe('budget_exceeded')
    expect(refused.iterations).toBe(0)
    expect(refused.resetsAt).toBe('2026-03-02T00:00:00.000Z')
    expect(refused.error).toMatch(
      /agent\/frugal has used \d+ of its 30 tokens today \(limits\.maxDailyTokens\)/,
    )
    expect(refused.error).toContain('resets at 2026-03-02T00:00:00.000Z')
    // Nothing was asked of the model.
    expect(events.filter((e) => e.type === 'llm.start')).toHaveLength(0)
    // An agent without a limit is not counted, and not refused.
    expect((await run(runtime, task('answer: hi', { namespace: 'default', name: 'lavish' }))).outcome).toBe(
      'answer',
    )
    expect(budget.usedToday({ namespace: 'default', name: 'lavish' })).toBe(0)
  })

  it('stops a run that crosses the budget before its next model call', async () => {
    const budget = new MemoryBudget({ now: clock })
    const runtime = await runtimeWith(5, budget)
    // Three tool turns, then an answer: four model calls without a budget.
    const script = [
      'get_subtask_result {"id": "a"}',
      'get_subtask_result {"id": "b"}',
      'get_subtask_result {"id": "c"}',
    ].join('\n')
    const events: AgentEvent[] = []
    const result = await run(runtime, task(script), events)
    expect(result.outcome).toBe('budget_exceeded')
    // The first call spent more than 5 tokens: its tool ran, and no second call was made.
    expect(result.iterations).toBe(1)
    expect(events.filter((e) => e.type === 'llm.start')).toHaveLength(1)
    expect(events.filter((e) => e.type === 'tool.complete')).toHaveLength(1)
    expect(events.at(-1)).toMatchObject({ type: 'agent.complete', outcome: 'budget_exceeded' })
    expect(result.resetsAt).toBe('2026-03-02T00:00:00.000Z')
    expect(budget.usedToday(FRUGAL)).toBe(result.usage.totalTokens)

    // The same script with budget to spare runs every turn.
    const roomy = await runtimeWith(1_000_000, new MemoryBudget({ now: clock }))
    const full = await run(roomy, task(script))
    expect(full.outcome).toBe('answer')
    expect(full.iterations).toBe(4)
  })

  it('starts again at UTC midnight', async () => {
    const budget = new MemoryBudget({ now: clock })
    const runtime = await runtimeWith(1, budget)
    expect((await run(runtime, task('answer: hello'))).outcome).toBe('answer')
    expect((await run(runtime, task('answer: hello'))).outcome).toBe('budget_exceeded')
    now = new Date('2026-03-01T23:59:59.999Z')
    expect((await run(runtime, task('answer: hello'))).outcome).toBe('budget_exceeded')
    now = new Date('2026-03-02T00:00:00.000Z')
    const next = await run(runtime, task('answer: a new day'))
    expect(next.outcome).toBe('answer')
    expect(budget.usedToday(FRUGAL)).toBe(next.usage.totalTokens)
    const refused = await run(runtime, task('answer: hello'))
    expect(refused.resetsAt).toBe('2026-03-03T00:00:00.000Z')
  })
})

// ---------------------------------------------------------------------------------------------------------
// On Redis

describe('RedisBudget, on a real redis-server', () => {
  let server: RedisServer
  let prefix: string
  let prefixes = 0
  beforeAll(async () => {
    server = await startRedis()
  })
  afterAll(async () => {
    await server.stop()
  })
  beforeEach(() => {
    prefix = `budget-test-${String(++prefixes)}`
  })

  function redisBudget(options: { staleMs?: number } = {}): RedisBudget {
    const b = new RedisBudget({ url: server.url, prefix, now: clock, commandTimeoutMs: 500, ...options })
    closers.push(() => b.close())
    return b
  }

  function client(): Redis {
    const r = new Redis(server.url, { maxRetriesPerRequest: 1 })
    closers.push(() => r.disconnect())
    return r
  }

  it('counts into one key per agent per UTC day, kept 48 hours', async () => {
    const budget = redisBudget()
    expect(await budget.usedToday(FRUGAL)).toBe(0)
    expect(await budget.add(FRUGAL, 40)).toBe(40)
    expect(await budget.add(FRUGAL, 2)).toBe(42)
    const key = `${prefix}:budget:default/frugal:2026-03-01`
    expect(budget.key(FRUGAL, '2026-03-01')).toBe(key)
    const redis = client()
    expect(await redis.get(key)).toBe('42')
    const ttl = await redis.ttl(key)
    expect(ttl).toBeGreaterThan(BUDGET_KEY_TTL_SECONDS - 10)
    expect(ttl).toBeLessThanOrEqual(BUDGET_KEY_TTL_SECONDS)
    now = new Date('2026-03-02T00:00:05.000Z')
    expect(await budget.usedToday(FRUGAL)).toBe(0)
    await budget.add(FRUGAL, 3)
    expect(await redis.get(`${prefix}:budget:default/frugal:2026-03-02`)).toBe('3')
  })

  it('is shared by two runtimes: what one spent, the other refuses', async () => {
    const a = await runtimeWith(20, redisBudget())
    const b = await runtimeWith(20, redisBudget())
    const first = await run(a, task(`answer: ${'words '.repeat(20)}`))
    expect(first.outcome).toBe('answer')
    expect(first.usage.totalTokens).toBeGreaterThanOrEqual(20)
    // The count reaches Redis as the call completes, without waiting for anything else.
    await expect
      .poll(() => client().get(`${prefix}:budget:default/frugal:2026-03-01`))
      .toBe(String(first.usage.totalTokens))
    const refused = await run(b, task('answer: hello'))
    expect(refused.outcome).toBe('budget_exceeded')
    expect(refused.error).toContain(`has used ${String(first.usage.totalTokens)} of its 20 tokens today`)
    // A third reader (the control plane's) sees the same count.
    expect(await redisBudget().usedToday(FRUGAL)).toBe(first.usage.totalTokens)
  })

  it('an outage: a recent count still serves, then reads fail closed; usage counted meanwhile is not lost', async () => {
    const budget = redisBudget({ staleMs: 60_000 })
    expect(await budget.add(FRUGAL, 10)).toBe(10)
    await server.stop()
    try {
      // Within staleMs of the last reading: the count as known here, plus what was counted since.
      expect(await budget.add(FRUGAL, 5)).toBe(15)
      expect(await budget.usedToday(FRUGAL)).toBe(15)
      // Past it: the day's usage is not known, and a runtime refuses to start runs of limited agents.
      now = new Date(now.getTime() + 61_000)
      await expect(budget.usedToday(FRUGAL)).rejects.toBeInstanceOf(BudgetUnavailableError)
      const runtime = await runtimeWith(1_000_000, budget)
      const refused = await run(runtime, task('answer: hello'))
      expect(refused.outcome).toBe('error')
      expect(refused.error).toMatch(
        /agent\/frugal was not started: its daily token budget \(limits\.maxDailyTokens\) cannot be checked: its usage today cannot be read from Redis/,
      )
      // An agent without a limit does not need the budget.
      expect((await run(runtime, task('answer: hi', { namespace: 'default', name: 'lavish' }))).outcome).toBe(
        'answer',
      )
    } finally {
      await server.restart()
    }
    // Redis came back empty (a restart without persistence): the 5 tokens counted during the outage reach it.
    await expect
      .poll(() => budget.usedToday(FRUGAL).catch(() => -1), { timeout: 10_000, interval: 100 })
      .toBe(5)
    expect(await client().get(`${prefix}:budget:default/frugal:2026-03-01`)).toBe('5')
  })
})
