/**
 * The gateway replica's side of the Redis Streams queue (key layout in redis-streams.ts): submits tasks to
 * pool streams, reads their events and results from its own reply stream, and answers each caller exactly
 * once: with the first result that arrives, or at the task's deadline when none does.
 */
import { Redis } from 'ioredis'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { AgentEvent, EventSink } from '../runtime/events.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { agentKey } from '../runtime/subtasks.ts'
import { notRun } from '../runtime/task.ts'
import type { Logger } from '../log.ts'
import { withCarrier } from '../trace/tracing.ts'
import { redactedUrl } from '../log.ts'
import type { Admission, PoolLimits, PoolStats, SubmitOptions, TaskQueue } from './queue.ts'
import {
  ALIVE_WINDOW_SECONDS,
  NoWorkersError,
  QueueFullError,
  QueueUnavailableError,
  waitedTooLong,
} from './queue.ts'
import type { ReplyEntry, StreamBatch } from './redis-streams.ts'
import {
  BLOCK_MS,
  COUNT_ALIVE,
  DROP_WAITING,
  GROUP,
  KEEP_SECONDS,
  createGroup,
  fieldsOf,
  keys,
  sleep,
} from './redis-streams.ts'

/** After its deadline, a task's caller waits this much longer for the worker's own timeout answer. */
const DEADLINE_GRACE_MS = 2000
/** How long a submit waits for the first connection before it answers that Redis is down. */
const FIRST_CONNECT_WAIT_MS = 1000
/** A command Redis does not answer in this time fails, and the caller gets a 503. */
const COMMAND_TIMEOUT_MS = 2000
/** How often the reply stream is trimmed up to what this replica has read. */
const TRIM_EVERY_MS = 5000

export interface RedisQueueOptions {
  readonly url: string
  /** Key prefix (default `ark`). */
  readonly prefix?: string
  /** Identifies this gateway replica's reply stream (default random). */
  readonly id?: string
  readonly limitsOf: (agent: ObjectRef) => PoolLimits
  /** Deadline of a task, from its agent (limits.timeoutSeconds) or the default. */
  readonly timeoutMsOf: (agent: ObjectRef) => number
  /** Connection problems, once per change (the URL's password never reaches it). */
  readonly log?: Logger
  /**
   * Refuse a task (NoWorkersError) when no worker of its pool has said it is alive lately, rather than queue
   * it for nobody (default false: queue, as for pools autoscaled from zero, which start on a backlog).
   */
  readonly requireWorkers?: boolean
}

interface Pending {
  readonly task: Task
  /** The run is in another process: a slow reader's promise is not waited for (the stream's bound is). */
  readonly onEvent: EventSink | undefined
  readonly resolve: (r: TaskResult) => void
  readonly timer: ReturnType<typeof setTimeout>
  /** The caller's maxWaitMs: past it, a task no worker has taken is dropped and answered `queue_timeout`. */
  wait?: ReturnType<typeof setTimeout>
  /** Removed when the task settles: a long-lived signal (a parent run's) must not collect listeners. */
  detach?: () => void
  /** The run whose events the caller has been given: a retry's cannot be appended to them. */
  attempt?: string
}

/** What a caller that already streamed part of one run's answer gets when another run answers instead. */
const RETRIED_MID_STREAM =
  'the worker running this task stopped after part of the answer was streamed; another worker ran the task again, and a stream cannot be taken back: retry the request'

export class RedisQueue implements TaskQueue {
  readonly #options: RedisQueueOptions
  readonly #prefix: string
  readonly #reply: string
  /** Commands; the reply reader blocks, so it has a connection of its own. */
  readonly #redis: Redis
  readonly #reader: Redis
  readonly #pending = new Map<string, Pending>()
  /** Pool keys whose consumer group this replica made sure of. */
  readonly #groups = new Set<string>()
  /** Whether each pool had a live worker, and until when that answer is trusted (requireWorkers). */
  readonly #alive = new Map<string, { readonly alive: Promise<boolean>; readonly until: number }>()
  /** The pools its stats report, by key: those it submitted to, and those it watches. */
  readonly #pools = new Map<string, ObjectRef>()
  #closed = false
  /** Connected now; and whether it ever was (before that, a submit waits briefly for the first connection). */
  #up = false
  #everUp = false
  readonly #reading: Promise<void>
  /** One promise for every submit that waits for the first connection (not a listener each). */
  readonly #firstConnection: Promise<void>

  constructor(options: RedisQueueOptions) {
    this.#options = options
    this.#prefix = options.prefix ?? 'ark'
    this.#reply = keys.reply(this.#prefix, options.id ?? crypto.randomUUID())
    // No offline queue: while Redis is away a command fails at once and the caller gets a 503 now, rather
    // than a request held until Redis returns. The client reconnects by itself.
    // A Redis that hangs (rather than refuses) must not hold requests either: commands time out.
    this.#redis = new Redis(options.url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: COMMAND_TIMEOUT_MS,
    })
    this.#reader = this.#redis.duplicate({ commandTimeout: BLOCK_MS + COMMAND_TIMEOUT_MS })
    this.#firstConnection = new Promise((resolve) => this.#redis.once('ready', () => resolve()))
    this.#redis.on('ready', () => {
      this.#up = true
      this.#everUp = true
    })
    for (const event of ['close', 'reconnecting', 'end']) this.#redis.on(event, () => (this.#up = false))
    let reported = ''
    this.#redis.on('ready', () => {
      if (reported !== '')
        options.log?.info('task queue reachable again', { redis: redactedUrl(options.url) })
      reported = ''
    })
    // ioredis's messages name the host and the failure (ECONNREFUSED, WRONGPASS), never the password.
    this.#redis.on('error', (err: Error) => {
      if (err.message === reported) return
      reported = err.message
      options.log?.warn('task queue unreachable', { redis: redactedUrl(options.url), error: err.message })
    })
    this.#reader.on('error', () => {})
    this.#reading = this.#readReplies()
  }

  /**
   * Whether a worker of the pool said it was alive in the last ALIVE_WINDOW_SECONDS: asked of Redis at most
   * once a second per pool (a live answer is trusted for two), so a flood costs one command a second.
   */
  async #hasWorkers(agent: ObjectRef): Promise<boolean> {
    const key = keys.alive(this.#prefix, agent)
    const now = Date.now()
    const known = this.#alive.get(key)
    if (known !== undefined && known.until > now) return known.alive
    // The question itself is shared: submits that arrive while it is asked wait for the same answer.
    const alive = this.#redis
      .eval(COUNT_ALIVE, 1, key, String(ALIVE_WINDOW_SECONDS))
      .then((count) => Number(count) > 0)
    this.#alive.set(key, { alive, until: now + 1000 })
    alive.then(
      (yes) => {
        if (yes && this.#alive.get(key)?.alive === alive)
          this.#alive.set(key, { alive, until: Date.now() + 2000 })
      },
      () => {
        if (this.#alive.get(key)?.alive === alive) this.#alive.delete(key)
      },
    )
    return alive
  }

  /** Reports this pool in stats() too, though this replica has not submitted to it (a worker's own pool). */
  watch(agent: ObjectRef): void {
    this.#pools.set(keys.pool(this.#prefix, agent), agent)
  }

  /** Whether Redis answers now (for readiness and logs). */
  get connected(): boolean {
    return this.#up
  }

  async submit(queued: Task, options: SubmitOptions): Promise<Admission> {
    if (this.#closed) throw new Error('the queue is closed')
    // The trace context crosses Redis inside the task, to whichever worker takes it.
    const task = withCarrier(queued)
    if (options.signal.aborted) return { result: Promise.resolve(cancelled(task)) }
    const pool = keys.pool(this.#prefix, task.agent)
    await this.#connected()
    const limits = this.#options.limitsOf(task.agent)
    try {
      if (!this.#groups.has(pool)) {
        await createGroup(this.#redis, pool)
        this.#groups.add(pool)
        this.#pools.set(pool, task.agent)
      }
      if (this.#options.requireWorkers === true && !(await this.#hasWorkers(task.agent)))
        throw new NoWorkersError(task.agent)
      const backlog = await this.#redis.xlen(pool)
      if (backlog >= limits.concurrency + limits.maxQueued) {
        throw new QueueFullError(
          task.agent,
          limits,
          Math.max(1, Math.ceil(backlog / Math.max(1, limits.concurrency))),
        )
      }
    } catch (err) {
      if (err instanceof NoWorkersError) throw err
      throw this.#unavailable(err)
    }
    const timeoutMs = this.#options.timeoutMsOf(task.agent)
    const deadline = Date.now() + timeoutMs
    const result = new Promise<TaskResult>((resolve) => {
      // Nobody answered by the deadline (no worker, or it died): the caller still gets exactly one answer.
      const timer = setTimeout(() => {
        this.#settle(
          task.id,
          notRun(
            task,
            'timeout',
            `no worker of ${task.agent.namespace}/${task.agent.name} answered within ${String(timeoutMs)} ms`,
          ),
        )
      }, timeoutMs + DEADLINE_GRACE_MS)
      this.#pending.set(task.id, { task, onEvent: options.onEvent, resolve, timer })
    })
    let entry: string | null
    try {
      entry = await this.#redis.xadd(
        pool,
        '*',
        'task',
        JSON.stringify(task),
        'deadline',
        String(deadline),
        'reply',
        this.#reply,
        // Events cross Redis only for callers that read them (streaming).
        'events',
        options.onEvent === undefined ? '0' : '1',
      )
    } catch (err) {
      const p = this.#pending.get(task.id)
      if (p !== undefined) clearTimeout(p.timer)
      this.#pending.delete(task.id)
      throw this.#unavailable(err)
    }
    const wait = options.maxWaitMs
    const p = this.#pending.get(task.id)
    if (p !== undefined && entry !== null && wait !== undefined && wait < timeoutMs) {
      p.wait = setTimeout(() => void this.#dropIfWaiting(p, pool, entry, wait), wait)
    }
    const onAbort = () => {
      if (!this.#pending.has(task.id)) return
      void this.#cancel(task.id)
      this.#settle(task.id, notRun(task, 'cancelled', 'the task was cancelled'))
    }
    // The caller may have gone while the entry was being added (TypeScript cannot know it may have changed).
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (options.signal.aborted) onAbort()
    else {
      const { signal } = options
      signal.addEventListener('abort', onAbort, { once: true })
      if (p !== undefined) p.detach = () => signal.removeEventListener('abort', onAbort)
    }
    return { result }
  }

  /**
   * The caller's wait is over: a task no worker has taken yet leaves the pool's stream (it is not run later
   * for nobody) and its caller is told; one a worker holds runs on to its deadline.
   */
  async #dropIfWaiting(p: Pending, pool: string, entry: string, waitedMs: number): Promise<void> {
    if (this.#pending.get(p.task.id) !== p || p.attempt !== undefined) return
    try {
      const dropped = await this.#redis.eval(DROP_WAITING, 1, pool, GROUP, entry)
      if (Number(dropped) === 1) this.#settle(p.task.id, waitedTooLong(p.task, waitedMs))
    } catch {
      // Redis is away: the task's deadline still answers the caller.
    }
  }

  /**
   * Read from Redis, so every replica reports the whole pool: `queued` is what no worker has taken yet
   * (XLEN minus the group's pending entries: answered entries are deleted), `inFlight` what workers hold.
   */
  async stats(): Promise<readonly PoolStats[]> {
    if (!this.#up || this.#pools.size === 0) return []
    const pools = [...this.#pools]
    const pipeline = this.#redis.pipeline()
    for (const [pool, agent] of pools)
      pipeline
        .xlen(pool)
        .xpending(pool, GROUP)
        .eval(COUNT_ALIVE, 1, keys.alive(this.#prefix, agent), String(ALIVE_WINDOW_SECONDS))
    let replies: [Error | null, unknown][] | null
    try {
      replies = await pipeline.exec()
    } catch {
      return []
    }
    const out: PoolStats[] = []
    pools.forEach(([, agent], i) => {
      const length = replies?.[3 * i]?.[1]
      const pending = replies?.[3 * i + 1]?.[1]
      const workers = replies?.[3 * i + 2]?.[1]
      if (typeof length !== 'number' || !Array.isArray(pending)) return
      const held = Number(pending[0] ?? 0)
      out.push({
        pool: agentKey(agent),
        inFlight: held,
        queued: Math.max(0, length - held),
        concurrency: this.#options.limitsOf(agent).concurrency,
        ...(typeof workers === 'number' ? { workers } : {}),
      })
    })
    return out
  }

  /** Marks the task cancelled and tells the workers; the worker running it answers its submitter. */
  async cancel(taskId: string): Promise<boolean> {
    await this.#cancel(taskId)
    return true
  }

  /**
   * Stops reading answers. Callers still waiting are told the gateway shut down; their tasks run on in
   * their workers and end at their deadlines (nobody is there to read the answer).
   */
  async close(): Promise<void> {
    this.#closed = true
    for (const [id, p] of this.#pending) {
      this.#settle(id, notRun(p.task, 'cancelled', 'the gateway shut down before the task finished'))
    }
    this.#reader.disconnect()
    await this.#reading
    this.#redis.disconnect()
  }

  async #connected(): Promise<void> {
    if (this.#up) return
    const unavailable = () =>
      new QueueUnavailableError('the task queue (Redis) is not reachable; retry shortly')
    // It was up and went away: answer now. Only the very first connection is worth a short wait.
    if (this.#everUp) throw unavailable()
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<'late'>(
      (resolve) => (timer = setTimeout(() => resolve('late'), FIRST_CONNECT_WAIT_MS)),
    )
    const outcome = await Promise.race([this.#firstConnection, late])
    clearTimeout(timer)
    if (outcome === 'late') throw unavailable()
  }

  /**
   * A Redis failure as the error the gateway answers 503 for; anything else unchanged. Clients learn that the
   * queue failed, not where it lives or how: that goes to the log.
   */
  #unavailable(err: unknown): unknown {
    if (err instanceof QueueFullError || err instanceof QueueUnavailableError) return err
    this.#options.log?.warn('task queue command failed', {
      redis: redactedUrl(this.#options.url),
      error: err instanceof Error ? err.message : String(err),
    })
    return new QueueUnavailableError('the task queue (Redis) did not answer; retry shortly')
  }

  #isClosed(): boolean {
    return this.#closed
  }

  #settle(id: string, result: TaskResult): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#pending.delete(id)
    clearTimeout(p.timer)
    clearTimeout(p.wait)
    p.detach?.()
    p.resolve(result)
  }

  async #cancel(id: string): Promise<void> {
    try {
      await this.#redis.set(keys.cancelled(this.#prefix, id), '1', 'EX', KEEP_SECONDS)
      await this.#redis.publish(keys.cancelChannel(this.#prefix), id)
    } catch {
      // Best effort: the worker stops at the task's deadline anyway.
    }
  }

  async #readReplies(): Promise<void> {
    // From the start of the stream: an answer written before the first read must not be missed. Entries
    // for tasks this replica does not wait for (an earlier process with the same id) are skipped.
    let last = '0-0'
    let trimmed = Date.now()
    while (!this.#closed) {
      let batch: StreamBatch
      try {
        batch = await this.#reader.xread('BLOCK', BLOCK_MS, 'STREAMS', this.#reply, last)
      } catch {
        // close() may have run while the read blocked; otherwise Redis is away for a moment.
        if (this.#isClosed()) return
        await sleep(200)
        continue
      }
      for (const [, entries] of batch ?? []) {
        for (const [id, list] of entries) {
          last = id
          this.#deliver(fieldsOf(list))
        }
      }
      // What this replica has read is of no further use: keep its reply stream short.
      if (Date.now() - trimmed > TRIM_EVERY_MS) {
        trimmed = Date.now()
        void this.#redis.xtrim(this.#reply, 'MINID', last).catch(() => {})
      }
    }
  }

  /**
   * An event or a result, to the caller waiting for it. A task taken over from a worker that died runs again:
   * the first run's events are all a caller may have seen, so a retry's answer replaces nothing it was shown.
   */
  #deliver(f: ReplyEntry): void {
    const p = this.#pending.get(f.task ?? '')
    if (p === undefined) return
    const shown = p.attempt !== undefined && f.attempt !== p.attempt
    try {
      if (f.type === 'event') {
        if (shown) {
          this.#settle(p.task.id, notRun(p.task, 'error', RETRIED_MID_STREAM))
          return
        }
        p.attempt = f.attempt
        void p.onEvent?.(JSON.parse(f.data ?? 'null') as AgentEvent)
      } else if (f.type === 'result') {
        this.#settle(
          p.task.id,
          shown ? notRun(p.task, 'error', RETRIED_MID_STREAM) : (JSON.parse(f.data ?? 'null') as TaskResult),
        )
      }
    } catch {
      // Not an entry ark wrote; the task is still answered by its deadline.
    }
  }
}

function cancelled(task: Task): TaskResult {
  return notRun(task, 'cancelled', 'the task was cancelled before it was queued')
}
