/**
 * A2A tasks shared by gateway replicas through Redis, so that any replica answers GetTask, ListTasks,
 * SubscribeToTask and CancelTask for a task another replica started (replicas behind a plain load balancer,
 * no affinity).
 *
 * Keys, under the queue's prefix (default `ark`):
 * - `<p>:a2a:task:<agent key>:<task id>`: the task (the SDK's JSON form), expiring `ttlMs` after its last
 *   change;
 * - `<p>:a2a:tasks:<agent key>`: a sorted set of that agent's task ids by last change, for ListTasks (ids
 *   whose task expired are dropped from it as it is written);
 * - `<p>:a2a:events:<task id>`: a pub/sub channel on which the replica running a task publishes its events as
 *   they happen. Another replica that follows the task (SubscribeToTask, or CancelTask waiting for the end)
 *   subscribes to it. Pub/sub is fire-and-forget: a follower reads the task from the store once its
 *   subscription is in place, so an end published just before that is not missed.
 */
import { Redis } from 'ioredis'
import type { ListTasksRequest, ListTasksResponse, Task } from '@a2a-js/sdk'
import { StreamResponse, Task as TaskCodec } from '@a2a-js/sdk'
import { AgentEvent } from '@a2a-js/sdk/server'
import type {
  AgentExecutionEvent,
  EventListener,
  ExecutionEventBus,
  ExecutionEventBusManager,
  ExecutionEventName,
  FinishedListener,
  ServerCallContext,
  TaskStore,
} from '@a2a-js/sdk/server'
import type { Logger } from '../log.ts'
import { LocalBus } from './bus.ts'
import { RedisPushStore } from './push.ts'
import type { TaskRetention } from './task-store.ts'
import { DEFAULT_TASK_TTL_MS, TERMINAL_STATES, pageOf, scopeOf } from './task-store.ts'

/** A Redis command not answered in this time fails (a Redis that stops answering must not hang a request). */
const COMMAND_TIMEOUT_MS = 2000
/**
 * A follower that hears nothing of its task for this long stops following (its stream ends): the replica
 * running it may have died, and nothing else would end the follow. A task's events come at least as often as
 * its model and tool calls do.
 */
const FOLLOW_IDLE_MS = 10 * 60_000
/** ListTasks reads at most this many of an agent's newest tasks. */
const LIST_LIMIT = 10_000

export interface RedisA2AOptions {
  readonly url: string
  readonly prefix?: string
  readonly retention?: TaskRetention
  readonly log: Logger
}

/** The shared task store and event buses of one gateway replica. */
export class RedisA2A {
  readonly store: RedisTaskStore
  readonly buses: RedisBusManager
  readonly push: RedisPushStore
  readonly #redis: Redis
  readonly #subscriber: Redis

  constructor(options: RedisA2AOptions) {
    const prefix = `${options.prefix ?? 'ark'}:a2a`
    this.#redis = new Redis(options.url, {
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      commandTimeout: COMMAND_TIMEOUT_MS,
    })
    this.#subscriber = this.#redis.duplicate({ commandTimeout: COMMAND_TIMEOUT_MS })
    // ioredis reports connection errors as events; the commands that fail say why where they are used.
    this.#redis.on('error', () => undefined)
    this.#subscriber.on('error', () => undefined)
    this.store = new RedisTaskStore(this.#redis, prefix, options.retention ?? {})
    this.buses = new RedisBusManager(this.#redis, this.#subscriber, prefix, this.store, options.log)
    this.push = new RedisPushStore(this.#redis, prefix, options.retention?.ttlMs)
  }

  async close(): Promise<void> {
    this.#subscriber.disconnect()
    await this.#redis.quit().catch(() => undefined)
  }
}

export class RedisTaskStore implements TaskStore {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #ttlMs: number

  constructor(redis: Redis, prefix: string, retention: TaskRetention) {
    this.#redis = redis
    this.#prefix = prefix
    this.#ttlMs = retention.ttlMs ?? DEFAULT_TASK_TTL_MS
  }

  async save(task: Task, context: ServerCallContext): Promise<void> {
    const scope = scopeOf(context)
    const index = this.#index(scope)
    const now = Date.now()
    await this.#redis
      .multi()
      .set(this.#key(scope, task.id), JSON.stringify(TaskCodec.toJSON(task)), 'PX', this.#ttlMs)
      .zadd(index, now, task.id)
      .zremrangebyscore(index, '-inf', now - this.#ttlMs)
      .pexpire(index, this.#ttlMs)
      .exec()
  }

  async load(taskId: string, context: ServerCallContext): Promise<Task | undefined> {
    const text = await this.#redis.get(this.#key(scopeOf(context), taskId))
    return text === null ? undefined : TaskCodec.fromJSON(JSON.parse(text))
  }

  async list(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    const scope = scopeOf(context)
    const ids = await this.#redis.zrevrangebyscore(
      this.#index(scope),
      '+inf',
      Date.now() - this.#ttlMs,
      'LIMIT',
      0,
      LIST_LIMIT,
    )
    const tasks: Task[] = []
    for (let i = 0; i < ids.length; i += 500) {
      const texts = await this.#redis.mget(ids.slice(i, i + 500).map((id) => this.#key(scope, id)))
      for (const text of texts) if (text !== null) tasks.push(TaskCodec.fromJSON(JSON.parse(text)))
    }
    return pageOf(tasks, params)
  }

  #key(scope: string, id: string): string {
    return `${this.#prefix}:task:${scope}:${id}`
  }

  #index(scope: string): string {
    return `${this.#prefix}:tasks:${scope}`
  }
}

/**
 * Buses for tasks this replica runs (their events also go out on the task's channel), and followers for tasks
 * other replicas run (fed from the channel).
 */
export class RedisBusManager implements ExecutionEventBusManager {
  readonly #redis: Redis
  readonly #subscriber: Redis
  readonly #prefix: string
  readonly #store: TaskStore
  readonly #log: Logger
  readonly #local = new Map<string, PublishingBus>()
  /** Channel to the followers reading it, and the subscription they wait on. */
  readonly #followers = new Map<string, { buses: Set<FollowerBus>; subscribed: Promise<unknown> }>()

  constructor(redis: Redis, subscriber: Redis, prefix: string, store: TaskStore, log: Logger) {
    this.#redis = redis
    this.#subscriber = subscriber
    this.#prefix = prefix
    this.#store = store
    this.#log = log
    subscriber.on('message', (channel: string, text: string) => {
      const followers = this.#followers.get(channel)
      if (followers === undefined) return
      const event = decodeEvent(text)
      if (event === undefined) return
      for (const bus of followers.buses) bus.deliver(event)
    })
  }

  createOrGetByTaskId(taskId: string): ExecutionEventBus {
    let bus = this.#local.get(taskId)
    if (bus === undefined) {
      const channel = this.#channel(taskId)
      bus = new PublishingBus((event) => {
        this.#redis.publish(channel, encodeEvent(event)).catch((err: unknown) => {
          this.#log.warn('an A2A task event did not reach Redis', {
            task: taskId,
            error: err instanceof Error ? err.message : String(err),
          })
        })
      })
      this.#local.set(taskId, bus)
    }
    return bus
  }

  getByTaskId(taskId: string, context?: ServerCallContext): ExecutionEventBus | undefined {
    const local = this.#local.get(taskId)
    if (local !== undefined) return local
    // Run elsewhere (or nowhere any more: then the store says it ended, or the caller learns it is unknown).
    const channel = this.#channel(taskId)
    let followers = this.#followers.get(channel)
    if (followers === undefined) {
      const created: { buses: Set<FollowerBus>; subscribed: Promise<unknown> } = {
        buses: new Set(),
        subscribed: this.#subscriber.subscribe(channel),
      }
      // A subscription that failed (Redis away) is not left for later followers to wait on: its followers end.
      created.subscribed.catch(() => {
        if (this.#followers.get(channel) === created) this.#followers.delete(channel)
        for (const bus of created.buses) bus.finished()
      })
      followers = created
      this.#followers.set(channel, followers)
    }
    const bus: FollowerBus = new FollowerBus(() => {
      this.#unfollow(channel, bus)
    })
    followers.buses.add(bus)
    if (context !== undefined) {
      // Catch up once subscribed: an end published before the subscription took effect is in the store.
      followers.subscribed
        .then(() => this.#store.load(taskId, context))
        .then((task) => {
          if (task?.status !== undefined && TERMINAL_STATES.has(task.status.state)) {
            bus.deliver(
              AgentEvent.statusUpdate({
                taskId,
                contextId: task.contextId,
                status: task.status,
                metadata: {},
              }),
            )
          }
        })
        .catch(() => undefined)
    }
    return bus
  }

  cleanupByTaskId(taskId: string): void {
    this.#local.get(taskId)?.removeAllListeners()
    this.#local.delete(taskId)
  }

  #unfollow(channel: string, bus: FollowerBus): void {
    const followers = this.#followers.get(channel)
    if (followers === undefined) return
    followers.buses.delete(bus)
    if (followers.buses.size > 0) return
    this.#followers.delete(channel)
    this.#subscriber.unsubscribe(channel).catch(() => undefined)
  }

  #channel(taskId: string): string {
    return `${this.#prefix}:events:${taskId}`
  }
}

/** The bus of a task run here: listeners here, and the task's channel for followers elsewhere. */
class PublishingBus extends LocalBus {
  readonly #send: (event: AgentExecutionEvent) => void

  constructor(send: (event: AgentExecutionEvent) => void) {
    super()
    this.#send = send
  }

  override publish(event: AgentExecutionEvent): void {
    super.publish(event)
    this.#send(event)
  }
}

/**
 * The bus of a task run elsewhere, fed from its channel. What is published on it stays here (a cancel's
 * fallback end). It leaves the channel when its last event listener goes (the SDK's queue stops at the end,
 * or when the client goes away).
 */
class FollowerBus implements ExecutionEventBus {
  readonly #inner = new LocalBus()
  readonly #leave: () => void
  #listeners = 0
  #left = false
  /** Ends a follow that hears nothing for FOLLOW_IDLE_MS: the replica running the task may be gone. */
  #idle: ReturnType<typeof setTimeout> | undefined

  constructor(leave: () => void) {
    this.#leave = leave
    this.#arm()
  }

  deliver(event: AgentExecutionEvent): void {
    if (this.#left) return
    this.#arm()
    this.#inner.publish(event)
  }

  #arm(): void {
    clearTimeout(this.#idle)
    this.#idle = setTimeout(() => this.finished(), FOLLOW_IDLE_MS)
    ;(this.#idle as { unref?: () => void }).unref?.()
  }

  publish(event: AgentExecutionEvent): void {
    this.#inner.publish(event)
  }

  finished(): void {
    this.#inner.finished()
    this.#stop()
  }

  on(eventName: 'event', listener: EventListener): this
  on(eventName: 'finished', listener: FinishedListener): this
  on(eventName: ExecutionEventName, listener: EventListener | FinishedListener): this {
    if (eventName === 'event') {
      this.#listeners++
      this.#inner.on('event', listener)
    } else this.#inner.on('finished', listener as FinishedListener)
    return this
  }

  off(eventName: 'event', listener: EventListener): this
  off(eventName: 'finished', listener: FinishedListener): this
  off(eventName: ExecutionEventName, listener: EventListener | FinishedListener): this {
    if (eventName === 'event') {
      this.#inner.off('event', listener)
      if (--this.#listeners <= 0) this.#stop()
    } else this.#inner.off('finished', listener as FinishedListener)
    return this
  }

  once(eventName: 'event', listener: EventListener): this
  once(eventName: 'finished', listener: FinishedListener): this
  once(eventName: ExecutionEventName, listener: EventListener | FinishedListener): this {
    if (eventName === 'finished') {
      this.#inner.once('finished', listener as FinishedListener)
      return this
    }
    // Counted like on(), and off() when it fires, so that the count of listeners stays right.
    const once: EventListener = (event) => {
      this.off('event', once)
      listener(event)
    }
    return this.on('event', once)
  }

  removeAllListeners(eventName?: ExecutionEventName): this {
    this.#inner.removeAllListeners(eventName)
    if (eventName !== 'finished') this.#stop()
    return this
  }

  #stop(): void {
    clearTimeout(this.#idle)
    if (this.#left) return
    this.#left = true
    this.#leave()
  }
}

function encodeEvent(event: AgentExecutionEvent): string {
  return JSON.stringify(StreamResponse.toJSON({ payload: { $case: event.kind, value: event.data } } as never))
}

function decodeEvent(text: string): AgentExecutionEvent | undefined {
  try {
    const payload = StreamResponse.fromJSON(JSON.parse(text)).payload
    switch (payload?.$case) {
      case 'task':
        return AgentEvent.task(payload.value)
      case 'message':
        return AgentEvent.message(payload.value)
      case 'statusUpdate':
        return AgentEvent.statusUpdate(payload.value)
      case 'artifactUpdate':
        return AgentEvent.artifactUpdate(payload.value)
      default:
        return undefined
    }
  } catch {
    return undefined
  }
}
