/**
 * An agent's daily token usage in its status, written by the control plane from the count the runtime keeps:
 * in-process (`ark dev`), and on a real Redis shared by two worker runtimes and read by a third process's
 * budget, as `ark controller` reads it. Status is read about every interval, never per request.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { ObjectRef } from '../controller/api/index.ts'
import { encodeStatus } from '../controller/api/index.ts'
import { BUDGET_EXCEEDED, TokenUsageController } from '../controller/index.ts'
import type { TokenUsageSource } from '../controller/index.ts'
import { Catalog, ManifestStore } from '../controller/store/index.ts'
import type { TokenBudget } from '../gateway/index.ts'
import { MemoryBudget, RedisBudget } from '../gateway/index.ts'
import { AgentRuntime } from '../gateway/runtime/agent-runtime.ts'
import { createMockProvider } from '../gateway/runtime/providers/mock.ts'
import type { Task } from '../gateway/runtime/task.ts'
import { BUILTIN_TOOLS } from '../gateway/runtime/tools/builtin.ts'
import { memorySource } from './manifests.ts'
import type { RedisServer } from './redis-server.ts'
import { startRedis } from './redis-server.ts'

const AGENT: ObjectRef = { namespace: 'default', name: 'frugal' }
const KEY = 'Agent/default/frugal'

const manifest = (limits: string) => `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: frugal }
spec:
  model: mock
  systemPrompt: You help.
  limits: ${limits}
`

let now: Date
const clock = () => now
beforeEach(() => {
  now = new Date('2026-03-01T12:00:00.000Z')
})

const closers: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

async function catalogOf(text: string) {
  const source = memorySource(text)
  const store = new ManifestStore(source)
  await store.start()
  const catalog = new Catalog(store)
  closers.push(async () => {
    catalog.close()
    await store.close()
  })
  return { store, catalog, source }
}

function runtimeOn(catalog: Catalog, budget: TokenBudget): AgentRuntime {
  const runtime = new AgentRuntime({
    catalog,
    createProvider: createMockProvider,
    builtins: BUILTIN_TOOLS,
    budget,
    now: clock,
  })
  closers.push(() => runtime.close())
  return runtime
}

/** Counts the control plane's reads of a usage source. */
function counted(source: TokenUsageSource): TokenUsageSource & { reads: number } {
  const out = {
    reads: 0,
    usedToday(agent: ObjectRef) {
      out.reads++
      return source.usedToday(agent)
    },
  }
  return out
}

let n = 0
const task = (content: string): Task => ({
  id: `t-${String(++n)}`,
  agent: AGENT,
  messages: [{ role: 'user', content }],
  parameters: {},
  stream: false,
  depth: 0,
})
const run = (runtime: AgentRuntime, t: Task) => runtime.run(t, { signal: new AbortController().signal })

describe('daily token usage in status', () => {
  it('shows the day, the tokens and the limit in the ArkAgent’s status, and BudgetExceeded once spent', async () => {
    const { store, catalog } = await catalogOf(manifest('{ maxDailyTokens: 40 }'))
    const budget = new MemoryBudget({ now: clock })
    const runtime = runtimeOn(catalog, budget)
    const usage = new TokenUsageController(catalog, store, { usage: budget, intervalMs: 20, now: clock })
    closers.push(() => usage.close())
    usage.start()
    await expect
      .poll(() => catalog.status(KEY)?.dailyTokenUsage)
      .toEqual({ date: '2026-03-01', totalTokens: 0, limit: 40 })

    const first = await run(runtime, task('answer: hello'))
    await expect.poll(() => catalog.status(KEY)?.dailyTokenUsage?.totalTokens).toBe(first.usage.totalTokens)
    expect(catalog.status(KEY)?.conditions.find((c) => c.type === BUDGET_EXCEEDED)).toBeUndefined()

    const big = await run(runtime, task(`answer: ${'many words '.repeat(30)}`))
    const total = first.usage.totalTokens + big.usage.totalTokens
    expect(total).toBeGreaterThanOrEqual(40)
    await expect.poll(() => catalog.status(KEY)?.dailyTokenUsage?.totalTokens).toBe(total)
    const exceeded = catalog.status(KEY)?.conditions.find((c) => c.type === BUDGET_EXCEEDED)
    expect(exceeded).toMatchObject({
      status: 'True',
      reason: 'DailyLimitReached',
      message: `used ${String(total)} of 40 tokens on 2026-03-01 (limits.maxDailyTokens); runs are refused until the budget resets at UTC midnight`,
    })

    // Written back in the ArkAgent's own dialect, as `kubectl get arkagent -o yaml` shows it.
    const resource = catalog.get('Agent', AGENT)!
    const written = encodeStatus(resource, catalog.status(KEY)!)
    expect(written?.dailyTokenUsage).toEqual({ date: '2026-03-01', totalTokens: total, limit: 40 })
    expect(written?.conditions).toContainEqual(
      expect.objectContaining({ type: 'BudgetExceeded', status: 'True' }),
    )

    // A new UTC day: the count, and the condition, start again.
    now = new Date('2026-03-02T00:00:01.000Z')
    await expect
      .poll(() => catalog.status(KEY)?.dailyTokenUsage)
      .toEqual({ date: '2026-03-02', totalTokens: 0, limit: 40 })
    expect(catalog.status(KEY)?.conditions.find((c) => c.type === BUDGET_EXCEEDED)).toBeUndefined()
  })

  it('is read at the interval, not per request; a limit taken out takes its usage out of status', async () => {
    const { store, catalog, source } = await catalogOf(manifest('{ maxDailyTokens: 1000000 }'))
    const budget = new MemoryBudget({ now: clock })
    const runtime = runtimeOn(catalog, budget)
    const reads = counted(budget)
    const usage = new TokenUsageController(catalog, store, { usage: reads, intervalMs: 60_000, now: clock })
    closers.push(() => usage.close())
    usage.start()
    await usage.idle()
    expect(catalog.status(KEY)?.dailyTokenUsage?.totalTokens).toBe(0)
    for (let i = 0; i < 20; i++) expect((await run(runtime, task('answer: hello'))).outcome).toBe('answer')
    await usage.idle()
    expect(reads.reads).toBe(1)
    // The agent changed (its limit went): it is reconciled, and its usage leaves status.
    source.replace(manifest('{ maxTokensPerCall: 8000 }'))
    await expect.poll(() => catalog.status(KEY)?.dailyTokenUsage).toBeUndefined()
    expect(reads.reads).toBe(1)
  })
})

describe('on a real redis-server', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedis()
  })
  afterAll(async () => {
    await server.stop()
  })

  it('two worker runtimes share the count; the control plane reads it into status; the second refuses', async () => {
    const prefix = `ark-e2e-${String(Date.now())}`
    const budget = () => {
      const b = new RedisBudget({ url: server.url, prefix, now: clock })
      closers.push(() => b.close())
      return b
    }
    // Two workers (each with its own catalog and budget client) and a controller, as separate processes are.
    const a = runtimeOn((await catalogOf(manifest('{ maxDailyTokens: 20 }'))).catalog, budget())
    const b = runtimeOn((await catalogOf(manifest('{ maxDailyTokens: 20 }'))).catalog, budget())
    const control = await catalogOf(manifest('{ maxDailyTokens: 20 }'))
    const usage = new TokenUsageController(control.catalog, control.store, {
      usage: budget(),
      intervalMs: 20,
      now: clock,
    })
    closers.push(() => usage.close())
    usage.start()

    const first = await run(a, task(`answer: ${'words '.repeat(20)}`))
    expect(first.outcome).toBe('answer')
    await expect
      .poll(() => control.catalog.status(KEY)?.dailyTokenUsage)
      .toEqual({ date: '2026-03-01', totalTokens: first.usage.totalTokens, limit: 20 })
    const refused = await run(b, task('answer: hello'))
    expect(refused.outcome).toBe('budget_exceeded')
    expect(refused.resetsAt).toBe('2026-03-02T00:00:00.000Z')
    expect(control.catalog.status(KEY)?.conditions.find((c) => c.type === BUDGET_EXCEEDED)?.status).toBe(
      'True',
    )
  })
})
