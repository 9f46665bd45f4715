import { describe, expect, it } from 'vitest'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { AgentEvent, EventSink } from '../runtime/events.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { MemoryQueue } from './memory.ts'
import type { Admission, PoolLimits, TaskRunner } from './queue.ts'
import { QueueFullError } from './queue.ts'

// ---------------------------------------------------------------------------------------------------------
// A runner the test drives: every task it starts waits until the test finishes (or fails) it.

interface Started {
  readonly task: Task
  readonly signal: AbortSignal
  readonly emit: EventSink | undefined
  finish(content?: string): void
  fail(error: Error): void
}

function controlledRunner() {
  const started: Started[] = []
  let running = 0
  let maxRunning = 0
  const run: TaskRunner = (task, context) =>
    new Promise<TaskResult>((resolve, reject) => {
      running++
      maxRunning = Math.max(maxRunning, running)
      const settle = () => running--
      started.push({
        task,
        signal: context.signal,
        emit: context.emit,
        finish(content = `${task.id} done`) {
          settle()
          resolve(result(task, content))
        },
        fail(error) {
          settle()
          reject(error)
        },
      })
    })
  return {
    run,
    started,
    ids: () => started.map((s) => s.task.id),
    get running() {
      return running
    },
    get maxRunning() {
      return maxRunning
    },
    /** The started task with this id. */
    get(id: string): Started {
      const s = started.find((x) => x.task.id === id)
      if (s === undefined)
        throw new Error(`${id} has not started; started: ${started.map((x) => x.task.id).join(', ')}`)
      return s
    },
  }
}

function result(task: Task, content: string): TaskResult {
  return {
    task: task.id,
    outcome: 'answer',
    content,
    usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
    iterations: 1,
  }
}

const AGENT: ObjectRef = { namespace: 'team-a', name: 'helper' }

function task(id: string, agent: ObjectRef = AGENT): Task {
  return { id, agent, messages: [{ role: 'user', content: id }], parameters: {}, stream: false, depth: 0 }
}

const open = () => ({ signal: new AbortController().signal })

/** Lets every pending promise callback run (the queue starts the next task in a `finally`). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

async function submitAll(queue: MemoryQueue, ids: readonly string[]): Promise<Map<string, Admission>> {
  const out = new Map<string, Admission>()
  for (const id of ids) out.set(id, await queue.submit(task(id), open()))
  return out
}

/** Whether a promise has settled yet, without waiting for it. */
async function isSettled(p: Promise<unknown>): Promise<boolean> {
  let settled = false
  p.then(
    () => (settled = true),
    () => (settled = true),
  )
  await settle()
  return settled
}

// ---------------------------------------------------------------------------------------------------------

describe('MemoryQueue: concurrency', () => {
  it('never runs more than the pool concurrency at once, and runs everything', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 2, maxQueued: 10 }))
    const admissions = await submitAll(queue, ['t1', 't2', 't3', 't4', 't5'])

    expect(runner.ids()).toEqual(['t1', 't2'])
    expect(queue.stats()).toEqual([{ pool: 'team-a/helper', inFlight: 2, queued: 3, concurrency: 2 }])

    // Finish out of order; the pool refills one for one.
    runner.get('t2').finish()
    await settle()
    expect(runner.ids()).toEqual(['t1', 't2', 't3'])
    expect(runner.running).toBe(2)
    runner.get('t3').finish()
    runner.get('t1').finish()
    await settle()
    expect(runner.ids()).toEqual(['t1', 't2', 't3', 't4', 't5'])
    expect(queue.stats()[0]).toMatchObject({ inFlight: 2, queued: 0 })
    runner.get('t5').finish()
    runner.get('t4').finish()

    const results = await Promise.all([...admissions.values()].map((a) => a.result))
    expect(results.map((r) => [r.task, r.content])).toEqual([
      ['t1', 't1 done'],
      ['t2', 't2 done'],
      ['t3', 't3 done'],
      ['t4', 't4 done'],
      ['t5', 't5 done'],
    ])
    expect(runner.maxRunning).toBe(2)
    expect(queue.stats()[0]).toMatchObject({ inFlight: 0, queued: 0 })
  })

  it('starts waiting tasks in the order they were submitted', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 10 }))
    const ids = ['a', 'b', 'c', 'd', 'e', 'f']
    await submitAll(queue, ids)
    for (let i = 0; i < ids.length; i++) {
      expect(runner.ids()).toEqual(ids.slice(0, i + 1))
      runner.get(ids[i]!).finish()
      await settle()
    }
    expect(runner.maxRunning).toBe(1)
  })

  it('does not let a new task overtake waiting ones when a slot frees up', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 10 }))
    await submitAll(queue, ['first', 'second'])
    runner.get('first').finish()
    // Submitted before the queue has had a chance to start `second`.
    const late = queue.submit(task('late'), open())
    await late
    await settle()
    expect(runner.ids()).toEqual(['first', 'second'])
    runner.get('second').finish()
    await settle()
    expect(runner.ids()).toEqual(['first', 'second', 'late'])
  })

  it('keeps pools of different agents apart', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 5 }))
    const other: ObjectRef = { namespace: 'team-b', name: 'helper' }
    await queue.submit(task('a1'), open())
    await queue.submit(task('a2'), open())
    await queue.submit(task('b1', other), open())
    expect(runner.ids()).toEqual(['a1', 'b1'])
    expect(queue.stats()).toEqual([
      { pool: 'team-a/helper', inFlight: 1, queued: 1, concurrency: 1 },
      { pool: 'team-b/helper', inFlight: 1, queued: 0, concurrency: 1 },
    ])
  })

  it('hands the runner the task signal and the event sink', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 5 }))
    const events: AgentEvent[] = []
    const controller = new AbortController()
    await queue.submit(task('with-sink'), { signal: controller.signal, onEvent: (e) => void events.push(e) })
    await queue.submit(task('without-sink'), open())
    const s = runner.get('with-sink')
    expect(s.signal).toBe(controller.signal)
    void s.emit?.({ type: 'llm.delta', text: 'hi' })
    expect(events).toEqual([{ type: 'llm.delta', text: 'hi' }])
    s.finish()
    await settle()
    expect(runner.get('without-sink').emit).toBeUndefined()
  })
})

describe('MemoryQueue: a long queue', () => {
  it('keeps FIFO order and cancellations right across thousands of waiting tasks', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 5000 }))
    const controllers = new Map<string, AbortController>()
    const ids = Array.from({ length: 3000 }, (_, i) => `t${String(i)}`)
    const admissions: Admission[] = []
    for (const id of ids) {
      const c = new AbortController()
      controllers.set(id, c)
      admissions.push(await queue.submit(task(id), { signal: c.signal }))
    }
    // Cancel some now, and some once the queue has moved past its first thousand.
    const early = ids.filter((_, i) => i % 7 === 3 && i < 1000)
    const late = ids.filter((_, i) => i % 7 === 3 && i >= 2000)
    const cancelled = new Set([...early, ...late])
    for (const id of early) controllers.get(id)!.abort()
    let finished = 0
    while (runner.started.length > finished) {
      runner.started[finished]!.finish()
      finished++
      await settle()
      if (finished === 1500) for (const id of late) controllers.get(id)!.abort()
    }
    const survivors = ids.filter((id) => !cancelled.has(id))
    expect(runner.ids()).toEqual(survivors)
    const results = await Promise.all(admissions.map((a) => a.result))
    expect(results.filter((r) => r.outcome === 'cancelled').map((r) => r.task)).toEqual([...early, ...late])
    expect(queue.stats()[0]).toMatchObject({ inFlight: 0, queued: 0 })
  })
})

describe('MemoryQueue: a full queue', () => {
  it('refuses with QueueFullError when maxQueued tasks are waiting', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 2 }))
    await submitAll(queue, ['run', 'wait1', 'wait2'])

    const refused = await queue.submit(task('extra'), open()).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(refused).toBeInstanceOf(QueueFullError)
    const err = refused as QueueFullError
    expect(err.name).toBe('QueueFullError')
    expect(err.message).toContain('team-a/helper')
    expect(err.pool).toEqual(AGENT)
    expect(Number.isInteger(err.retryAfterSeconds)).toBe(true)
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(1)
    expect(err.message).toContain(`retry after ${String(err.retryAfterSeconds)} s`)
    expect(runner.ids()).toEqual(['run'])
    expect(queue.stats()[0]).toMatchObject({ inFlight: 1, queued: 2 })

    // Once a slot frees, the queue takes tasks again.
    runner.get('run').finish()
    await settle()
    const admitted = await queue.submit(task('now-fits'), open())
    for (const id of ['wait1', 'wait2', 'now-fits']) {
      runner.get(id).finish()
      await settle()
    }
    expect((await admitted.result).content).toBe('now-fits done')
  })

  it('refuses everything beyond the concurrency when maxQueued is 0', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 2, maxQueued: 0 }))
    await submitAll(queue, ['a', 'b'])
    await expect(queue.submit(task('c'), open())).rejects.toBeInstanceOf(QueueFullError)
    expect(runner.ids()).toEqual(['a', 'b'])
  })
})

describe('MemoryQueue: a bounded wait', () => {
  it('answers a task that no slot came to in its maxWaitMs queue_timeout, never runs it, and frees its place', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 1 }))
    await queue.submit(task('t1'), open())
    const late = await queue.submit(task('t2'), { ...open(), maxWaitMs: 20 })
    const answer = await late.result
    expect(answer).toMatchObject({ task: 't2', outcome: 'queue_timeout', content: null })
    expect(answer.error).toContain('waited 0 s for a free worker of agent team-a/helper')
    expect(queue.stats()[0]).toMatchObject({ inFlight: 1, queued: 0 })
    // Its place in the queue is free again (maxQueued 1), and when t1 ends the next task, not t2, runs.
    const patient = await queue.submit(task('t3'), { ...open(), maxWaitMs: 60_000 })
    runner.get('t1').finish()
    await settle()
    expect(runner.ids()).toEqual(['t1', 't3'])
    runner.get('t3').finish()
    // Started within its wait: its answer is the run's.
    expect(await patient.result).toMatchObject({ outcome: 'answer', content: 't3 done' })
  })
})

describe('MemoryQueue: cancellation', () => {
  it('resolves a waiting task whose signal aborts as cancelled, without running it', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 5 }))
    await queue.submit(task('running'), open())
    const controller = new AbortController()
    const waiting = await queue.submit(task('impatient'), { signal: controller.signal })
    await queue.submit(task('patient'), open())
    expect(queue.stats()[0]).toMatchObject({ queued: 2 })

    controller.abort()
    const r = await waiting.result
    expect(r).toMatchObject({ task: 'impatient', outcome: 'cancelled', content: null, iterations: 0 })
    expect(r.error).toContain('cancelled')
    expect(queue.stats()[0]).toMatchObject({ inFlight: 1, queued: 1 })

    runner.get('running').finish()
    await settle()
    expect(runner.ids()).toEqual(['running', 'patient'])
    runner.get('patient').finish()
    await settle()
    expect(runner.ids()).toEqual(['running', 'patient'])
    expect(queue.stats()[0]).toMatchObject({ inFlight: 0, queued: 0 })
  })

  it('frees the queue slot of a cancelled task', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 1 }))
    await queue.submit(task('running'), open())
    const controller = new AbortController()
    await queue.submit(task('leaves'), { signal: controller.signal })
    await expect(queue.submit(task('refused'), open())).rejects.toBeInstanceOf(QueueFullError)
    controller.abort()
    await queue.submit(task('takes-the-slot'), open())
    expect(queue.stats()[0]).toMatchObject({ inFlight: 1, queued: 1 })
    runner.get('running').finish()
    await settle()
    expect(runner.ids()).toEqual(['running', 'takes-the-slot'])
  })

  it('leaves a started task to its runner: aborting it reaches the runner through the signal', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 5 }))
    const controller = new AbortController()
    const admission = await queue.submit(task('busy'), { signal: controller.signal })
    controller.abort()
    const s = runner.get('busy')
    expect(s.signal.aborted).toBe(true)
    // Still the runner's result, not a queue-made cancellation.
    s.finish('stopped by the runner')
    expect((await admission.result).content).toBe('stopped by the runner')
  })
})

describe('MemoryQueue: a failing runner', () => {
  it('turns a runner failure into an error result and keeps the pool working', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 5 }))
    const failing = await queue.submit(task('doomed'), open())
    const next = await queue.submit(task('next'), open())
    runner.get('doomed').fail(new Error('the worker crashed'))
    const r = await failing.result
    expect(r).toMatchObject({ task: 'doomed', outcome: 'error', content: null, iterations: 0 })
    expect(r.error).toContain('the worker crashed')
    await settle()
    expect(runner.ids()).toEqual(['doomed', 'next'])
    runner.get('next').finish()
    expect((await next.result).outcome).toBe('answer')
    expect(queue.stats()[0]).toMatchObject({ inFlight: 0, queued: 0 })
  })

  it('handles an async runner that throws', async () => {
    let calls = 0
    const queue = new MemoryQueue(
      // eslint-disable-next-line @typescript-eslint/require-await
      async (t) => {
        calls++
        if (t.id === 'bad') throw new Error('thrown inside')
        return result(t, 'fine')
      },
      () => ({ concurrency: 1, maxQueued: 5 }),
    )
    const bad = await queue.submit(task('bad'), open())
    const good = await queue.submit(task('good'), open())
    expect(await bad.result).toMatchObject({ outcome: 'error' })
    expect((await bad.result).error).toContain('thrown inside')
    expect(await good.result).toMatchObject({ outcome: 'answer', content: 'fine' })
    expect(calls).toBe(2)
  })
})

describe('MemoryQueue: limits', () => {
  it('reads the limits at each submit', async () => {
    const runner = controlledRunner()
    let limits: PoolLimits = { concurrency: 1, maxQueued: 0 }
    const asked: ObjectRef[] = []
    const queue = new MemoryQueue(runner.run, (agent) => {
      asked.push(agent)
      return limits
    })
    await queue.submit(task('a'), open())
    await expect(queue.submit(task('refused'), open())).rejects.toBeInstanceOf(QueueFullError)

    limits = { concurrency: 2, maxQueued: 0 }
    await queue.submit(task('b'), open())
    expect(runner.ids()).toEqual(['a', 'b'])
    expect(queue.stats()[0]).toMatchObject({ inFlight: 2, concurrency: 2 })
    expect(asked).toEqual([AGENT, AGENT, AGENT])

    limits = { concurrency: 2, maxQueued: 1 }
    await queue.submit(task('c'), open())
    expect(queue.stats()[0]).toMatchObject({ inFlight: 2, queued: 1 })
  })

  it('runs fewer at once after the concurrency is lowered', async () => {
    const runner = controlledRunner()
    let limits: PoolLimits = { concurrency: 2, maxQueued: 5 }
    const queue = new MemoryQueue(runner.run, () => limits)
    await submitAll(queue, ['a', 'b'])
    limits = { concurrency: 1, maxQueued: 5 }
    await queue.submit(task('c'), open())
    expect(queue.stats()[0]).toMatchObject({ inFlight: 2, queued: 1, concurrency: 1 })
    runner.get('a').finish()
    await settle()
    expect(runner.ids()).toEqual(['a', 'b'])
    runner.get('b').finish()
    await settle()
    expect(runner.ids()).toEqual(['a', 'b', 'c'])
  })

  it('starts waiting tasks at once when a submit raises the concurrency', async () => {
    const runner = controlledRunner()
    let limits: PoolLimits = { concurrency: 1, maxQueued: 5 }
    const queue = new MemoryQueue(runner.run, () => limits)
    await submitAll(queue, ['a', 'b'])
    expect(runner.ids()).toEqual(['a'])
    // Scaled up while `a` runs and `b` waits: the new capacity is used now, not when `a` finishes.
    limits = { concurrency: 3, maxQueued: 5 }
    await queue.submit(task('c'), open())
    await settle()
    expect(runner.ids()).toEqual(['a', 'b', 'c'])
    expect(queue.stats()[0]).toMatchObject({ inFlight: 3, queued: 0, concurrency: 3 })
  })
})

describe('MemoryQueue: close', () => {
  it('waits for running tasks, then refuses new ones', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 2, maxQueued: 5 }))
    const admissions = await submitAll(queue, ['a', 'b'])
    const closing = queue.close()
    expect(await isSettled(closing)).toBe(false)
    await expect(queue.submit(task('after-close'), open())).rejects.toThrow('closed')

    runner.get('a').finish()
    expect(await isSettled(closing)).toBe(false)
    runner.get('b').fail(new Error('failed while closing'))
    await closing
    expect((await admissions.get('a')!.result).outcome).toBe('answer')
    expect((await admissions.get('b')!.result).outcome).toBe('error')
    expect(runner.ids()).toEqual(['a', 'b'])
  })

  it('closes at once when nothing runs', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 1 }))
    await queue.close()
    await expect(queue.submit(task('x'), open())).rejects.toThrow('the queue is closed')
    expect(queue.stats()).toEqual([])
  })
})

describe('MemoryQueue at the edges', () => {
  it('close() cancels waiting tasks without running them and waits for the running one', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 5 }))
    const running = await queue.submit(task('a'), open())
    const waiting = await queue.submit(task('b'), open())
    let closed = false
    const closing = queue.close().then(() => (closed = true))
    const b = await waiting.result
    expect(b.outcome).toBe('cancelled')
    expect(b.error).toContain('shut down before the task started')
    await Promise.resolve()
    expect(closed).toBe(false)
    runner.get('a').finish()
    await closing
    expect((await running.result).outcome).toBe('answer')
    expect(runner.ids()).toEqual(['a'])
    await expect(queue.submit(task('c'), open())).rejects.toThrow('the queue is closed')
  })

  it('a task whose caller already gave up is answered cancelled and takes no slot', async () => {
    const runner = controlledRunner()
    const queue = new MemoryQueue(runner.run, () => ({ concurrency: 1, maxQueued: 0 }))
    const gone = new AbortController()
    gone.abort()
    const admission = await queue.submit(task('late'), { signal: gone.signal })
    expect((await admission.result).outcome).toBe('cancelled')
    expect(runner.ids()).toEqual([])
    const next = await queue.submit(task('next'), open())
    runner.get('next').finish()
    expect((await next.result).outcome).toBe('answer')
  })

  it('a runner that throws synchronously still answers (error) and frees its slot', async () => {
    let calls = 0
    const queue = new MemoryQueue(
      () => {
        calls++
        throw new Error('boom')
      },
      () => ({ concurrency: 1, maxQueued: 0 }),
    )
    for (const id of ['x', 'y']) {
      const r = await (await queue.submit(task(id), open())).result
      expect(r.outcome).toBe('error')
      expect(r.error).toContain('boom')
    }
    expect(calls).toBe(2)
    expect(queue.stats()[0]?.inFlight).toBe(0)
  })
})
