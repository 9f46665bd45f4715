import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { RedisServer } from '../../test/redis-server.ts'
import { startRedis } from '../../test/redis-server.ts'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { AgentEvent } from '../runtime/events.ts'
import { NO_USAGE } from '../runtime/messages.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { NoWorkersError, QueueFullError } from './queue.ts'
import type { TaskRunner } from './queue.ts'
import { RedisQueue } from './redis-queue.ts'
import { RedisWorker } from './redis-worker.ts'
import { keys } from './redis-streams.ts'

const AGENT: ObjectRef = { namespace: 'default', name: 'helper' }
let server: RedisServer
let prefix: string
let n = 0
const closers: (() => Promise<void>)[] = []

beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server.stop()
})
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

function task(text: string, agent = AGENT): Task {
  return {
    id: `t-${String(++n)}`,
    agent,
    messages: [{ role: 'user', content: text }],
    parameters: {},
    stream: false,
    depth: 0,
  }
}

const answer = (t: Task, content: string): TaskResult => ({
  task: t.id,
  outcome: 'answer',
  content,
  usage: NO_USAGE,
  iterations: 1,
})

function gateway(
  options: { concurrency?: number; maxQueued?: number; timeoutMs?: number; requireWorkers?: boolean } = {},
): RedisQueue {
  const q = new RedisQueue({
    url: server.url,
    prefix,
    ...(options.requireWorkers === undefined ? {} : { requireWorkers: options.requireWorkers }),
    limitsOf: () => ({ concurrency: options.concurrency ?? 100, maxQueued: options.maxQueued ?? 1000 }),
    timeoutMsOf: () => options.timeoutMs ?? 10_000,
  })
  closers.push(() => q.close())
  return q
}

async function worker(
  run: TaskRunner,
  maxConcurrentTasks = 4,
  more: { claimIdleMs?: number; maxAttempts?: number } = {},
): Promise<RedisWorker> {
  const w = new RedisWorker({ url: server.url, prefix, agent: AGENT, maxConcurrentTasks, run, ...more })
  await w.start()
  closers.push(() => w.stop())
  return w
}

/** A runner that answers `content` and records the tasks it ran. */
function recording(content: string): { ran: string[]; run: TaskRunner } {
  const ran: string[] = []
  return {
    ran,
    run: (t) => {
      ran.push(t.id)
      return Promise.resolve(answer(t, content))
    },
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const never = new AbortController().signal

describe('the Redis Streams queue', () => {
  afterEach(() => {
    prefix = `ark-test-${String(++n)}`
  })
  beforeAll(() => {
    prefix = `ark-test-${String(++n)}`
  })

  it('spreads many tasks from two gateways over three workers: each runs once and answers its caller', async () => {
    const runs = new Map<string, string[]>()
    const runner =
      (name: string): TaskRunner =>
      async (t, context) => {
        runs.set(t.id, [...(runs.get(t.id) ?? []), name])
        void context.emit?.({ type: 'llm.delta', text: `working on ${t.id}` })
        await sleep(5)
        return answer(t, `done ${t.id}`)
      }
    await worker(runner('w1'), 2)
    await worker(runner('w2'), 2)
    await worker(runner('w3'), 2)
    const gateways = [gateway(), gateway()]
    const tasks = Array.from({ length: 60 }, (_, i) => task(`job ${String(i)}`))
    const events = new Map<string, AgentEvent[]>()
    const results = await Promise.all(
      tasks.map(async (t, i) => {
        const g = gateways[i % 2] as RedisQueue
        const admission = await g.submit(t, {
          signal: never,
          onEvent: (e) => void events.set(t.id, [...(events.get(t.id) ?? []), e]),
        })
        return admission.result
      }),
    )
    expect(results.map((r) => r.content)).toEqual(tasks.map((t) => `done ${t.id}`))
    for (const t of tasks) expect(runs.get(t.id)).toHaveLength(1)
    const workersUsed = new Set([...runs.values()].flat())
    expect(workersUsed.size).toBeGreaterThan(1)
    for (const t of tasks)
      expect(events.get(t.id)).toEqual([{ type: 'llm.delta', text: `working on ${t.id}` }])
    // Answered entries are acknowledged and deleted: the stream holds only the backlog.
    const redis = new Redis(server.url)
    expect(await redis.xlen(keys.pool(prefix, AGENT))).toBe(0)
    redis.disconnect()
  })

  it('a worker runs at most maxConcurrentTasks at once', async () => {
    let running = 0
    let most = 0
    await worker(async (t) => {
      running++
      most = Math.max(most, running)
      await sleep(40)
      running--
      return answer(t, 'ok')
    }, 2)
    const g = gateway()
    const results = await Promise.all(
      Array.from({ length: 8 }, async () => (await g.submit(task('x'), { signal: never })).result),
    )
    expect(results.every((r) => r.outcome === 'answer')).toBe(true)
    expect(most).toBe(2)
  })

  it('cancelling a running task aborts it on its worker', async () => {
    let sawAbort = false
    await worker(async (t, context) => {
      await new Promise<void>((resolve) =>
        context.signal.addEventListener('abort', () => resolve(), { once: true }),
      )
      sawAbort = true
      return { ...answer(t, 'stopped'), outcome: 'cancelled' }
    })
    const g = gateway()
    const controller = new AbortController()
    const admission = await g.submit(task('long'), { signal: controller.signal })
    await sleep(100)
    controller.abort()
    expect((await admission.result).outcome).toBe('cancelled')
    await sleep(200)
    expect(sawAbort).toBe(true)
  })

  it('a task cancelled while it waits is never run', async () => {
    const g = gateway()
    const controller = new AbortController()
    const t = task('later')
    const admission = await g.submit(t, { signal: controller.signal })
    controller.abort()
    expect((await admission.result).outcome).toBe('cancelled')
    const { ran, run } = recording('ran')
    await worker(run)
    // The worker takes the entry and skips it.
    await sleep(300)
    expect(ran).toEqual([])
  })

  it('a task no worker took within its maxWaitMs leaves the stream, is answered queue_timeout and never runs', async () => {
    const ran: string[] = []
    let release = () => {}
    const busy = new Promise<void>((resolve) => (release = resolve))
    await worker(async (t) => {
      ran.push(t.id)
      if (t.messages[0]?.content === 'long') await busy
      else await sleep(1500)
      return answer(t, `done ${t.id}`)
    }, 1)
    const g = gateway()
    const long = await g.submit(task('long'), { signal: never })
    await sleep(100)
    const waiting = task('waiting')
    const result = await (await g.submit(waiting, { signal: never, maxWaitMs: 200 })).result
    expect(result).toMatchObject({ outcome: 'queue_timeout', content: null })
    expect(result.error).toContain('for a free worker of agent default/helper')
    const redis = new Redis(server.url)
    closers.push(() => Promise.resolve(redis.disconnect()))
    // Only the running task is left in the pool's stream.
    expect(await redis.xlen(keys.pool(prefix, AGENT))).toBe(1)
    release()
    expect((await long.result).outcome).toBe('answer')
    // A task a worker took within its wait runs to its end, however long that takes past the wait.
    const taken = await (await g.submit(task('taken'), { signal: never, maxWaitMs: 1000 })).result
    expect(taken).toMatchObject({ outcome: 'answer' })
    expect(ran).not.toContain(waiting.id)
    expect(ran).toHaveLength(2)
  })

  it('a running task is stopped at its deadline', async () => {
    await worker(async (t, context) => {
      await new Promise<void>((resolve) =>
        context.signal.addEventListener('abort', () => resolve(), { once: true }),
      )
      const reason = context.signal.reason as Error
      return { ...answer(t, reason.name), outcome: 'timeout' }
    })
    const g = gateway({ timeoutMs: 200 })
    const result = await (await g.submit(task('slow'), { signal: never })).result
    expect(result).toMatchObject({ outcome: 'timeout', content: 'TimeoutError' })
  })

  it('with no worker at all, the caller still gets one answer after the deadline', async () => {
    const g = gateway({ timeoutMs: 100 })
    const result = await (await g.submit(task('nobody'), { signal: never })).result
    expect(result.outcome).toBe('timeout')
    expect(result.error).toMatch(/no worker of default\/helper answered within 100 ms/)
  })

  it('with requireWorkers, refuses at once a pool no worker serves, and takes tasks once one does', async () => {
    const g = gateway({ requireWorkers: true, timeoutMs: 60_000 })
    const refused = await g.submit(task('nobody'), { signal: never }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(refused).toBeInstanceOf(NoWorkersError)
    expect((refused as Error).message).toContain('no worker serves agent default/helper now')
    // Refused, not queued for nobody (a queued task would have been answered at its 60 s deadline).
    const redis = new Redis(server.url)
    closers.push(() => {
      redis.disconnect()
      return Promise.resolve()
    })
    expect(await redis.xlen(keys.pool(prefix, AGENT))).toBe(0)

    const { run } = recording('here now')
    const w = await worker(run)
    // The refusal is remembered a second at most.
    let result: TaskResult | undefined
    for (let i = 0; i < 40 && result === undefined; i++) {
      const admitted = await g.submit(task('somebody'), { signal: never }).catch(() => undefined)
      result = admitted === undefined ? (await sleep(100), undefined) : await admitted.result
    }
    expect(result?.content).toBe('here now')
    // A worker that stops is no longer counted (the live answer is trusted two seconds).
    await w.stop()
    await sleep(2100)
    await expect(g.submit(task('gone'), { signal: never })).rejects.toBeInstanceOf(NoWorkersError)
  })

  it('with requireWorkers, does not count a worker that died without a word, once it has been silent 10 s', async () => {
    const redis = new Redis(server.url)
    closers.push(() => {
      redis.disconnect()
      return Promise.resolve()
    })
    // What a killed worker leaves: its last heartbeat, 11 s ago by Redis's clock.
    const [seconds = 0] = await redis.time()
    await redis.zadd(keys.alive(prefix, AGENT), seconds - 11, 'killed')
    await expect(
      gateway({ requireWorkers: true }).submit(task('x'), { signal: never }),
    ).rejects.toBeInstanceOf(NoWorkersError)
    await redis.zadd(keys.alive(prefix, AGENT), seconds, 'fresh')
    const admitted = await gateway({ requireWorkers: true, timeoutMs: 100 }).submit(task('y'), {
      signal: never,
    })
    expect((await admitted.result).outcome).toBe('timeout')
  })

  it('refuses tasks beyond concurrency + maxQueued with QueueFullError', async () => {
    const g = gateway({ concurrency: 1, maxQueued: 1, timeoutMs: 60_000 })
    await g.submit(task('1'), { signal: never })
    await g.submit(task('2'), { signal: never })
    await expect(g.submit(task('3'), { signal: never })).rejects.toBeInstanceOf(QueueFullError)
  })

  /** Waits until a worker has taken the pool's one task: the id of its entry. */
  async function untilTaken(redis: Redis): Promise<string> {
    for (let i = 0; i < 50; i++) {
      const [entry] = (await redis.xpending(keys.pool(prefix, AGENT), 'workers', '-', '+', 1)) as [string][]
      if (entry !== undefined) return entry[0]
      await sleep(20)
    }
    throw new Error('no worker took the task')
  }

  /** What a worker that died mid-task leaves behind: the entry delivered to it, never acknowledged. */
  async function takenByADeadWorker(): Promise<void> {
    const redis = new Redis(server.url)
    const entries = await redis.xreadgroup(
      'GROUP',
      'workers',
      'dead',
      'COUNT',
      1,
      'BLOCK',
      2000,
      'STREAMS',
      keys.pool(prefix, AGENT),
      '>',
    )
    redis.disconnect()
    expect(entries).not.toBeNull()
  }

  it("a dead worker's task is taken over by another and its caller gets one answer", async () => {
    const g = gateway()
    const t = task('orphan')
    const admission = await g.submit(t, { signal: never })
    await takenByADeadWorker()
    const { ran, run } = recording('rescued')
    await worker(run, 2, { claimIdleMs: 150 })
    expect(await admission.result).toMatchObject({ outcome: 'answer', content: 'rescued' })
    expect(ran).toEqual([t.id])
  })

  it('a task no worker finishes goes to the dead-letter stream, and its caller is told why', async () => {
    const g = gateway()
    const t = task('cursed')
    const admission = await g.submit(t, { signal: never })
    await takenByADeadWorker()
    const { ran, run } = recording('never')
    await worker(run, 2, { claimIdleMs: 100, maxAttempts: 1 })
    const result = await admission.result
    expect(result.outcome).toBe('error')
    expect(result.error).toMatch(/taken by 1 workers and none finished it \(the last: dead\)/)
    expect(ran).toEqual([])
    const redis = new Redis(server.url)
    const dead = await redis.xrange(`${prefix}:dead:default/helper`, '-', '+')
    redis.disconnect()
    expect(dead).toHaveLength(1)
    expect(dead[0]?.[1]).toContain('reason')
  })

  it('a task a live worker is still running is not taken over', async () => {
    const ran: string[] = []
    const slow: TaskRunner = async (x) => {
      ran.push(x.id)
      await sleep(700)
      return answer(x, 'slow but alive')
    }
    await worker(slow, 1, { claimIdleMs: 150 })
    await worker(slow, 1, { claimIdleMs: 150 })
    const g = gateway()
    const t = task('long')
    const result = await (await g.submit(t, { signal: never })).result
    expect(result.content).toBe('slow but alive')
    expect(ran).toEqual([t.id])
  })
  it('a streaming caller is not given a second run of its task spliced onto the first', async () => {
    const g = new RedisQueue({
      url: server.url,
      prefix,
      id: 'splice',
      limitsOf: () => ({ concurrency: 10, maxQueued: 10 }),
      timeoutMsOf: () => 10_000,
    })
    closers.push(() => g.close())
    const t = task('streamed')
    const seen: AgentEvent[] = []
    const admission = await g.submit(t, { signal: never, onEvent: (e) => void seen.push(e) })
    // What two runs of one task write to the gateway's reply stream: the first died after one event.
    const redis = new Redis(server.url)
    const reply = (attempt: string, type: string, data: unknown) =>
      redis.xadd(
        `${prefix}:reply:splice`,
        '*',
        'task',
        t.id,
        'type',
        type,
        'data',
        JSON.stringify(data),
        'attempt',
        attempt,
      )
    await reply('first', 'event', { type: 'llm.delta', text: 'half of the first' })
    await reply('second', 'event', { type: 'llm.delta', text: 'the second' })
    await reply('second', 'result', answer(t, 'the second'))
    const result = await admission.result
    redis.disconnect()
    expect(seen).toEqual([{ type: 'llm.delta', text: 'half of the first' }])
    expect(result.outcome).toBe('error')
    expect(result.error).toMatch(/part of the answer was streamed; another worker ran the task again/)
  })

  it('a worker whose task was taken over meanwhile stops its run and does not answer', async () => {
    let aborted = false
    let release: () => void = () => {}
    const stalled = new Promise<void>((r) => (release = r))
    await worker(
      async (x, context) => {
        context.signal.addEventListener('abort', () => (aborted = true))
        await stalled
        return answer(x, 'from the stalled worker')
      },
      1,
      { claimIdleMs: 300 },
    )
    const g = gateway({ timeoutMs: 1500 })
    const t = task('contested')
    const admission = await g.submit(t, { signal: never })
    const redis = new Redis(server.url)
    const stream = keys.pool(prefix, AGENT)
    // Another worker takes the entry over, as it would from one that stalled past claimIdleMs.
    const id = await untilTaken(redis)
    // The other worker is alive: it renews the entry, as a live worker does.
    const renew = () => void redis.xclaim(stream, 'workers', 'other', 0, id, 'JUSTID')
    renew()
    const alive = setInterval(renew, 50)
    try {
      const wasAborted = () => aborted
      for (let i = 0; i < 50 && !wasAborted(); i++) await sleep(20)
      expect(aborted).toBe(true)
      release()
      // No answer comes from the stalled worker (the other one would give it): the caller's deadline passes.
      expect((await admission.result).outcome).toBe('timeout')
      const held = (await redis.xpending(stream, 'workers', '-', '+', 1)) as [string, string][]
      expect(held[0]?.[1]).toBe('other')
    } finally {
      clearInterval(alive)
      redis.disconnect()
    }
  })

  it('stop() with every slot busy hands the task back at the end of the grace period', async () => {
    const first = new RedisWorker({
      url: server.url,
      prefix,
      agent: AGENT,
      maxConcurrentTasks: 1,
      run: async (x, context) => {
        await new Promise((r) => context.signal.addEventListener('abort', r))
        return answer(x, 'from the first')
      },
    })
    await first.start()
    const g = gateway({ timeoutMs: 20_000 })
    const admission = await g.submit(task('handed over'), { signal: never })
    const redis = new Redis(server.url)
    await untilTaken(redis)
    redis.disconnect()
    let stopped = false
    const stopping = first.stop({ graceMs: 100 }).then(() => (stopped = true))
    // The default takeover wait (30 s) is far off: only the hand-back gets the task to the second worker.
    const { ran, run } = recording('from the second')
    await worker(run, 1)
    expect(await admission.result).toMatchObject({ outcome: 'answer', content: 'from the second' })
    await stopping
    expect(stopped).toBe(true)
    expect(ran).toHaveLength(1)
  })

  it('the task of a worker that died without a word is taken over in seconds, not after claimIdleMs', async () => {
    const g = gateway({ timeoutMs: 20_000 })
    const t = task('orphaned')
    const admission = await g.submit(t, { signal: never })
    // A worker that took the task, said it was alive once, and died: its consumer holds the entry for ever.
    const redis = new Redis(server.url)
    const pool = keys.pool(prefix, AGENT)
    await redis.xgroup('CREATE', pool, 'workers', '0', 'MKSTREAM').catch(() => undefined)
    await redis.xreadgroup('GROUP', 'workers', 'ghost', 'COUNT', 1, 'STREAMS', pool, '>')
    const [seconds] = await redis.time()
    await redis.zadd(keys.alive(prefix, AGENT), Number(seconds) - 1, 'ghost')
    redis.disconnect()
    const { ran, run } = recording('from the survivor')
    // A minute of idle time before a takeover by idle time: the test's 10 s bound leaves only the silence.
    await worker(run, 1, { claimIdleMs: 60_000 })
    expect(await admission.result).toMatchObject({ outcome: 'answer', content: 'from the survivor' })
    expect(ran).toEqual([t.id])
  }, 10_000)

  it('a stopping worker that left the alive set keeps the task it finishes in its grace: nobody takes it over', async () => {
    const ran: string[] = []
    const first = new RedisWorker({
      url: server.url,
      prefix,
      agent: AGENT,
      consumer: 'first',
      maxConcurrentTasks: 1,
      run: async (x) => {
        ran.push(`first ${x.id}`)
        // Longer than a dead worker's silence and its tasks' idle time together.
        await sleep(5000)
        return answer(x, 'from the first')
      },
    })
    await first.start()
    const g = gateway({ timeoutMs: 20_000 })
    const t = task('mine to finish')
    const admission = await g.submit(t, { signal: never })
    const redis = new Redis(server.url)
    await untilTaken(redis)
    const stopping = first.stop({ graceMs: 15_000 })
    // Gone from the pool's alive set at once (gateways send it nothing more), while it still runs the task.
    for (let i = 0; (await redis.zscore(keys.alive(prefix, AGENT), 'first')) !== null; i++) {
      expect(i).toBeLessThan(50)
      await sleep(20)
    }
    redis.disconnect()
    await worker(async (x) => {
      ran.push(`second ${x.id}`)
      return Promise.resolve(answer(x, 'from the second'))
    }, 1)
    expect(await admission.result).toMatchObject({ content: 'from the first' })
    await stopping
    expect(ran).toEqual([`first ${t.id}`])
  }, 15_000)
})
