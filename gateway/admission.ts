/**
 * Admission: the one door to the agent pools, whatever the protocol. It resolves the target in the catalog,
 * checks that it can run now, builds the task and submits it to the target's pool with the caller's
 * cancellation, and records the invocation when it ends. The answer is either the run (its events flow to
 * the caller's sink, its result comes later) or a `Refusal`: an HTTP-like status, a machine-readable code
 * and a message, which each protocol renders in its own shape (OpenAI's error body, a JSON-RPC error, a
 * Query's status condition). Nothing here knows about OpenAI.
 */
import type { ObjectRef, ResourceOf } from '../controller/api/index.ts'
import type { Catalog } from '../controller/store/index.ts'
import type { Logger } from './log.ts'
import type { Metrics } from './metrics.ts'
import { QueueFullError, QueueUnavailableError } from './pool/queue.ts'
import type { TaskQueue } from './pool/queue.ts'
import type { EventSink } from './runtime/events.ts'
import type { ChatMessage } from './runtime/messages.ts'
import { queryParametersOf } from './runtime/prepare.ts'
import { agentKey } from './runtime/subtasks.ts'
import type { Task, TaskResult } from './runtime/task.ts'
import { succeeded } from './runtime/task.ts'

/** Why a request was not admitted, for a protocol to render. */
export interface Refusal {
  /** The HTTP status that fits (400, 404, 429, 503, ...); protocols without HTTP map it. */
  readonly status: number
  /**
   * Machine-readable: `not_found`, `unsupported_target`, `ScaledToZero`, `missing_parameter`, `queue_full`,
   * `queue_unavailable`, or the target's Available reason (`ToolNotFound`, ...) when it is not Available.
   */
  readonly code: string
  readonly message: string
  /** The request field the refusal is about (`model`, `metadata.name`), when there is one. */
  readonly param?: string
  /** The target as clients name it, when it resolved: the metrics label of a refused request. */
  readonly target?: string
  /** When the same request may succeed: `Retry-After`. */
  readonly retryAfterSeconds?: number
  /** False when retrying would fail the same way (the target is misconfigured, not busy). */
  readonly retry?: boolean
}

/** What a caller asks of the target that `check` found. */
export interface SubmitRequest {
  readonly messages: readonly ChatMessage[]
  /** Values for the agent's queryParameterRef parameters. */
  readonly parameters: Readonly<Record<string, string>>
  /** Stream answer text as it is produced (to `onEvent`). */
  readonly stream: boolean
  /** Aborting it cancels the run, waiting or running. */
  readonly signal: AbortSignal
  /**
   * The run's events. A promise returned for `llm.delta` pauses the run until it settles (backpressure from a
   * slow client), where the run is in this process.
   */
  readonly onEvent?: EventSink
  /** The task id (the protocol's own request id); default random. */
  readonly id?: string
}

export interface Run {
  readonly id: string
  /** The target as clients name it (`agent/x`): the label for metrics, the `model` of an answer. */
  readonly target: string
  readonly agent: ObjectRef
  readonly result: Promise<TaskResult>
}

export type Admitted = { readonly run: Run } | { readonly refusal: Refusal }

/** How a failed run reads to a caller, in the same terms as a refusal. */
export interface Failure {
  readonly status: number
  readonly code: string
  readonly message: string
}

export interface AdmissionDeps {
  readonly catalog: Catalog
  readonly queue: TaskQueue
  readonly metrics: Metrics
  readonly log: Logger
}

/** A target that may run now: what `check` found, for `submit`. */
export interface Checked {
  readonly agent: ResourceOf<'Agent'>
  /** The target as clients name it (`agent/x`): the label for metrics, the `model` of an answer. */
  readonly target: string
}

export class Admission {
  readonly #deps: AdmissionDeps

  constructor(deps: AdmissionDeps) {
    this.#deps = deps
  }

  /**
   * Resolves what the caller named (`agent/<name>`, `agent/<ns>/<name>`, a bare agent name) and checks that
   * it can run now with these parameters: one Map lookup and a look at its status, no preparation. Separate
   * from `submit` so that a protocol can shape its answer (a stream's identity) around the resolved target
   * before anything runs.
   */
  check(name: string, parameters: Readonly<Record<string, string>>): Checked | { readonly refusal: Refusal } {
    const { catalog } = this.#deps
    const target = catalog.resolveTarget(name)
    if (target === undefined) {
      return refuse({
        status: 404,
        code: 'not_found',
        param: 'model',
        message: `\`${name.slice(0, 200)}\` does not exist. Name an agent (agent/<name>), a team (team/<name>) or a model (model/<name>); GET /v1/models lists them.`,
      })
    }
    const id = catalog.targetId(target.kind, target.resource.ref)
    if (target.kind !== 'Agent') {
      return refuse({
        status: 400,
        code: 'unsupported_target',
        param: 'model',
        target: id,
        retry: false,
        message:
          target.kind === 'Team'
            ? `${id}: team targets need the team strategies, which this version of ark does not serve yet; call an agent (agent/<name>).`
            : `${id} is a model: it is called directly, not through an agent pool.`,
      })
    }
    const agent = target.resource as ResourceOf<'Agent'>
    const notAvailable = unavailable(catalog, agent.key, id)
    if (notAvailable !== undefined) return { refusal: notAvailable }
    if (agent.spec.replicas === 0) {
      return refuse({
        status: 503,
        code: 'ScaledToZero',
        target: id,
        retry: false,
        message: `${id} is scaled to zero (replicas: 0); scale it up to serve requests`,
      })
    }
    for (const p of queryParametersOf(agent)) {
      if (parameters[p] === undefined) {
        return refuse({
          status: 400,
          code: 'missing_parameter',
          param: `metadata.${p}`,
          target: id,
          message: `${id} needs the parameter "${p}": send it in the request's metadata, e.g. "metadata": {"${p}": "..."}`,
        })
      }
    }
    return { agent, target: id }
  }

  /** Submits the task to the agent's pool: the run, or the refusal of a full or unreachable queue. */
  async submit(checked: Checked, request: SubmitRequest): Promise<Admitted> {
    const { agent, target } = checked
    const task: Task = {
      id: request.id ?? crypto.randomUUID(),
      agent: agent.ref,
      messages: request.messages,
      parameters: request.parameters,
      stream: request.stream,
      depth: 0,
    }
    const pool = agentKey(agent.ref)
    const started = performance.now()
    let result: Promise<TaskResult>
    try {
      const admission = await this.#deps.queue.submit(task, {
        signal: request.signal,
        ...(request.onEvent === undefined ? {} : { onEvent: request.onEvent }),
      })
      result = admission.result
    } catch (err) {
      if (err instanceof QueueFullError) {
        this.#deps.metrics.rejected(pool)
        return refuse({
          status: 429,
          code: 'queue_full',
          target,
          message: err.message,
          retryAfterSeconds: err.retryAfterSeconds,
        })
      }
      if (err instanceof QueueUnavailableError) {
        return refuse({
          status: 503,
          code: 'queue_unavailable',
          target,
          message: err.message,
          retryAfterSeconds: err.retryAfterSeconds,
        })
      }
      throw err
    }
    const recorded = result.then((r) => {
      this.#finished(target, pool, task, r, started)
      return r
    })
    return { run: { id: task.id, target, agent: agent.ref, result: recorded } }
  }

  /** Cancels a task that another caller (or another replica) submitted: see TaskQueue.cancel. */
  cancel(taskId: string): Promise<boolean> {
    return this.#deps.queue.cancel(taskId)
  }

  #finished(id: string, pool: string, task: Task, result: TaskResult, started: number): void {
    this.#deps.metrics.invocation(
      pool,
      succeeded(result) ? '' : result.outcome,
      (performance.now() - started) / 1000,
    )
    if (!succeeded(result) && result.outcome !== 'cancelled') {
      this.#deps.log.warn('agent run failed', {
        agent: id,
        task: task.id,
        outcome: result.outcome,
        error: result.error,
      })
    }
  }
}

/** The refusal for a target whose Available condition is not True, with its reason as the code. */
export function unavailable(catalog: Catalog, key: string, id: string): Refusal | undefined {
  const available = catalog.status(key)?.conditions.find((x) => x.type === 'Available')
  if (available?.status === 'True') return undefined
  const reason = available?.reason ?? 'Pending'
  return {
    status: 503,
    code: reason,
    target: id,
    retry: false,
    message: `${id} is not available: ${reason}: ${available?.message ?? 'its availability has not been computed yet'}`,
  }
}

/** How a run that did not succeed reads to its caller: a timeout is a 504, a run out of bounds a 422, ... */
export function failureOf(result: TaskResult): Failure {
  const message = result.error ?? `the run ended with ${result.outcome}`
  switch (result.outcome) {
    case 'timeout':
      return { status: 504, message, code: 'timeout' }
    case 'max_iterations':
      return { status: 422, message, code: 'max_iterations' }
    case 'token_limit':
      return { status: 422, message, code: 'token_limit_exceeded' }
    case 'invalid_output':
      return { status: 502, message, code: 'invalid_output' }
    case 'cancelled':
      // Nobody reads it; 499 is what proxies log for a client that closed the request.
      return { status: 499, message, code: 'cancelled' }
    default:
      return { status: 502, message, code: 'agent_error' }
  }
}

const refuse = (refusal: Refusal): { readonly refusal: Refusal } => ({ refusal })
