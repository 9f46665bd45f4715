/**
 * Query execution, as seed 000 shows it: a Query's targets run (concurrently), and its status ends in phase
 * done or error with responses (content, raw, target), tokenUsage, duration and a Completed condition, while
 * Events tell the story (QueryExecutionStart ... QueryExecutionComplete).
 *
 * - Work goes through a QueryRunner that the process supplies (the gateway's admission, so the same task
 *   queue as /v1/chat/completions: in-process or Redis pools); this controller never imports the runtime.
 * - Exactly once: before anything is submitted, one write records the attempt on the Query (the annotation
 *   ark.mckinsey.com/claimed-by, naming this controller) together with the finalizer, conditional on the
 *   resourceVersion it read, so of two controllers only one can claim a Query. A claimed Query that this
 *   process is not running was claimed by a controller that died or lost leadership: it is failed with reason
 *   ControllerRestarted, never run a second time (its tools may have acted already).
 * - Writes per Query: the claim, and the final status. Phase running (Completed False QueryRunning) is
 *   written only for a run that lasts past a second: the API server's writes are what bounds a drain.
 * - Bounded concurrency, shared fairly across namespaces (FairSlots); waiting Queries stay pending.
 * - timeout (default 5m) aborts the run; cancel: true aborts it (phase canceled); ttl (default 720h after
 *   completion) deletes the Query; the finalizer ark.mckinsey.com/finalizer lets a deleted Query's run be
 *   stopped before it goes.
 */
import type {
  AnyResource,
  Condition,
  ObjectRef,
  QueryResponse,
  QueryTarget,
  ResourceOf,
  Status,
  TokenUsage,
} from '../api/index.ts'
import { formatDuration } from '../api/index.ts'
import type { Catalog, StatusWriter } from '../store/index.ts'
import type { Verdict } from './availability.ts'
import { withCondition } from './conditions.ts'
import { FairSlots } from './fair.ts'
import type { ReconcileMetrics, ReconcileResult } from './kit.ts'
import { Controller } from './kit.ts'

export const QUERY_FINALIZER = 'ark.mckinsey.com/finalizer'
/** Who claimed a Query, and since when: `<controller identity> since <RFC 3339 time>`. */
export const CLAIMED_BY = 'ark.mckinsey.com/claimed-by'
/** A run that lasts longer than this shows phase running; a shorter one goes straight to its end. */
const RUNNING_AFTER_MS = 1000

/** What one target of a Query produced. */
export type TargetOutcome =
  | { readonly ok: true; readonly content: string; readonly usage: TokenUsage }
  /** `reason` is a condition reason: TargetNotFound, TargetNotAvailable, Timeout, Canceled, TargetFailed. */
  | { readonly ok: false; readonly reason: string; readonly message: string; readonly usage?: TokenUsage }

export interface TargetRequest {
  readonly namespace: string
  readonly target: QueryTarget
  /** OpenAI chat messages: the Query's input. */
  readonly messages: readonly unknown[]
  readonly parameters: Readonly<Record<string, string>>
  readonly sessionId?: string
  readonly conversationId?: string
  /** The Memory the Query names (spec.memory); default: the agent's, else the namespace's `default`. */
  readonly memory?: ObjectRef
  /** The Query's name: what its exchange is filed under in a memory service. */
  readonly query?: string
  readonly signal: AbortSignal
  /** Progress as Events on the Query: AgentExecutionStart, LLMCallStart, ToolCallStart, ... */
  readonly onEvent: (reason: string, message: string, type?: 'Normal' | 'Warning') => void
}

/** Runs one target of a Query; never throws for a failure of the target itself (that is a TargetOutcome). */
export interface QueryRunner {
  run(request: TargetRequest): Promise<TargetOutcome>
}

/** The object a Kubernetes Event is about. */
export interface InvolvedObject {
  readonly apiVersion: string
  readonly kind: string
  readonly namespace: string
  readonly name: string
  readonly uid?: string
}

export interface EventSink {
  record(object: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): void
}

/** What the Query controller does to a Query besides its status (finalizers, deletion). */
export interface ObjectMetadata {
  readonly uid?: string
  readonly deletionTimestamp?: string
  readonly finalizers?: readonly string[]
  readonly annotations?: Readonly<Record<string, string>>
}

export interface ObjectWriter {
  /** Metadata of the object behind a resource; undefined where there is none (a manifests folder). */
  metadataOf(key: string): ObjectMetadata | undefined
  /**
   * Sets `annotation` to `value` and adds `finalizer`, in one write conditional on the version it read;
   * false when the annotation was already set (by another controller) or the object is gone or going.
   */
  claim(key: string, annotation: string, value: string, finalizer: string): Promise<boolean>
  setFinalizer(key: string, finalizer: string, present: boolean): Promise<void>
  delete(key: string): Promise<void>
}

export interface QueryControllerOptions {
  readonly runner: QueryRunner
  readonly objects: ObjectWriter
  readonly events: EventSink
  /** Who this controller is, in the status of the Queries it claims (pod name). */
  readonly identity: string
  /** Queries running at once, across namespaces (default 64). */
  readonly maxConcurrent?: number
  readonly now?: () => Date
  readonly onError?: (key: string, err: unknown) => void
  readonly metrics?: ReconcileMetrics
}

interface Running {
  readonly abort: AbortController
  /** Why it was aborted: a canceled Query, a deleted one, or this controller stopping. */
  why?: 'canceled' | 'deleted' | 'stopping'
  /** The phase running write, once a run lasted long enough for one; the final write waits for it. */
  runningWrite?: Promise<void>
  readonly done: Promise<void>
}

const TERMINAL = new Set(['done', 'error', 'canceled'])

export class QueryController {
  readonly #catalog: Catalog
  readonly #writer: StatusWriter
  readonly #options: QueryControllerOptions
  readonly #controller: Controller
  readonly #slots: FairSlots
  readonly #runs = new Map<string, Running>()
  readonly #failures = new Map<string, number>()
  readonly #now: () => Date

  constructor(catalog: Catalog, writer: StatusWriter, options: QueryControllerOptions) {
    this.#catalog = catalog
    this.#writer = writer
    this.#options = options
    this.#now = options.now ?? (() => new Date())
    this.#slots = new FairSlots(options.maxConcurrent ?? 64)
    this.#controller = new Controller(
      'query',
      catalog,
      (key) => this.#reconcile(key),
      { kinds: new Set(['Query']) },
      {
        // Reconciles await API writes (finalizers, claims); enough of them run at once to keep a fast drain.
        concurrency: 32,
        ...(options.onError === undefined ? {} : { onError: options.onError }),
        ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      },
    )
  }

  start(): Promise<void> {
    return this.#controller.start()
  }

  /** Resolves when no reconcile is queued or running (runs may still be going: see `drained`). */
  idle(): Promise<void> {
    return this.#controller.idle()
  }

  /** Queries running in this process now. */
  get running(): number {
    return this.#runs.size
  }

  /** Resolves when every run of this process has ended. */
  async drained(): Promise<void> {
    while (this.#runs.size > 0) await Promise.all([...this.#runs.values()].map((r) => r.done))
  }

  /** Stops reconciling and aborts every run without writing its status: the next leader resolves them. */
  async close(): Promise<void> {
    this.#controller.close()
    for (const run of this.#runs.values()) {
      run.why = 'stopping'
      run.abort.abort(new Error('the controller is stopping'))
    }
    await this.drained()
  }

  async #reconcile(key: string): Promise<ReconcileResult | undefined> {
    const query = this.#catalog.store.get(key)
    if (query?.kind !== 'Query') {
      this.#abort(key, 'deleted')
      return undefined
    }
    const { objects } = this.#options
    const meta = objects.metadataOf(key)
    if (meta?.deletionTimestamp !== undefined) {
      this.#abort(key, 'deleted')
      await this.#runs.get(key)?.done
      if (meta.finalizers?.includes(QUERY_FINALIZER) === true)
        await objects.setFinalizer(key, QUERY_FINALIZER, false)
      return undefined
    }
    const status = this.#catalog.store.status(key)
    const phase = status?.phase ?? 'pending'
    if (TERMINAL.has(phase)) return this.#expire(query, status)
    const running = this.#runs.get(key)
    if (query.spec.cancel) {
      if (running !== undefined) this.#abort(key, 'canceled')
      else await this.#finish(query, 'canceled', [], 'QueryCanceled', 'Query canceled', undefined)
      return undefined
    }
    if (running !== undefined) return undefined
    const claimedBy = meta?.annotations?.[CLAIMED_BY]
    if (phase === 'running' || claimedBy !== undefined) {
      await this.#finish(
        query,
        'error',
        [],
        'ControllerRestarted',
        `the controller running this query stopped before it finished (attempt by ${claimedBy ?? 'an earlier controller'}); it is not run again, because its tools may have acted already: create the Query again to rerun it`,
        undefined,
      )
      return undefined
    }
    this.#start(query)
    return undefined
  }

  #abort(key: string, why: 'canceled' | 'deleted'): void {
    const run = this.#runs.get(key)
    if (run === undefined || run.why !== undefined) return
    run.why = why
    run.abort.abort(new Error(why === 'canceled' ? 'the query was canceled' : 'the query was deleted'))
  }

  #start(query: ResourceOf<'Query'>): void {
    const abort = new AbortController()
    const entry: Running = {
      abort,
      done: Promise.resolve(),
    }
    ;(entry as { done: Promise<void> }).done = this.#execute(query, entry).then(
      () => {
        this.#runs.delete(query.key)
        this.#failures.delete(query.key)
        // Terminal now (or released unclaimed): the next pass schedules its TTL or picks it up again.
        if (entry.why !== 'stopping') this.#controller.enqueue(query.key)
      },
      (err: unknown) => {
        this.#runs.delete(query.key)
        this.#options.onError?.(query.key, err)
        // A write that failed (a 403, an API server away) is tried again after a backoff that grows with every
        // failure in a row (the run itself is outside the work queue, whose own backoff never sees it).
        const failures = (this.#failures.get(query.key) ?? 0) + 1
        this.#failures.set(query.key, failures)
        if (entry.why !== 'stopping')
          this.#controller.enqueue(query.key, Math.min(100 * 2 ** failures, 60_000))
      },
    )
    this.#runs.set(query.key, entry)
  }

  async #execute(query: ResourceOf<'Query'>, run: Running): Promise<void> {
    let release: (() => void) | undefined
    try {
      release = await this.#slots.acquire(query.ref.namespace, run.abort.signal)
    } catch {
      if (run.why === 'canceled')
        await this.#finish(query, 'canceled', [], 'QueryCanceled', 'Query canceled', undefined)
      return
    }
    try {
      if (!(await this.#claim(query))) return
      await this.#run(query, run)
    } finally {
      release()
    }
  }

  /** Records the attempt before anything runs; false when another controller got there first. */
  #claim(query: ResourceOf<'Query'>): Promise<boolean> {
    const value = `${this.#options.identity} since ${this.#now().toISOString()}`
    return this.#options.objects.claim(query.key, CLAIMED_BY, value, QUERY_FINALIZER)
  }

  /** Phase running, for a run still going after RUNNING_AFTER_MS; nothing if it has ended meanwhile. */
  #showRunning(query: ResourceOf<'Query'>, run: Running): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      run.runningWrite = this.#writer
        .updateStatus(query.key, (current, latest) => {
          if (latest.meta.uid !== query.meta.uid) return undefined
          if (current?.phase !== undefined && current.phase !== 'pending') return undefined
          return {
            ...current,
            phase: 'running',
            conditions: completed(
              current,
              query,
              { status: 'False', reason: 'QueryRunning', message: `attempt by ${this.#options.identity}` },
              this.#now,
            ),
          }
        })
        .catch((err: unknown) => this.#options.onError?.(query.key, err))
    }, RUNNING_AFTER_MS)
    return timer
  }

  async #run(query: ResourceOf<'Query'>, run: Running): Promise<void> {
    const began = performance.now()
    const event = (reason: string, message: string, type: 'Normal' | 'Warning' = 'Normal') => {
      this.#options.events.record(
        involved(query, this.#options.objects),
        type,
        reason,
        `${message} (timestamp: ${this.#now().toISOString()})`,
      )
    }
    event('QueryExecutionStart', `Executing query ${query.ref.name}`)
    const showRunning = this.#showRunning(query, run)
    const timeoutMs = query.spec.timeoutSeconds * 1000
    const timeout = new AbortController()
    const timer = setTimeout(
      () =>
        timeout.abort(new Error(`the query timed out after ${formatDuration(query.spec.timeoutSeconds)}`)),
      timeoutMs,
    )
    const signal = AbortSignal.any([run.abort.signal, timeout.signal])
    const parameters = this.#parameters(query)
    const messages =
      query.spec.type === 'user'
        ? [{ role: 'user', content: query.spec.input }]
        : (query.spec.input as unknown[])
    let outcomes: TargetOutcome[]
    try {
      outcomes = await Promise.all(
        query.spec.targets.map(async (target): Promise<TargetOutcome> => {
          event('TargetExecutionStart', `Executing target ${target.type}/${target.name}`)
          let outcome: TargetOutcome
          if (!parameters.ok)
            outcome = { ok: false, reason: 'ParameterNotResolved', message: parameters.message }
          else {
            outcome = await this.#options.runner
              .run({
                namespace: query.ref.namespace,
                target,
                messages,
                parameters: parameters.values,
                ...(query.spec.sessionId === undefined ? {} : { sessionId: query.spec.sessionId }),
                ...(query.spec.memory === undefined ? {} : { memory: query.spec.memory }),
                query: query.ref.name,
                ...(query.spec.conversationId === undefined
                  ? {}
                  : { conversationId: query.spec.conversationId }),
                signal,
                onEvent: event,
              })
              .catch((err: unknown): TargetOutcome => ({
                ok: false,
                reason: 'TargetFailed',
                message: errorText(err),
              }))
          }
          if (outcome.ok) event('TargetExecutionComplete', 'Target execution completed successfully')
          else
            event(
              'TargetExecutionFailed',
              `Target ${target.type}/${target.name} failed: ${outcome.reason}: ${outcome.message}`,
              'Warning',
            )
          return outcome
        }),
      )
    } finally {
      clearTimeout(timer)
      clearTimeout(showRunning)
    }
    // The final write goes after the running one, never before it.
    await run.runningWrite
    if (run.why === 'stopping' || run.why === 'deleted') return
    const seconds = (performance.now() - began) / 1000
    const responses = query.spec.targets.map((target, i): QueryResponse => {
      const o = outcomes[i]
      if (o?.ok === true) {
        return {
          target,
          content: o.content,
          raw: JSON.stringify([{ name: target.name, content: o.content, role: 'assistant' }]),
          phase: 'done',
        }
      }
      return { target, content: o === undefined ? '' : `${o.reason}: ${o.message}`, phase: 'error' }
    })
    const usage = sumUsage(outcomes)
    if (run.why === 'canceled') {
      await this.#finish(
        query,
        'canceled',
        responses,
        'QueryCanceled',
        'Query canceled while it ran',
        usage,
        seconds,
      )
    } else if (timeout.signal.aborted) {
      await this.#finish(
        query,
        'error',
        responses,
        'QueryTimeout',
        `the query did not finish within ${formatDuration(query.spec.timeoutSeconds)}`,
        usage,
        seconds,
      )
    } else {
      const failed = outcomes.find((o): o is Extract<TargetOutcome, { ok: false }> => !o.ok)
      if (failed === undefined)
        await this.#finish(
          query,
          'done',
          responses,
          'QuerySucceeded',
          'Query completed successfully',
          usage,
          seconds,
        )
      else await this.#finish(query, 'error', responses, failed.reason, failed.message, usage, seconds)
    }
    event('QueryExecutionComplete', 'Query execution completed')
  }

  async #finish(
    query: ResourceOf<'Query'>,
    phase: 'done' | 'error' | 'canceled',
    responses: readonly QueryResponse[],
    reason: string,
    message: string,
    usage: TokenUsage | undefined,
    seconds?: number,
  ): Promise<void> {
    await this.#writer.updateStatus(query.key, (current, latest) => {
      if (latest.meta.uid !== query.meta.uid) return undefined
      const next: Status = {
        ...current,
        phase,
        conditions: completed(current, latest, { status: 'True', reason, message }, this.#now),
        responses,
        ...(usage === undefined ? {} : { tokenUsage: usage }),
        ...(seconds === undefined ? {} : { duration: formatDuration(seconds) }),
      }
      return next
    })
    if (phase !== 'done') {
      this.#options.events.record(involved(query, this.#options.objects), 'Warning', reason, message)
    }
  }

  async #expire(
    query: ResourceOf<'Query'>,
    status: Status | undefined,
  ): Promise<ReconcileResult | undefined> {
    const completed = status?.conditions.find((c) => c.type === 'Completed')
    const at = Date.parse(completed?.lastTransitionTime ?? '')
    if (Number.isNaN(at)) return undefined
    const left = at + query.spec.ttlSeconds * 1000 - this.#now().getTime()
    if (left > 0) return { requeueAfterMs: left }
    await this.#options.objects.delete(query.key)
    return undefined
  }

  #parameters(
    query: ResourceOf<'Query'>,
  ): { ok: true; values: Record<string, string> } | { ok: false; message: string } {
    const values: Record<string, string> = {}
    for (const p of query.spec.parameters) {
      const r = this.#catalog.resolveValue(query.ref.namespace, p.source)
      if (!r.ok) return { ok: false, message: `spec.parameters ${p.name}: ${r.message}` }
      if (r.value !== undefined) values[p.name] = r.value
    }
    return { ok: true, values }
  }
}

/** The conditions with Completed set to `verdict` (conditions.ts keeps its transition time and generation). */
function completed(
  current: Status | undefined,
  resource: AnyResource,
  verdict: Verdict,
  now: () => Date,
): readonly Condition[] {
  return (withCondition(current, resource, 'Completed', verdict, now) ?? current)?.conditions ?? []
}

function sumUsage(outcomes: readonly TargetOutcome[]): TokenUsage {
  let promptTokens = 0
  let completionTokens = 0
  for (const o of outcomes) {
    promptTokens += o.usage?.promptTokens ?? 0
    completionTokens += o.usage?.completionTokens ?? 0
  }
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens }
}

/** The object an Event about `resource` names; `uid` where the store knows a newer one than the resource. */
export function involvedObject(resource: AnyResource, uid = resource.meta.uid): InvolvedObject {
  return {
    apiVersion: resource.origin.apiVersion,
    kind: resource.origin.kind,
    namespace: resource.ref.namespace,
    name: resource.ref.name,
    ...(uid === undefined ? {} : { uid }),
  }
}

function involved(query: AnyResource, objects: ObjectWriter): InvolvedObject {
  return involvedObject(query, objects.metadataOf(query.key)?.uid ?? query.meta.uid)
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
