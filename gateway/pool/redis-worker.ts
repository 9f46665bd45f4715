/**
 * A pool worker's side of the Redis Streams queue (key layout in redis-streams.ts): takes tasks from its
 * agent's stream as a consumer of the group `workers`, runs them, and answers to the gateway replica that
 * submitted each one. It also takes over tasks that a dead or stuck worker left behind, retries them with
 * backoff, dead-letters those that no worker finishes, and on stop() finishes or hands back what it holds.
 */
import { Redis } from 'ioredis'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { AgentEvent, Outcome } from '../runtime/events.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { notRun } from '../runtime/task.ts'
import type { TaskRunner } from './queue.ts'
import type { StreamBatch, TaskEntry } from './redis-streams.ts'
import {
  ALIVE_EVERY_MS,
  BLOCK_MS,
  DEAD_AFTER_SECONDS,
  GROUP,
  ORPHANED,
  ORPHAN_IDLE_MS,
  SAY_ALIVE,
  KEEP_SECONDS,
  STREAM_MAXLEN,
  createGroup,
  entryTime,
  fieldsOf,
  isNoGroup,
  keys,
  sleep,
} from './redis-streams.ts'

/** How long past a task's deadline a worker keeps trying to deliver its answer while Redis is away. */
const DELIVERY_GRACE_MS = 5000
/** Idle time given to handed-back entries: far past any takeover wait, so the next worker takes them. */
const HANDED_BACK_IDLE_MS = 365 * 24 * 3600 * 1000

/** What a worker reports as it goes (metrics). */
export interface WorkerObserver {
  /** A task starts; `waitSeconds` since it was queued; `retry` when it was taken over from another worker. */
  started(info: { readonly waitSeconds: number; readonly retry: boolean }): void
  finished(info: { readonly runSeconds: number; readonly outcome: Outcome }): void
  /** An entry was taken over from a worker that stopped renewing it. */
  reclaimed(): void
  deadLettered(): void
  /** Tasks a stopping worker could not finish in time and gave back to the pool. */
  handedBack(count: number): void
}

export interface RedisWorkerOptions {
  readonly url: string
  readonly prefix?: string
  /** The pool this worker serves. */
  readonly agent: ObjectRef
  /** Consumer name within the pool's group (default random). */
  readonly consumer?: string
  /** Tasks this worker runs at once (the agent's maxConcurrentTasks); read before every take. */
  readonly maxConcurrentTasks: number | (() => number)
  readonly run: TaskRunner
  /**
   * A task held this long without renewal is taken over (default 30 s), whoever holds it: a worker that is
   * alive but stuck. Live workers renew their running tasks every second (or at a third of this, if less),
   * so only a dead or stuck worker's tasks go idle. Each further attempt waits twice as long as the one before
   * (backoff). The tasks of a worker that died (it stopped saying it is alive) are taken over within about
   * four seconds instead, whatever this says.
   */
  readonly claimIdleMs?: number
  /** Attempts before a task goes to the dead-letter stream (default 3). */
  readonly maxAttempts?: number
  /** While false the worker takes no task, new or taken over (semantic readiness). Default: always. */
  readonly ready?: () => boolean
  readonly observer?: WorkerObserver
}

interface Running {
  readonly controller: AbortController
  /** stop() gave the task back, or another worker took it over: its result is not this worker's to send. */
  released: boolean
}

/** Dead letters kept per pool: each holds its whole task (a conversation of up to the body limit). */
const DEAD_MAXLEN = 1000
/** How long stop() waits for aborted runs to wind down before it lets go of them. */
const RELEASE_WAIT_MS = 5000

export class RedisWorker {
  readonly #options: RedisWorkerOptions
  readonly #prefix: string
  readonly #pool: string
  readonly #consumer: string
  readonly #redis: Redis
  readonly #reader: Redis
  readonly #subscriber: Redis
  /** By stream entry id: the running tasks, whose entries are renewed so that no other worker takes them. */
  readonly #running = new Map<string, Running>()
  /** Task id to entry id, for cancellation. */
  readonly #taskEntries = new Map<string, string>()
  readonly #tasks = new Set<Promise<void>>()
  #stopping = false
  /** Resolves when stop() begins: wakes a take loop that waits for a free slot. */
  readonly #stopRequested: Promise<void>
  #requestStop: () => void = () => {}
  #loop: Promise<void> | undefined
  #maintenance: ReturnType<typeof setInterval> | undefined
  #heartbeat: ReturnType<typeof setInterval> | undefined

  constructor(options: RedisWorkerOptions) {
    this.#options = options
    this.#prefix = options.prefix ?? 'ark'
    this.#pool = keys.pool(this.#prefix, options.agent)
    this.#consumer = options.consumer ?? crypto.randomUUID()
    this.#stopRequested = new Promise((resolve) => (this.#requestStop = resolve))
    this.#redis = new Redis(options.url, { maxRetriesPerRequest: 1 })
    this.#reader = this.#redis.duplicate()
    this.#subscriber = this.#redis.duplicate()
    for (const r of [this.#redis, this.#reader, this.#subscriber]) r.on('error', () => {})
  }

  get inFlight(): number {
    return this.#running.size
  }

  get connected(): boolean {
    return this.#redis.status === 'ready'
  }

  /** Resolves once the worker reads its stream; while Redis cannot be reached, it keeps trying. */
  async start(): Promise<void> {
    for (;;) {
      try {
        await createGroup(this.#redis, this.#pool)
        break
      } catch (err) {
        if (this.#stopping) return
        // A wrong-type key or a refused command will not get better by waiting.
        if (err instanceof Error && /WRONGTYPE|NOPERM|NOAUTH|WRONGPASS/.test(err.message)) throw err
        await sleep(500)
      }
    }
    const cancel = keys.cancelChannel(this.#prefix)
    const handoff = keys.handoffChannel(this.#prefix)
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (channel === cancel) {
        // The task, and the tasks it runs through others: a team's member turns (`<id>.<turn>`) and an agent's
        // subtasks (`<id>.<suffix>`), whose runner may be on another replica, out of reach of its own cancel.
        for (const [task, entry] of this.#taskEntries) {
          if (task !== message && !task.startsWith(`${message}.`)) continue
          this.#running.get(entry)?.controller.abort(new DOMException('the task was cancelled', 'AbortError'))
        }
      } else if (channel === handoff && message === this.#pool) void this.#reclaim()
    })
    await this.#subscriber.subscribe(cancel, handoff)
    // Gateways count the pool's workers by this. One that is not ready (its model fails the semantic check)
    // still counts: it takes the pool's tasks once its model answers again, and they wait for it meanwhile.
    const alive = () => {
      if (this.#stopping) return
      this.#redis
        .eval(SAY_ALIVE, 1, keys.alive(this.#prefix, this.#options.agent), this.#consumer)
        .catch(() => undefined)
    }
    alive()
    this.#heartbeat = setInterval(alive, ALIVE_EVERY_MS)
    this.#loop = this.#take()
    // Renewals and the look for dead workers' tasks every second tell a dead worker's tasks apart from a live
    // one's within seconds; the takeover of idle tasks (a live but stuck worker's) keeps its own, slower pace.
    const idleEvery = Math.max(10, Math.floor(this.#claimIdleMs / 3))
    const every = Math.min(1000, idleEvery)
    let lastIdleRound = 0
    this.#maintenance = setInterval(() => {
      void this.#renew()
        .then(() => this.#reclaimOrphans())
        .then(() => {
          const now = Date.now()
          if (now - lastIdleRound < idleEvery - every / 2) return undefined
          lastIdleRound = now
          return this.#reclaim()
        })
    }, every)
  }

  get #claimIdleMs(): number {
    return this.#options.claimIdleMs ?? 30_000
  }

  #max(): number {
    const m = this.#options.maxConcurrentTasks
    return Math.max(1, typeof m === 'number' ? m : m())
  }

  #ready(): boolean {
    return this.#options.ready?.() ?? true
  }

  #isStopping(): boolean {
    return this.#stopping
  }

  /**
   * Stops taking tasks and lets the running ones finish for up to `graceMs` (default: wait for all), still
   * renewing them so that nobody takes them over meanwhile. Those still running then are stopped and handed
   * back: their entries are made idle at once and the pool's other workers are told, so one of them runs the
   * task instead; the hand-back does not count as an attempt.
   */
  async stop(options: { readonly graceMs?: number } = {}): Promise<void> {
    this.#stopping = true
    this.#requestStop()
    // Not alive for gateways from now on: what they would send it, nobody would take.
    clearInterval(this.#heartbeat)
    // Not awaited: a Redis that hangs must not eat into the grace of the tasks running.
    void this.#redis.zrem(keys.alive(this.#prefix, this.#options.agent), this.#consumer).catch(() => 0)
    // A blocked read may lose entries it was being handed: they stay pending, unrenewed, and are taken over.
    this.#reader.disconnect()
    await this.#loop
    const all = Promise.allSettled([...this.#tasks])
    if (options.graceMs === undefined) await all
    else if ((await within(all, options.graceMs)) === 'late') await this.#handBack()
    clearInterval(this.#maintenance)
    await this.#forgetConsumer()
    this.#subscriber.disconnect()
    this.#redis.disconnect()
  }

  async #handBack(): Promise<void> {
    const entries = [...this.#running.entries()].filter(([, r]) => !r.released)
    for (const [, r] of entries) {
      r.released = true
      r.controller.abort(new DOMException('the worker is shutting down', 'AbortError'))
    }
    // A run that ignores its signal is left behind: its result will not be sent.
    await within(Promise.allSettled([...this.#tasks]), RELEASE_WAIT_MS)
    await this.#release(entries.map(([id]) => id))
    this.#options.observer?.handedBack(entries.length)
  }

  /** Makes entries this worker holds idle at once, without using up an attempt, and tells the pool. */
  async #release(ids: readonly string[]): Promise<void> {
    try {
      for (const id of ids) {
        // RETRYCOUNT keeps the delivery count as it was before this worker took the entry.
        const info = (await this.#redis.xpending(this.#pool, GROUP, id, id, 1)) as [
          string,
          string,
          number,
          number,
        ][]
        const deliveries = info[0]?.[3] ?? 1
        await this.#redis.xclaim(
          this.#pool,
          GROUP,
          this.#consumer,
          0,
          id,
          'IDLE',
          HANDED_BACK_IDLE_MS,
          'RETRYCOUNT',
          Math.max(0, deliveries - 1),
          'JUSTID',
        )
      }
      await this.#redis.publish(keys.handoffChannel(this.#prefix), this.#pool)
    } catch {
      // Redis is away: the entries go idle and are taken over after claimIdleMs all the same.
    }
  }

  /** A consumer that holds nothing is removed, so that the group's list does not grow with every restart. */
  async #forgetConsumer(): Promise<void> {
    try {
      const held = await this.#redis.xpending(this.#pool, GROUP, '-', '+', 1, this.#consumer)
      if (held.length === 0) await this.#redis.xgroup('DELCONSUMER', this.#pool, GROUP, this.#consumer)
    } catch {
      // Redis is away: an idle consumer in the list harms nothing.
    }
  }

  async #take(): Promise<void> {
    while (!this.#stopping) {
      if (!this.#ready()) {
        // Not ready (the semantic probe failed): leave the pool's tasks to workers that are.
        await sleep(200)
        continue
      }
      const room = this.#max() - this.#running.size
      if (room <= 0) {
        await Promise.race([...this.#tasks, this.#stopRequested])
        continue
      }
      let batch: StreamBatch
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
        )) as StreamBatch
      } catch (err) {
        // stop() may have run while the read blocked.
        if (this.#isStopping()) return
        if (isNoGroup(err)) await createGroup(this.#redis, this.#pool).catch(() => {})
        else await sleep(200)
        continue
      }
      for (const [, entries] of batch ?? [])
        for (const [id, fields] of entries) this.#start(id, fieldsOf(fields), false)
    }
  }

  #start(entryId: string, fields: TaskEntry, retry: boolean): void {
    const running: Running = { controller: new AbortController(), released: false }
    this.#running.set(entryId, running)
    const work = this.#handle(entryId, fields, running, retry)
      // Redis went away mid-task: the entry, no longer renewed, is taken over later (by this worker too).
      .catch(() => {})
      .finally(() => {
        this.#running.delete(entryId)
        this.#tasks.delete(work)
      })
    this.#tasks.add(work)
  }

  /**
   * Resets the idle time of the entries this worker runs and still owns: it is alive, they are not to be
   * taken over. An entry another worker has taken over meanwhile (this one stalled past claimIdleMs) is not
   * taken back: its run here is stopped and its result dropped, the other worker answers.
   */
  async #renew(): Promise<void> {
    if (this.#running.size === 0) return
    try {
      const held = await this.#redis.xpending(
        this.#pool,
        GROUP,
        '-',
        '+',
        this.#running.size + 100,
        this.#consumer,
      )
      const owned = new Set((held as [string, ...unknown[]][]).map(([id]) => id))
      const renew: string[] = []
      for (const [id, r] of this.#running) {
        if (r.released) continue
        if (owned.has(id)) renew.push(id)
        else {
          r.released = true
          r.controller.abort(new DOMException('another worker took the task over', 'AbortError'))
        }
      }
      if (renew.length > 0) await this.#redis.xclaim(this.#pool, GROUP, this.#consumer, 0, ...renew, 'JUSTID')
    } catch {
      // Redis is away; the next round renews them.
    }
  }

  /**
   * Takes over tasks held too long without renewal (their worker died or hangs, or this worker could not
   * deliver an answer while Redis was away), with backoff per attempt; past maxAttempts a task is
   * dead-lettered and its caller told why.
   */
  async #reclaim(): Promise<void> {
    const room = this.#max() - this.#running.size
    if (room <= 0 || this.#stopping || !this.#ready()) return
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
      if (this.#running.has(id)) continue
      // The n-th attempt waits base * 2^(n-1) after the previous one.
      const wait = base * 2 ** Math.max(0, deliveries - 1)
      if (idle < wait) continue
      const took = await this.#takeOver(id, consumer, deliveries, wait)
      if (took === 'stop') return
      if (took) taken++
    }
  }

  /**
   * Takes over at once the tasks of consumers that stopped saying they are alive (killed, their host gone):
   * idle since their worker's last renewal, without the backoff of tasks that may be what kills workers
   * (those use up their attempts and are dead-lettered all the same).
   */
  async #reclaimOrphans(): Promise<void> {
    const room = this.#max() - this.#running.size
    if (room <= 0 || this.#stopping || !this.#ready()) return
    let orphans: [string, string, number, number][]
    try {
      orphans = (await this.#redis.eval(
        ORPHANED,
        2,
        this.#pool,
        keys.alive(this.#prefix, this.#options.agent),
        GROUP,
        String(DEAD_AFTER_SECONDS),
        String(ORPHAN_IDLE_MS),
        String(Math.min(room, 50)),
      )) as typeof orphans
    } catch {
      return
    }
    let taken = 0
    for (const [id, consumer, , deliveries] of orphans) {
      if (taken >= room) return
      if (this.#running.has(id) || consumer === this.#consumer) continue
      const took = await this.#takeOver(id, consumer, deliveries, ORPHAN_IDLE_MS)
      if (took === 'stop') return
      if (took) taken++
    }
  }

  /**
   * Claims one entry still idle `minIdleMs` (so of two workers that try, one gets it) and runs it, or
   * dead-letters it past maxAttempts: true when this worker took it, 'stop' when it should look no further.
   */
  async #takeOver(
    id: string,
    consumer: string,
    deliveries: number,
    minIdleMs: number,
  ): Promise<boolean | 'stop'> {
    let claimed: [string, string[]][]
    try {
      claimed = (await this.#redis.xclaim(this.#pool, GROUP, this.#consumer, minIdleMs, id)) as typeof claimed
    } catch {
      return 'stop'
    }
    const entry = claimed[0]
    // Another worker took it first, or it was answered and deleted meanwhile.
    if (entry === undefined || entry[1].length === 0) return false
    if (this.#isStopping()) {
      // stop() began while this was being claimed: give it straight back.
      await this.#release([id])
      return 'stop'
    }
    this.#options.observer?.reclaimed()
    const fields = fieldsOf(entry[1]) as TaskEntry
    const attempts = deliveries + 1
    if (attempts > (this.#options.maxAttempts ?? 3))
      await this.#deadLetter(id, fields, attempts - 1, consumer).catch(() => {})
    else this.#start(id, fields, true)
    return true
  }

  async #deadLetter(entryId: string, fields: TaskEntry, attempts: number, lastConsumer: string) {
    const reason = `the task was taken by ${String(attempts)} workers and none finished it (the last: ${lastConsumer})`
    const task = parseTask(fields.task)
    const tx = this.#redis
      .multi()
      .xadd(
        keys.dead(this.#prefix, this.#options.agent),
        'MAXLEN',
        '~',
        DEAD_MAXLEN,
        '*',
        ...(Object.entries(fields).flat() as string[]),
        'reason',
        reason,
      )
    if (task !== undefined && fields.reply !== undefined)
      reply(
        tx,
        { to: fields.reply, task: task.id, attempt: 'dead-letter' },
        'result',
        notRun(task, 'error', reason),
      )
    await tx.xack(this.#pool, GROUP, entryId).xdel(this.#pool, entryId).exec()
    this.#options.observer?.deadLettered()
  }

  async #handle(entryId: string, fields: TaskEntry, running: Running, retry: boolean): Promise<void> {
    const task = parseTask(fields.task)
    if (task === undefined) {
      // Not a task ark wrote: nobody to answer; drop it so it does not come back.
      await this.#redis.multi().xack(this.#pool, GROUP, entryId).xdel(this.#pool, entryId).exec()
      return
    }
    // Each run of a task is told apart: the gateway does not splice a retry's events onto a dead run's.
    const to: ReplyTo | undefined =
      fields.reply === undefined
        ? undefined
        : { to: fields.reply, task: task.id, attempt: crypto.randomUUID().slice(0, 8) }
    const events = to !== undefined && fields.events !== '0'
    const deadline = Number(fields.deadline ?? '0')
    const { controller } = running
    this.#taskEntries.set(task.id, entryId)
    const observer = this.#options.observer
    try {
      let result: TaskResult
      if ((await this.#redis.exists(keys.cancelled(this.#prefix, task.id))) === 1) {
        result = notRun(task, 'cancelled', 'the task was cancelled while it waited')
      } else if (deadline > 0 && Date.now() >= deadline) {
        result = notRun(task, 'timeout', 'the task waited past its deadline')
      } else {
        observer?.started({ waitSeconds: Math.max(0, Date.now() - entryTime(entryId)) / 1000, retry })
        const started = performance.now()
        const timer =
          deadline > 0
            ? setTimeout(() => {
                controller.abort(new DOMException('the task reached its deadline', 'TimeoutError'))
              }, deadline - Date.now())
            : undefined
        try {
          result = await this.#options.run(task, {
            signal: controller.signal,
            ...(events ? { emit: (e: AgentEvent) => void this.#event(to, e) } : {}),
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
        observer?.finished({ runSeconds: (performance.now() - started) / 1000, outcome: result.outcome })
      }
      if (running.released) return
      await this.#answer(entryId, to, result, deadline)
    } finally {
      this.#taskEntries.delete(task.id)
    }
  }

  /**
   * Sends the result and acknowledges the entry in one transaction. While Redis is away it keeps trying until
   * shortly after the task's deadline; then it gives up, and the entry is taken over and answered by whoever
   * takes it (a caller already answered at the deadline ignores that second answer).
   */
  async #answer(
    entryId: string,
    to: ReplyTo | undefined,
    result: TaskResult,
    deadline: number,
  ): Promise<void> {
    const giveUp = (deadline > 0 ? deadline : Date.now() + 60_000) + DELIVERY_GRACE_MS
    for (;;) {
      const tx = this.#redis.multi()
      if (to !== undefined) reply(tx, to, 'result', result)
      try {
        await tx.xack(this.#pool, GROUP, entryId).xdel(this.#pool, entryId).exec()
        return
      } catch {
        if (Date.now() > giveUp) return
        await sleep(250)
      }
    }
  }

  async #event(to: ReplyTo, event: AgentEvent): Promise<void> {
    try {
      await reply(this.#redis.multi(), to, 'event', event).exec()
    } catch {
      // An event that cannot be sent is lost; the result is what the caller must get, and #answer retries it.
    }
  }
}

type Transaction = ReturnType<Redis['multi']>

/** Where one run of a task answers: the submitting gateway's reply stream. */
interface ReplyTo {
  readonly to: string
  readonly task: string
  /** This run of the task. */
  readonly attempt: string
}

/** Queues an entry for a gateway's reply stream; a gateway that is gone leaves it to expire. */
function reply(tx: Transaction, r: ReplyTo, type: 'event' | 'result', data: unknown): Transaction {
  return tx
    .xadd(
      r.to,
      'MAXLEN',
      '~',
      STREAM_MAXLEN,
      '*',
      'task',
      r.task,
      'type',
      type,
      'data',
      JSON.stringify(data),
      'attempt',
      r.attempt,
    )
    .expire(r.to, KEEP_SECONDS)
}

function parseTask(text: string | undefined): Task | undefined {
  if (text === undefined) return undefined
  try {
    const task = JSON.parse(text) as Task
    return typeof task.id === 'string' && typeof task.agent === 'object' ? task : undefined
  } catch {
    return undefined
  }
}

/** Waits for `work` at most `ms`. */
async function within(work: Promise<unknown>, ms: number): Promise<'done' | 'late'> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)))
  const outcome = await Promise.race([work.then(() => 'done' as const), late])
  clearTimeout(timer)
  return outcome
}
