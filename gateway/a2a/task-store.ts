/**
 * Where A2A tasks live between a caller's requests (GetTask, ListTasks, SubscribeToTask, CancelTask): the
 * SDK's TaskStore interface, scoped by agent and bounded in time and number.
 *
 * Scope: each agent's endpoint sees only its own tasks. The scope comes from the route (the agent in the
 * path, put into the call context's state by server.ts), never from the request body, so a caller cannot
 * reach another agent's tasks by naming a tenant.
 *
 * Expiry: a task is kept for `ttlMs` after its last change (default 24 h); the memory store also keeps at
 * most `maxTasks`, dropping the least recently changed first (a running task changes as it runs, so the
 * ones dropped are finished ones).
 */
import type { ListTasksRequest, ListTasksResponse, Task } from '@a2a-js/sdk'
import { TaskState } from '@a2a-js/sdk'
import type { ServerCallContext, TaskStore } from '@a2a-js/sdk/server'
import { RequestMalformedError } from '@a2a-js/sdk/errors'

/** The states a task does not leave. */
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set([
  TaskState.TASK_STATE_COMPLETED,
  TaskState.TASK_STATE_FAILED,
  TaskState.TASK_STATE_CANCELED,
  TaskState.TASK_STATE_REJECTED,
])

/** The key under which server.ts puts the agent a call is scoped to (its resource key). */
export const AGENT_SCOPE = 'ark.agent'

export interface TaskRetention {
  /** How long a task is kept after its last change (default 24 h). */
  readonly ttlMs?: number
  /** Most tasks the memory store holds (default 10,000). */
  readonly maxTasks?: number
}

export const DEFAULT_TASK_TTL_MS = 24 * 3_600_000
const DEFAULT_MAX_TASKS = 10_000

/** The agent a call is scoped to; a call without one (a bug) sees nothing. */
export function scopeOf(context: ServerCallContext): string {
  const scope = context.state.get(AGENT_SCOPE)
  if (typeof scope !== 'string') throw new Error('A2A call without an agent scope')
  return scope
}

export class MemoryTaskStore implements TaskStore {
  readonly #ttlMs: number
  readonly #maxTasks: number
  /** `<scope>\n<id>` to the task; Map order is the order of last change (save deletes, then sets). */
  readonly #tasks = new Map<
    string,
    { readonly task: Task; readonly scope: string; readonly expires: number }
  >()

  constructor(retention: TaskRetention = {}) {
    this.#ttlMs = retention.ttlMs ?? DEFAULT_TASK_TTL_MS
    this.#maxTasks = retention.maxTasks ?? DEFAULT_MAX_TASKS
  }

  save(task: Task, context: ServerCallContext): Promise<void> {
    const scope = scopeOf(context)
    const key = `${scope}\n${task.id}`
    this.#tasks.delete(key)
    this.#tasks.set(key, { task: copyOf(task), scope, expires: Date.now() + this.#ttlMs })
    for (const oldest of this.#tasks.keys()) {
      if (this.#tasks.size <= this.#maxTasks) break
      this.#tasks.delete(oldest)
    }
    return Promise.resolve()
  }

  load(taskId: string, context: ServerCallContext): Promise<Task | undefined> {
    const key = `${scopeOf(context)}\n${taskId}`
    const held = this.#tasks.get(key)
    if (held === undefined) return Promise.resolve(undefined)
    if (held.expires <= Date.now()) {
      this.#tasks.delete(key)
      return Promise.resolve(undefined)
    }
    return Promise.resolve(copyOf(held.task))
  }

  list(params: ListTasksRequest, context: ServerCallContext): Promise<ListTasksResponse> {
    const scope = scopeOf(context)
    const now = Date.now()
    const tasks: Task[] = []
    for (const [key, held] of this.#tasks) {
      if (held.expires <= now) this.#tasks.delete(key)
      else if (held.scope === scope) tasks.push(held.task)
    }
    // A bad page token rejects the promise rather than throwing at the caller.
    return Promise.resolve().then(() => pageOf(tasks, params))
  }

  /** Tasks held (all agents), for tests and metrics. */
  get size(): number {
    return this.#tasks.size
  }
}

/**
 * One page of ListTasks over a scope's tasks: filtered by context, state and time, newest status first (ties
 * by id), from the cursor on. The cursor is the last task's (timestamp, id); a cursor whose task has gone
 * still pages on from where it was. Tasks come back cloned, without artifacts unless asked for.
 */
export function pageOf(all: readonly Task[], params: ListTasksRequest): ListTasksResponse {
  const after =
    params.statusTimestampAfter === undefined ? undefined : Date.parse(params.statusTimestampAfter)
  // Unset filters arrive as '' and 0 (UNSPECIFIED) from the SDK's parser, or absent from a direct caller.
  const contextId = (params as { contextId?: string }).contextId ?? ''
  const state = (params as { status?: number }).status ?? 0
  const matching = all.filter(
    (t) =>
      (contextId === '' || t.contextId === contextId) &&
      (state === 0 || (t.status?.state as number | undefined) === state) &&
      (after === undefined || Date.parse(t.status?.timestamp ?? '') > after),
  )
  const order = (a: Task, b: Task): number => {
    const byTime = (b.status?.timestamp ?? '').localeCompare(a.status?.timestamp ?? '')
    return byTime !== 0 ? byTime : b.id.localeCompare(a.id)
  }
  matching.sort(order)
  let from = 0
  const pageToken = (params as { pageToken?: string }).pageToken ?? ''
  if (pageToken !== '') {
    const cursor = decodeCursor(pageToken)
    const at = { id: cursor.id, status: { timestamp: cursor.timestamp } } as Task
    from = matching.findIndex((t) => order(at, t) < 0)
    if (from === -1) from = matching.length
  }
  const pageSize = params.pageSize ?? 50
  const page = matching.slice(from, from + pageSize)
  const last = page.at(-1)
  const more = last !== undefined && from + page.length < matching.length
  return {
    tasks: page.map((t) => {
      const copy = copyOf(t)
      if (params.includeArtifacts !== true) copy.artifacts = []
      return copy
    }),
    nextPageToken: more ? encodeCursor(last.status?.timestamp ?? '', last.id) : '',
    pageSize,
    totalSize: matching.length,
  }
}

function encodeCursor(timestamp: string, id: string): string {
  // Percent-encoded first: btoa takes Latin-1 only.
  return btoa(encodeURIComponent(JSON.stringify([timestamp, id])))
}

function decodeCursor(token: string): { timestamp: string; id: string } {
  try {
    const [timestamp, id] = JSON.parse(decodeURIComponent(atob(token))) as unknown[]
    if (typeof timestamp === 'string' && typeof id === 'string') return { timestamp, id }
  } catch {
    // reported below
  }
  throw new RequestMalformedError('pageToken is not a token an earlier ListTasks returned')
}

/**
 * A deep copy of a task (plain objects, arrays, strings, numbers and the byte arrays of raw parts): what the
 * store hands out can be changed by its taker (the SDK trims history in place) without changing what it
 * holds. Several times faster than structuredClone, which serializes, on the request path's hot loop.
 */
export function copyOf<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value
  // A copy, not a view (a Buffer's slice is a view), as a plain Uint8Array, which the SDK encodes alike.
  if (value instanceof Uint8Array) return new Uint8Array(value) as T
  if (Array.isArray(value)) return value.map((v: unknown) => copyOf(v)) as T
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = copyOf(v)
  return out as T
}
