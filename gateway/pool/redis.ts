/**
 * The task queue on Redis Streams, for many gateways and many pool workers (`RedisQueue` is the gateway's
 * side, `RedisWorker` a pool worker's). The gateway does not change: it submits to a TaskQueue either way.
 *
 * Keys (all under `prefix`, default `ark`):
 * - `<p>:pool:<ns>/<name>`: one stream per agent pool, read by the consumer group `workers`; each worker
 *   process is a consumer. An entry is acknowledged and deleted once its answer is sent, so the stream's
 *   length is the pool's backlog (waiting + running), which is what admission and autoscalers read.
 * - `<p>:reply:<gateway id>`: one stream per gateway replica, carrying the events and the result of every
 *   task that replica submitted. A stream rather than pub/sub: a gateway that loses its connection for a
 *   moment reads on from its last id and loses nothing, and one blocking XREAD per replica serves all of
 *   its tasks. Per-task reply streams would cost a key, and a blocking read, per request. Trimmed to about
 *   REPLY_MAXLEN entries.
 * - `<p>:cancel`: a pub/sub channel of cancelled task ids (best effort: a worker that misses one still stops
 *   at the task's deadline), and `<p>:cancelled:<task id>` keys (an hour) so a task cancelled while it waits
 *   is skipped when a worker picks it up.
 */
import { Redis } from 'ioredis'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { AgentEvent } from '../runtime/events.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { notRun } from '../runtime/task.ts'
import type { Admission, PoolLimits, PoolStats, SubmitOptions, TaskQueue, TaskRunner } from './queue.ts'
import { QueueFullError } from './queue.ts'

const GROUP = 'workers'
const REPLY_MAXLEN = 10_000
/** A blocking read returns this often, so that close() and new pools are noticed. */
const BLOCK_MS = 1000
/** After its deadline, a task's caller waits this much longer for the worker's own timeout answer. */
const DEADLINE_GRACE_MS = 2000
/** How long a submit waits for a connection that is being made before it answers that Redis is down. */
const CONNECT_WAIT_MS = 1000

/** Redis cannot be reached: the gateway answers 503. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError'
}

/** The URL without its password, for messages. */
function redactedUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.href
  } catch {
    return 'the configured URL'
  }
}

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
  readonly pool: string
  readonly onEvent: ((e: AgentEvent) => void) | undefined
  readonly resolve: (r: TaskResult) => void
  readonly timer: ReturnType<typeof setTimeout>
}

export function poolKey(prefix: string, agent: ObjectRef): string {
  return `${prefix}:pool:${agent.namespace}/${agent.name}`
}

/** The gateway's side: submits tasks to pool streams and reads their answers from its reply stream. */
export class RedisQueue implements TaskQueue {
  readonly #options: RedisQueueOptions
  readonly #prefix: string
  readonly #reply: string
  /** Commands; the reply reader blocks, so it has a connection of its own. */
  readonly #redis: Redis
  readonly #reader: Redis
  readonly #pending = new Map<string, Pending>()
  readonly #groups = new Set<string>()
  #closed = false
  readonly #reading: Promise<void>

  constructor(options: RedisQueueOptions) {
    this.#options = options
    this.#prefix = options.prefix ?? 'ark'
    this.#reply = `${this.#prefix}:reply:${options.id ?? crypto.randomUUID()}`
    this.#redis = new Redis(options.url, {
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
    })
    this.#reader = this.#redis.duplicate()
    // Connection errors are answered per request (503); the client reconnects by itself.
    this.#redis.on('error', () => {})
    this.#reader.on('error', () => {})
    this.#reading = this.#readReplies()
  }

  async submit(task: Task, options: SubmitOptions): Promise<Admission> {
    if (this.#closed) throw new Error('the queue is closed')
    const pool = poolKey(this.#prefix, task.agent)
    if (options.signal.aborted) return { result: Promise.resolve(cancelled(task)) }
    await this.#connected()
    await this.#ensureGroup(pool)
    const limits = this.#options.limitsOf(task.agent)
    const backlog = await this.#redis.xlen(pool)
    if (backlog >= limits.concurrency + limits.maxQueued) {
      throw new QueueFullError(
        task.agent,
        limits,
        Math.max(1, Math.ceil(backlog / Math.max(1, limits.concurrency))),
      )
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
      this.#pending.set(task.id, { task, pool, onEvent: options.onEvent, resolve, timer })
    })
    options.signal.addEventListener(
      'abort',
      () => {
        void this.#cancel(task.id)
        this.#settle(task.id, notRun(task, 'cancelled', 'the task was cancelled'))
      },
      { once: true },
    )
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
      throw err
    }
    return { result }
  }

  stats(): readonly PoolStats[] {
    const byPool = new Map<string, number>()
    for (const p of this.#pending.values()) byPool.set(p.pool, (byPool.get(p.pool) ?? 0) + 1)
    const prefix = `${this.#prefix}:pool:`
    return [...byPool.entries()].map(([pool, n]) => {
      const name = pool.slice(prefix.length)
      const [namespace = '', agent = ''] = name.split('/')
      return {
        pool: name,
        inFlight: n,
        queued: 0,
        concurrency: this.#options.limitsOf({ namespace, name: agent }).concurrency,
      }
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const [id, p] of this.#pending) {
      this.#settle(id, notRun(p.task, 'cancelled', 'the gateway shut down before the task finished'))
    }
    this.#reader.disconnect()
    await this.#reading
    this.#redis.disconnect()
  }

  /**
   * Commands fail at once while Redis is unreachable (no offline queue: a caller gets an error now, not a
   * request held until Redis returns); only a connection that is still being made is waited for, briefly.
   */
  async #connected(): Promise<void> {
    const redis = this.#redis
    if (redis.status === 'ready') return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        redis.off('ready', onReady)
        reject(new RedisUnavailableError(`Redis at ${redactedUrl(this.#options.url)} is not reachable`))
      }, CONNECT_WAIT_MS)
      const onReady = (): void => {
        clearTimeout(timer)
        resolve()
      }
      redis.once('ready', onReady)
    })
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
      await this.#redis.set(`${this.#prefix}:cancelled:${id}`, '1', 'EX', 3600)
      await this.#redis.publish(`${this.#prefix}:cancel`, id)
    } catch {
      // Best effort: the worker stops at the task's deadline anyway.
    }
  }

  async #ensureGroup(pool: string): Promise<void> {
    if (this.#groups.has(pool)) return
    await createGroup(this.#redis, pool)
    this.#groups.add(pool)
  }

  async #readReplies(): Promise<void> {
    // From the start of the stream: an answer written before the first read must not be missed. Entries
    // for tasks this replica does not wait for (an earlier process with the same id) are skipped.
    let last = '0-0'
    while (!this.#closed) {
      let batch: [string, [string, string[]][]][] | null
      try {
        batch = await this.#reader.xread('BLOCK', BLOCK_MS, 'STREAMS', this.#reply, last)
      } catch {
        // close() may have run while the read blocked.
        if (this.#isClosed()) return
        await new Promise((r) => setTimeout(r, 200))
        continue
      }
      for (const [, entries] of batch ?? []) {
        for (const [id, fields] of entries) {
          last = id
          const f = fieldsOf(fields)
          const p = this.#pending.get(f.task ?? '')
          if (p === undefined) continue
          if (f.type === 'event') p.onEvent?.(JSON.parse(f.data ?? 'null') as AgentEvent)
          else if (f.type === 'result') this.#settle(p.task.id, JSON.parse(f.data ?? 'null') as TaskResult)
        }
      }
    }
  }
}

export interface RedisWorkerOptions {
  readonly url: string
  readonly prefix?: string
  /** The pool this worker serves. */
  readonly agent: ObjectRef
  /** Consumer name within the pool's group (default random). */
  readonly consumer?: string
  /** Tasks this worker runs at once (the agent's maxConcurrentTasks). */
  readonly maxConcurrentTasks: number
  readonly run: TaskRunner
  /**
   * A task held this long by a worker that shows no sign of life is taken over (default 30 s). Live workers
   * renew their running tasks at a third of it, so only a dead or stuck worker's tasks go idle. Each further
   * attempt waits twice as long as the one before (backoff).
   */
  readonly claimIdleMs?: number
  /** Attempts before a task goes to the dead-letter stream `<prefix>:dead:<ns>/<name>` (default 3). */
  readonly maxAttempts?: number
}

/** A pool worker: takes tasks from its agent's stream, runs them, answers to the submitting gateway. */
export class RedisWorker {
  readonly #options: RedisWorkerOptions
  readonly #prefix: string
  readonly #pool: string
  readonly #consumer: string
  readonly #redis: Redis
  readonly #reader: Redis
  readonly #subscriber: Redis
  readonly #running = new Map<string, AbortController>()
  readonly #tasks = new Set<Promise<void>>()
  /** Stream entry ids of the running tasks, renewed so that no other worker takes them over. */
  readonly #entries = new Set<string>()
  #stopping = false
  #loop: Promise<void> | undefined
  #maintenance: ReturnType<typeof setInterval> | undefined

  constructor(options: RedisWorkerOptions) {
    this.#options = options
    this.#prefix = options.prefix ?? 'ark'
    this.#pool = poolKey(this.#prefix, options.agent)
    this.#consumer = options.consumer ?? crypto.randomUUID()
    this.#redis = new Redis(options.url, { maxRetriesPerRequest: 1 })
    this.#reader = this.#redis.duplicate()
    this.#subscriber = this.#redis.duplicate()
    for (const r of [this.#redis, this.#reader, this.#subscriber]) r.on('error', () => {})
  }

  #isStopping(): boolean {
    return this.#stopping
  }

  async start(): Promise<void> {
    await createGroup(this.#redis, this.#pool)
    await this.#subscriber.subscribe(`${this.#prefix}:cancel`)
    this.#subscriber.on('message', (_channel: string, id: string) => {
      this.#running.get(id)?.abort(new DOMException('the task was cancelled', 'AbortError'))
    })
    this.#loop = this.#take()
    const every = Math.max(10, Math.floor(this.#claimIdleMs / 3))
    this.#maintenance = setInterval(() => {
      void this.#renew().then(() => this.#reclaim())
    }, every)
  }

  get #claimIdleMs(): number {
    return this.#options.claimIdleMs ?? 30_000
  }

  /** Stops taking tasks and waits for the running ones to finish. */
  async stop(): Promise<void> {
    this.#stopping = true
    clearInterval(this.#maintenance)
    this.#reader.disconnect()
    await this.#loop
    await Promise.allSettled([...this.#tasks])
    this.#subscriber.disconnect()
    this.#redis.disconnect()
  }

  async #take(): Promise<void> {
    const max = Math.max(1, this.#options.maxConcurrentTasks)
    while (!this.#stopping) {
      const room = max - this.#running.size
      if (room <= 0) {
        await Promise.race(this.#tasks)
        continue
      }
      let batch: [string, [string, string[]][]][] | null
      try {
        batch = (await this.#reader.xreadgroup(
          'GROUP',
          GROUP,
          this.#consumer,
          'COUNT',
          room,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          this.#pool,
          '>',
        )) as typeof batch
      } catch {
        // stop() may have run while the read blocked.
        if (this.#isStopping()) return
        await new Promise((r) => setTimeout(r, 200))
        continue
      }
      for (const [, entries] of batch ?? [])
        for (const [id, fields] of entries) this.#start(id, fieldsOf(fields))
    }
  }

  #start(entryId: string, fields: Record<string, string>): void {
    this.#entries.add(entryId)
    const work = this.#handle(entryId, fields).finally(() => {
      this.#entries.delete(entryId)
      this.#tasks.delete(work)
    })
    this.#tasks.add(work)
  }

  /** Resets the idle time of this worker's running entries: it is alive, they are not to be taken over. */
  async #renew(): Promise<void> {
    if (this.#entries.size === 0 || this.#stopping) return
    try {
      await this.#redis.xclaim(this.#pool, GROUP, this.#consumer, 0, ...this.#entries, 'JUSTID')
    } catch {
      // Redis is away; the next round renews them.
    }
  }

  /**
   * Takes over tasks that another worker held too long without renewing them (it died, or hangs), with
   * backoff per attempt; past maxAttempts a task is dead-lettered and its caller told why.
   */
  async #reclaim(): Promise<void> {
    const room = Math.max(1, this.#options.maxConcurrentTasks) - this.#running.size
    if (room <= 0 || this.#stopping) return
    const base = this.#claimIdleMs
    let pending: [string, string, number, number][]
    try {
      pending = (await this.#redis.xpending(this.#pool, GROUP, 'IDLE', base, '-', '+', 50)) as typeof pending
    } catch {
      return
    }
    let taken = 0
    for (const [id, consumer, idle, deliveries] of pending) {
      if (taken >= room) return
      if (consumer === this.#consumer) continue
      // The n-th attempt waits base * 2^(n-1) after the previous one.
      const wait = base * 2 ** Math.max(0, deliveries - 1)
      if (idle < wait) continue
      let claimed: [string, string[]][]
      try {
        claimed = (await this.#redis.xclaim(this.#pool, GROUP, this.#consumer, wait, id)) as typeof claimed
      } catch {
        return
      }
      const entry = claimed[0]
      // Another worker took it first, or it was answered and deleted meanwhile.
      if (entry === undefined || entry[1].length === 0) continue
      taken++
      const fields = fieldsOf(entry[1])
      const attempts = deliveries + 1
      if (attempts > (this.#options.maxAttempts ?? 3))
        await this.#deadLetter(id, fields, attempts - 1, consumer)
      else this.#start(id, fields)
    }
  }

  async #deadLetter(entryId: string, fields: Record<string, string>, attempts: number, lastConsumer: string) {
    const reason = `the task was taken by ${String(attempts)} workers and none finished it (the last: ${lastConsumer})`
    await this.#redis.xadd(
      `${this.#prefix}:dead:${this.#options.agent.namespace}/${this.#options.agent.name}`,
      'MAXLEN',
      '~',
      REPLY_MAXLEN,
      '*',
      ...Object.entries(fields).flat(),
      'reason',
      reason,
    )
    let task: Task | undefined
    try {
      task = JSON.parse(fields.task ?? '') as Task
    } catch {
      task = undefined
    }
    if (task !== undefined && fields.reply !== undefined) {
      await this.#send(fields.reply, task.id, 'result', notRun(task, 'error', reason))
    }
    await this.#done(entryId)
  }

  async #handle(entryId: string, fields: Record<string, string>): Promise<void> {
    const reply = fields.reply
    let task: Task
    try {
      task = JSON.parse(fields.task ?? '') as Task
    } catch {
      // Not a task ark wrote: nobody to answer; drop it so it does not come back.
      await this.#done(entryId)
      return
    }
    const deadline = Number(fields.deadline ?? '0')
    const controller = new AbortController()
    this.#running.set(task.id, controller)
    try {
      let result: TaskResult
      if ((await this.#redis.exists(`${this.#prefix}:cancelled:${task.id}`)) === 1) {
        result = notRun(task, 'cancelled', 'the task was cancelled while it waited')
      } else if (deadline > 0 && Date.now() >= deadline) {
        result = notRun(task, 'timeout', 'the task waited past its deadline')
      } else {
        const timer =
          deadline > 0
            ? setTimeout(() => {
                controller.abort(new DOMException('the task reached its deadline', 'TimeoutError'))
              }, deadline - Date.now())
            : undefined
        try {
          result = await this.#options.run(task, {
            signal: controller.signal,
            ...(reply === undefined
              ? {}
              : { emit: (e: AgentEvent) => void this.#send(reply, task.id, 'event', e) }),
          })
        } catch (err) {
          result = notRun(
            task,
            'error',
            `the runtime failed: ${err instanceof Error ? err.message : String(err)}`,
          )
        } finally {
          clearTimeout(timer)
        }
      }
      if (reply !== undefined) await this.#send(reply, task.id, 'result', result)
      await this.#done(entryId)
    } finally {
      this.#running.delete(task.id)
    }
  }

  async #send(reply: string, task: string, type: 'event' | 'result', data: unknown): Promise<void> {
    try {
      // A gateway that is gone for good leaves its reply stream behind: it expires an hour after the last answer.
      await this.#redis
        .multi()
        .xadd(
          reply,
          'MAXLEN',
          '~',
          REPLY_MAXLEN,
          '*',
          'task',
          task,
          'type',
          type,
          'data',
          JSON.stringify(data),
        )
        .expire(reply, 3600)
        .exec()
    } catch {
      // An event that cannot be sent is lost; the result is sent again by whoever reclaims the task.
    }
  }

  async #done(entryId: string): Promise<void> {
    await this.#redis.multi().xack(this.#pool, GROUP, entryId).xdel(this.#pool, entryId).exec()
  }
}

async function createGroup(redis: Redis, pool: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', pool, GROUP, '0', 'MKSTREAM')
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err
  }
}

function fieldsOf(list: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i] as string] = list[i + 1] as string
  return out
}

function cancelled(task: Task): TaskResult {
  return notRun(task, 'cancelled', 'the task was cancelled before it was queued')
}
