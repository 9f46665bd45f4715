/**
 * The gateway replica's side of the Redis Streams queue (key layout in redis-streams.ts): submits tasks to
 * pool streams, reads their events and results from its own reply stream, and answers each caller exactly
 * once: with the first result that arrives, or at the task's deadline when none does.
 */
import { Redis } from 'ioredis'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { AgentEvent } from '../runtime/events.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { notRun } from '../runtime/task.ts'
import type { Admission, PoolLimits, PoolStats, SubmitOptions, TaskQueue } from './queue.ts'
import { QueueFullError, QueueUnavailableError } from './queue.ts'
import type { ReplyEntry, StreamBatch } from './redis-streams.ts'
import {
  BLOCK_MS,
  GROUP,
  KEEP_SECONDS,
  createGroup,
  fieldsOf,
  keys,
  poolName,
  redactedUrl,
  sleep,
} from './redis-streams.ts'

/** After its deadline, a task's caller waits this much longer for the worker's own timeout answer. */
const DEADLINE_GRACE_MS = 2000
/** How long a submit waits for the first connection before it answers that Redis is down. */
const FIRST_CONNECT_WAIT_MS = 1000

export interface RedisQueueOptions {
  readonly url: string
  /** Key prefix (default `ark`). */
  readonly prefix?: string
  /** Identifies this gateway replica's reply stream (default random). */
  readonly id?: string
  readonly limitsOf: (agent: ObjectRef) => PoolLimits
  /** Deadline of a task, from its agent (limits.timeoutSeconds) or the default. */
  readonly timeoutMsOf: (agent: ObjectRef) => number
}

interface Pending {
  readonly task: Task
  readonly onEvent: ((e: AgentEvent) => void) | undefined
  readonly resolve: (r: TaskResult) => void
  readonly timer: ReturnType<typeof setTimeout>
}

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
  /** Pool keys its stats report: those it submitted to, and those it watches. */
  readonly #pools = new Set<string>()
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
    this.#redis = new Redis(options.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false })
    this.#reader = this.#redis.duplicate()
    this.#firstConnection = new Promise((resolve) => this.#redis.once('ready', () => resolve()))
    this.#redis.on('ready', () => {
      this.#up = true
      this.#everUp = true
    })
    for (const event of ['close', 'reconnecting', 'end']) this.#redis.on(event, () => (this.#up = false))
    this.#redis.on('error', () => {})
    this.#reader.on('error', () => {})
    this.#reading = this.#readReplies()
  }

  /** Reports this pool in stats() too, though this replica has not submitted to it (a worker's own pool). */
  watch(agent: ObjectRef): void {
    this.#pools.add(keys.pool(this.#prefix, agent))
  }

  /** Whether Redis answers now (for readiness and logs). */
  get connected(): boolean {
    return this.#up
  }

  async submit(task: Task, options: SubmitOptions): Promise<Admission> {
    if (this.#closed) throw new Error('the queue is closed')
    if (options.signal.aborted) return { result: Promise.resolve(cancelled(task)) }
    const pool = keys.pool(this.#prefix, task.agent)
    await this.#connected()
    const limits = this.#options.limitsOf(task.agent)
    try {
      if (!this.#groups.has(pool)) {
        await createGroup(this.#redis, pool)
        this.#groups.add(pool)
        this.#pools.add(pool)
      }
      const backlog = await this.#redis.xlen(pool)
      if (backlog >= limits.concurrency + limits.maxQueued) {
        throw new QueueFullError(
          task.agent,
          limits,
          Math.max(1, Math.ceil(backlog / Math.max(1, limits.concurrency))),
        )
      }
    } catch (err) {
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
    try {
      await this.#redis.xadd(
        pool,
        '*',
        'task',
        JSON.stringify(task),
        'deadline',
        String(deadline),
        'reply',
        this.#reply,
      )
    } catch (err) {
      const p = this.#pending.get(task.id)
      if (p !== undefined) clearTimeout(p.timer)
      this.#pending.delete(task.id)
      throw this.#unavailable(err)
    }
    const onAbort = () => {
      void this.#cancel(task.id)
      this.#settle(task.id, notRun(task, 'cancelled', 'the task was cancelled'))
    }
    // The caller may have gone while the entry was being added (TypeScript cannot know it may have changed).
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
    if (options.signal.aborted) onAbort()
    else options.signal.addEventListener('abort', onAbort, { once: true })
    return { result }
  }

  /**
   * Read from Redis, so every replica reports the whole pool: `queued` is what no worker has taken yet
   * (XLEN minus the group's pending entries: answered entries are deleted), `inFlight` what workers hold.
   */
  async stats(): Promise<readonly PoolStats[]> {
    if (!this.#up || this.#pools.size === 0) return []
    const pools = [...this.#pools]
    const pipeline = this.#redis.pipeline()
    for (const pool of pools) pipeline.xlen(pool).xpending(pool, GROUP)
    let replies: [Error | null, unknown][] | null
    try {
      replies = await pipeline.exec()
    } catch {
      return []
    }
    const out: PoolStats[] = []
    pools.forEach((pool, i) => {
      const length = replies?.[2 * i]?.[1]
      const pending = replies?.[2 * i + 1]?.[1]
      if (typeof length !== 'number' || !Array.isArray(pending)) return
      const held = Number(pending[0] ?? 0)
      const name = poolName(this.#prefix, pool)
      const [namespace = '', agent = ''] = name.split('/')
      out.push({
        pool: name,
        inFlight: held,
        queued: Math.max(0, length - held),
        concurrency: this.#options.limitsOf({ namespace, name: agent }).concurrency,
      })
    })
    return out
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
      new QueueUnavailableError(
        `the task queue (Redis at ${redactedUrl(this.#options.url)}) is not reachable; retry shortly`,
      )
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

  /** A Redis failure as the error the gateway answers 503 for; anything else unchanged. */
  #unavailable(err: unknown): unknown {
    if (err instanceof QueueFullError || err instanceof QueueUnavailableError) return err
    return new QueueUnavailableError(
      `the task queue (Redis at ${redactedUrl(this.#options.url)}) failed: ${err instanceof Error ? err.message : String(err)}; retry shortly`,
    )
  }

  #isClosed(): boolean {
    return this.#closed
  }

  #settle(id: string, result: TaskResult): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#pending.delete(id)
    clearTimeout(p.timer)
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
          const f = fieldsOf(list) as ReplyEntry
          const p = this.#pending.get(f.task ?? '')
          if (p === undefined) continue
          try {
            if (f.type === 'event') p.onEvent?.(JSON.parse(f.data ?? 'null') as AgentEvent)
            else if (f.type === 'result') this.#settle(p.task.id, JSON.parse(f.data ?? 'null') as TaskResult)
          } catch {
            // Not an entry ark wrote; the task is still answered by its deadline.
          }
        }
      }
    }
  }
}

function cancelled(task: Task): TaskResult {
  return notRun(task, 'cancelled', 'the task was cancelled before it was queued')
}
