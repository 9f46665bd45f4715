/**
 * The task queue between the gateway and agent pools. The gateway submits; a pool worker runs the task and
 * its events flow back to whoever submitted. `MemoryQueue` runs pools in this process (`ark dev`); a Redis
 * Streams queue fills the same interface for many gateways and workers, and the gateway does not change.
 */
import type { ObjectRef } from '../../controller/api/index.ts'
import type { EventSink } from '../runtime/events.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { notRun } from '../runtime/task.ts'

export interface SubmitOptions {
  /** Aborting it cancels the task, waiting or running. */
  readonly signal: AbortSignal
  readonly onEvent?: EventSink
  /**
   * How long the task may wait for a worker; past it, if no worker has taken it, it is dropped from the queue
   * and answered `queue_timeout` (nothing ran). Default: until its deadline.
   */
  readonly maxWaitMs?: number
}

/** What a task that waited too long is answered (outcome `queue_timeout`). */
export function waitedTooLong(task: Task, waitedMs: number): TaskResult {
  return notRun(
    task,
    'queue_timeout',
    `the task waited ${String(Math.round(waitedMs / 1000))} s for a free worker of agent ${task.agent.namespace}/${task.agent.name} and was not started (--queue-wait); it is busy: retry later`,
  )
}

/** A task the queue has accepted: it will produce exactly one result. */
export interface Admission {
  readonly result: Promise<TaskResult>
}

export interface PoolLimits {
  /** Tasks running at once (ArkAgent: replicas x maxConcurrentTasks). */
  readonly concurrency: number
  /** Tasks waiting beyond that; more are refused. */
  readonly maxQueued: number
}

export interface PoolStats {
  /** `<namespace>/<name>` of the agent. */
  readonly pool: string
  /** Tasks a worker has taken and not answered yet. */
  readonly inFlight: number
  /** Tasks no worker has taken yet. */
  readonly queued: number
  readonly concurrency: number
  /** Workers of the pool that said they were alive lately (Redis pools); absent where the pool is this process. */
  readonly workers?: number
}

export interface TaskQueue {
  /**
   * Accepts the task into its agent's pool and resolves once it is accepted (with its result still to come),
   * or rejects with QueueFullError when the pool cannot take it.
   */
  submit(task: Task, options: SubmitOptions): Promise<Admission>
  /**
   * Cancels a task by id wherever it waits or runs, for a caller other than its submitter (an A2A CancelTask
   * that reached another gateway replica). True when the request went where the task may be (its run then
   * ends cancelled and its submitter hears so); false when this queue cannot reach it.
   */
  cancel(taskId: string): Promise<boolean>
  /** Per pool; a shared queue reads it from where the pools live (hence the promise). */
  stats(): readonly PoolStats[] | Promise<readonly PoolStats[]>
  close(): Promise<void>
}

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError'
  readonly retryAfterSeconds: number
  readonly pool: ObjectRef
  constructor(pool: ObjectRef, limits: PoolLimits, retryAfterSeconds: number) {
    super(
      `agent ${pool.namespace}/${pool.name} is busy: ${String(limits.concurrency)} tasks running and ${String(limits.maxQueued)} waiting; retry after ${String(retryAfterSeconds)} s`,
    )
    this.pool = pool
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** The queue cannot be reached (Redis is down): the gateway answers 503 and the client may retry. */
export class QueueUnavailableError extends Error {
  override readonly name = 'QueueUnavailableError'
  readonly retryAfterSeconds = 1
}

/** A worker that has not said it is alive for this long is not counted (it reports every ALIVE_EVERY_MS). */
export const ALIVE_WINDOW_SECONDS = 10

/**
 * No worker serves the pool (none has said it is alive lately): the gateway answers 503 at once instead of
 * holding the caller until the task's deadline.
 */
export class NoWorkersError extends Error {
  override readonly name = 'NoWorkersError'
  readonly retryAfterSeconds = 5
  constructor(pool: ObjectRef) {
    super(
      `no worker serves agent ${pool.namespace}/${pool.name} now (none has reported alive in the last ${String(ALIVE_WINDOW_SECONDS)} s): its pool is not running, or still starting`,
    )
  }
}

/** The worker side: runs one task to its result. */
export type TaskRunner = (
  task: Task,
  context: { signal: AbortSignal; emit?: EventSink },
) => Promise<TaskResult>
