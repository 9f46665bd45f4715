/**
 * In-process pools: one per agent, each running at most `concurrency` tasks and holding at most `maxQueued`
 * more in FIFO order, each for at most its `maxWaitMs`. Limits are read at each submit, so a changed replicas
 * or maxConcurrentTasks applies to the next task without a restart.
 */
import type { ObjectRef } from '../../controller/api/index.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { notRun } from '../runtime/task.ts'
import { withCarrier } from '../trace/tracing.ts'
import type { Admission, PoolLimits, PoolStats, SubmitOptions, TaskQueue, TaskRunner } from './queue.ts'
import { QueueFullError, waitedTooLong } from './queue.ts'

/** The longest delay setTimeout takes. */
const MAX_TIMER_MS = 2 ** 31 - 1

interface Waiting {
  readonly task: Task
  readonly options: SubmitOptions
  readonly resolve: (r: TaskResult) => void
  readonly onAbort: () => void
  /** Answers `queue_timeout` when no slot came in the caller's maxWaitMs. */
  readonly expiry: ReturnType<typeof setTimeout> | undefined
}

class Pool {
  readonly ref: ObjectRef
  inFlight = 0
  concurrency = 1
  /** FIFO with a moving head: shift() would copy the array on every dequeue. */
  waiting: (Waiting | undefined)[] = []
  head = 0
  /** Live entries in `waiting` (cancelled ones leave a hole). */
  queued = 0
  /** Recent run time (s), to tell refused callers when to come back. */
  ewmaSeconds = 1

  constructor(ref: ObjectRef) {
    this.ref = ref
  }
}

export class MemoryQueue implements TaskQueue {
  readonly #run: TaskRunner
  readonly #limitsOf: (agent: ObjectRef) => PoolLimits
  readonly #pools = new Map<string, Pool>()
  readonly #running = new Set<Promise<unknown>>()
  #closed = false

  constructor(run: TaskRunner, limitsOf: (agent: ObjectRef) => PoolLimits) {
    this.#run = run
    this.#limitsOf = limitsOf
  }

  submit(queued: Task, options: SubmitOptions): Promise<Admission> {
    if (this.#closed) return Promise.reject(new Error('the queue is closed'))
    const task = withCarrier(queued)
    // Nobody is waiting for it any more: do not let it take a slot.
    if (options.signal.aborted) return Promise.resolve({ result: Promise.resolve(cancelled(task)) })
    const key = `${task.agent.namespace}/${task.agent.name}`
    let pool = this.#pools.get(key)
    if (pool === undefined) this.#pools.set(key, (pool = new Pool(task.agent)))
    const limits = this.#limitsOf(task.agent)
    pool.concurrency = limits.concurrency
    // A raised concurrency starts waiting tasks now, not when a running one finishes.
    this.#next(pool)
    if (pool.inFlight < limits.concurrency && pool.queued === 0) {
      return Promise.resolve({ result: this.#start(pool, task, options) })
    }
    if (pool.queued >= limits.maxQueued) {
      const retry = Math.max(
        1,
        Math.ceil((pool.ewmaSeconds * (pool.queued + 1)) / Math.max(1, limits.concurrency)),
      )
      return Promise.reject(new QueueFullError(task.agent, limits, retry))
    }
    const p = pool
    const result = new Promise<TaskResult>((resolve) => {
      // Leaves the line (a cancel, or the wait ran out) with the answer that says why.
      const leave = (answer: TaskResult) => {
        const i = p.waiting.indexOf(entry, p.head)
        if (i >= 0) {
          p.waiting[i] = undefined
          p.queued--
        }
        clearTimeout(entry.expiry)
        options.signal.removeEventListener('abort', onAbort)
        resolve(answer)
      }
      const onAbort = () => leave(cancelled(task))
      const wait = options.maxWaitMs
      // A wait longer than a timer takes (about 24.8 days) is no bound: Node would fire it at once.
      const expiry =
        wait === undefined || wait > MAX_TIMER_MS
          ? undefined
          : setTimeout(() => leave(waitedTooLong(task, wait)), wait)
      const entry: Waiting = { task, options, resolve, onAbort, expiry }
      p.waiting.push(entry)
      p.queued++
      options.signal.addEventListener('abort', onAbort, { once: true })
    })
    return Promise.resolve({ result })
  }

  stats(): PoolStats[] {
    return [...this.#pools.entries()].map(([pool, p]) => ({
      pool,
      inFlight: p.inFlight,
      queued: p.queued,
      concurrency: p.concurrency,
    }))
  }

  /** In-process pools: only the submitter's signal reaches a run here, and the submitter is in this process. */
  cancel(): Promise<boolean> {
    return Promise.resolve(false)
  }

  /** Stops taking tasks, cancels the waiting ones (they never started) and waits for the running ones. */
  async close(): Promise<void> {
    this.#closed = true
    for (const pool of this.#pools.values()) {
      for (let i = pool.head; i < pool.waiting.length; i++) {
        const w = pool.waiting[i]
        if (w === undefined) continue
        pool.waiting[i] = undefined
        clearTimeout(w.expiry)
        w.options.signal.removeEventListener('abort', w.onAbort)
        w.resolve(notRun(w.task, 'cancelled', 'the gateway shut down before the task started'))
      }
      pool.waiting = []
      pool.head = 0
      pool.queued = 0
    }
    await Promise.allSettled([...this.#running])
  }

  #start(pool: Pool, task: Task, options: SubmitOptions): Promise<TaskResult> {
    pool.inFlight++
    const started = performance.now()
    const context =
      options.onEvent === undefined
        ? { signal: options.signal }
        : { signal: options.signal, emit: options.onEvent }
    // Promise.resolve().then: a runner that throws synchronously still yields a result and frees its slot.
    const run = Promise.resolve()
      .then(() => this.#run(task, context))
      .catch((err: unknown) =>
        notRun(task, 'error', `the runtime failed: ${err instanceof Error ? err.message : String(err)}`),
      )
      .finally(() => {
        pool.inFlight--
        pool.ewmaSeconds = 0.8 * pool.ewmaSeconds + 0.2 * ((performance.now() - started) / 1000)
        this.#running.delete(run)
        this.#next(pool)
      })
    this.#running.add(run)
    return run
  }

  #next(pool: Pool): void {
    while (pool.inFlight < pool.concurrency && pool.head < pool.waiting.length) {
      const w = pool.waiting[pool.head]
      pool.waiting[pool.head++] = undefined
      if (pool.head > 1024 && pool.head * 2 > pool.waiting.length) {
        pool.waiting = pool.waiting.slice(pool.head)
        pool.head = 0
      }
      if (w === undefined) continue
      pool.queued--
      clearTimeout(w.expiry)
      w.options.signal.removeEventListener('abort', w.onAbort)
      void this.#start(pool, w.task, w.options).then(w.resolve)
    }
  }
}

function cancelled(task: Task): TaskResult {
  return notRun(task, 'cancelled', 'the task was cancelled while waiting in its queue')
}
