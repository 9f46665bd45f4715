/**
 * Admission: the one door to the agent pools, whatever the protocol. It resolves the target in the catalog,
 * checks that it can run now, builds the task and submits it to the target's pool with the caller's
 * cancellation, and records the invocation when it ends. The answer is either the run (its events flow to
 * the caller's sink, its result comes later) or a `Refusal`: an HTTP-like status, a machine-readable code
 * and a message, which each protocol renders in its own shape (OpenAI's error body, a JSON-RPC error, a
 * Query's status condition). Nothing here knows about OpenAI.
 */
import type { ObjectRef, ResourceOf } from '../controller/api/index.ts'
import type { Provider } from './runtime/provider.ts'
import type { Catalog } from '../controller/store/index.ts'
import type { Logger } from './log.ts'
import type { Metrics } from './metrics.ts'
import { InFlightBound } from './in-flight.ts'
import { NoWorkersError, QueueFullError, QueueUnavailableError } from './pool/queue.ts'
import type { TaskQueue } from './pool/queue.ts'
import type { EventSink } from './runtime/events.ts'
import type { ChatMessage } from './runtime/messages.ts'
import type { Memories } from './runtime/memory/registry.ts'
import {
  InvalidConversationError,
  MemoryUnavailableError,
  checkConversationId,
} from './runtime/memory/memory.ts'
import { DEFAULT_HISTORY_TOKENS, fitHistory } from './runtime/memory/trim.ts'
import { queryParametersOf } from './runtime/prepare.ts'
import { agentKey } from './runtime/subtasks.ts'
import type { Task, TaskResult } from './runtime/task.ts'
import { succeeded } from './runtime/task.ts'
import { runTeam } from './runtime/team/run.ts'
import type { TokenBudget } from './runtime/budget.ts'
import type { RecentRun, RecentRuns, Via } from './ui/recent-runs.ts'
import type { QuotaDecision, QuotaGrant, Quotas } from './auth/quotas.ts'
import { notAllowedMessage } from './auth/scope.ts'
import type { Principal } from './auth/scope.ts'
import { secondsUntilReset, secondsUntil, spentMessage } from './runtime/budget.ts'

const NO_HEADERS: Readonly<Record<string, string>> = {}

/** A direct model call's slot (release it once the answer is handed over), or why it has none. */
type DirectSlot = { readonly release: () => void } | { readonly refusal: Refusal }

function namespaceOf(checked: Checked): string {
  return checked.kind === 'Agent' ? checked.agent.ref.namespace : checked.team.ref.namespace
}

function overloaded(bound: InFlightBound, namespace: string, target: string): Refusal {
  const max = String(bound.max)
  const held = bound.heldBy(namespace)
  return {
    status: 503,
    code: 'overloaded',
    target,
    retryAfterSeconds: 1,
    message:
      bound.total >= bound.max
        ? `this gateway runs as many requests at once as it may (${max}, --max-in-flight); retry shortly, or on another replica`
        : `this gateway is nearly full (${String(bound.total)} of ${max} requests in flight, --max-in-flight) and namespace ${namespace} holds more than its share of them (${String(held)}); the rest are kept for other namespaces: retry shortly, or on another replica`,
  }
}

/** Why a request was not admitted, for a protocol to render. */
export interface Refusal {
  /** The HTTP status that fits (400, 404, 429, 503, ...); protocols without HTTP map it. */
  readonly status: number
  /**
   * Machine-readable: `not_found`, `target_not_allowed`, `unsupported_target`, `ScaledToZero`,
   * `missing_parameter`, `overloaded`, `queue_full`, `queue_unavailable`, `no_workers`, a quota's `rate_limit_exceeded` or
   * `daily_token_quota_exceeded`, or the target's Available reason (`ToolNotFound`, ...) when it is not
   * Available.
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
  /** Response headers that go with it (a quota's `x-ratelimit-*`). */
  readonly headers?: Readonly<Record<string, string>>
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
   * Aborts `signal`, when the caller holds its controller: how admission cancels the run itself (its key
   * revoked). Without it, admission follows `signal` with a controller of its own, at a cost on every run.
   */
  readonly abort?: (reason: unknown) => void
  /**
   * The run's events. A promise returned for `llm.delta` pauses the run until it settles (backpressure from a
   * slow client), where the run is in this process.
   */
  readonly onEvent?: EventSink
  /** The task id (the protocol's own request id); default random. */
  readonly id?: string
  /** The face the request came through, for the dashboard's recent runs. */
  readonly via?: Via
  /**
   * The conversation this request continues (OpenAI `metadata.conversation_id`, an A2A contextId, a Query's
   * conversationId or sessionId, the MCP tool's `conversation_id`): with a Memory that applies, its history
   * goes before `messages`, and the exchange is remembered once it succeeds.
   */
  readonly conversation?: {
    readonly id: string
    /** The Memory the caller names (a Query's spec.memory); default: the agent's, else the namespace's `default`. */
    readonly memory?: ObjectRef
    /** What the exchange is filed under in ARK's memory service (`query_id`): a Query's name. */
    readonly query?: string
  }
}

export interface Run {
  readonly id: string
  /** The target as clients name it (`agent/x`, `team/x`): the label for metrics, the `model` of an answer. */
  readonly target: string
  readonly kind: 'Agent' | 'Team'
  readonly ref: ObjectRef
  readonly result: Promise<TaskResult>
  /** Response headers that go with the answer (the caller's quotas, `x-ratelimit-*`); may be empty. */
  readonly headers: Readonly<Record<string, string>>
}

export type Admitted = { readonly run: Run } | { readonly refusal: Refusal }

/** How a failed run reads to a caller, in the same terms as a refusal. */
export interface Failure {
  readonly status: number
  readonly code: string
  readonly message: string
  /** When the same request may succeed (a daily budget's reset): `Retry-After`. */
  readonly retryAfterSeconds?: number
  /** True when nothing ran and a retry may succeed (clients' automatic retries are then welcome). */
  readonly retry?: true
}

export interface AdmissionDeps {
  readonly catalog: Catalog
  readonly queue: TaskQueue
  readonly metrics: Metrics
  readonly log: Logger
  /** The provider of an agent's model: a team's selector calls it (AgentRuntime.providerFor). */
  readonly providerFor: (agent: ResourceOf<'Agent'>) => Provider
  /** Conversation memories; absent: nothing is remembered between requests. */
  readonly memories?: Memories
  /**
   * Agents' daily token usage (limits.maxDailyTokens): a spent budget is refused here, before anything runs,
   * as a 429 every protocol can render. The runtime enforces it either way.
   */
  readonly budget?: TokenBudget
  /** Keys' and namespaces' quotas (auth/quotas.ts): a run they do not allow is refused (429). Absent: none. */
  readonly quotas?: Quotas
  /**
   * Runs this process admits at once, whatever their pools (default: no bound): past it a run is refused at
   * once (503 `overloaded`, Retry-After 1), so that a flood fails fast here instead of piling up memory and
   * sockets until everything times out. Shared fairly across namespaces (in-flight.ts).
   */
  readonly maxInFlight?: number
  /**
   * How long a caller's task may wait for a free worker of its agent (--queue-wait); past it, the task is
   * taken out of the queue and the caller told so (`queue_timeout`, 503). Default: until the task's deadline.
   * Team members' turns and subtasks are not bounded here: their run is under way.
   */
  readonly maxQueueWaitMs?: number
  /** Where admitted runs are recorded for the dashboard (ui/recent-runs.ts); absent: nowhere. */
  readonly runs?: RecentRuns
}

/** A target that may run now: what `check` found, for `submit`. */
export type Checked =
  | {
      readonly kind: 'Agent'
      readonly agent: ResourceOf<'Agent'>
      /** The target as clients name it (`agent/x`): the label for metrics, the `model` of an answer. */
      readonly target: string
      /** Who asks (with API keys): whose quotas the run counts to. */
      readonly who?: Principal
      /** The quotas' consent, when `reserve` got it before `submit`. */
      readonly grant?: QuotaGrant
    }
  | {
      readonly kind: 'Team'
      readonly team: ResourceOf<'Team'>
      /** `team/x`, as for an agent. */
      readonly target: string
      readonly who?: Principal
      readonly grant?: QuotaGrant
    }

type GrantOrRefusal = QuotaGrant | { readonly refusal: Refusal }

function grantOrRefusal(decided: QuotaDecision, target: string): GrantOrRefusal {
  return 'status' in decided ? refuse({ ...decided, target }) : decided
}

/** Why a run was cancelled under its caller: its key went away. */
const KEY_REVOKED = 'the API key was revoked or its scope changed'

export class Admission {
  readonly #deps: AdmissionDeps
  /** Runs admitted here and not finished yet, by namespace (maxInFlight). */
  readonly #inFlight: InFlightBound | undefined

  constructor(deps: AdmissionDeps) {
    this.#deps = deps
    this.#inFlight = deps.maxInFlight === undefined ? undefined : new InFlightBound(deps.maxInFlight)
  }

  /**
   * Resolves what the caller named (`agent/<name>`, `agent/<ns>/<name>`, `team/<name>`, a bare agent name) and checks that
   * it can run now with these parameters: one Map lookup and a look at its status, no preparation. Separate
   * from `submit` so that a protocol can shape its answer (a stream's identity) around the resolved target
   * before anything runs.
   */
  check(
    name: string,
    parameters: Readonly<Record<string, string>>,
    who?: Principal,
  ): Checked | { readonly refusal: Refusal } {
    const { catalog } = this.#deps
    const target = catalog.resolveTarget(name)
    // What the caller's key may not call is refused as such, whether or not it exists (scope.ts).
    if (
      who !== undefined &&
      !(target === undefined ? who.allowsName(name) : who.allowsTarget(target.kind, target.resource.ref))
    ) {
      return refuse({
        status: 403,
        code: 'target_not_allowed',
        param: 'model',
        retry: false,
        message: notAllowedMessage(
          who,
          target === undefined ? name : catalog.targetId(target.kind, target.resource.ref),
        ),
      })
    }
    if (target === undefined) {
      return refuse({
        status: 404,
        code: 'not_found',
        param: 'model',
        message: `\`${name.slice(0, 200)}\` does not exist. Name an agent (agent/<name>), a team (team/<name>) or a model (model/<name>); GET /v1/models lists them.`,
      })
    }
    const id = catalog.targetId(target.kind, target.resource.ref)
    if (target.kind === 'Team') {
      const team = target.resource as ResourceOf<'Team'>
      const notAvailable = unavailable(catalog, team.key, id)
      if (notAvailable !== undefined) return { refusal: notAvailable }
      // What would fail a member's turn after earlier members spent their tokens is refused before any runs.
      for (const agent of agentsOf(catalog, team)) {
        const refusal = unrunnable(agent, parameters, id, catalog.targetId('Agent', agent.ref))
        if (refusal !== undefined) return { refusal }
      }
      return { kind: 'Team', team, target: id, ...(who === undefined ? {} : { who }) }
    }
    if (target.kind !== 'Agent') {
      return refuse({
        status: 400,
        code: 'unsupported_target',
        param: 'model',
        target: id,
        retry: false,
        message: `${id} is a model: it is called directly, not through an agent pool.`,
      })
    }
    const agent = target.resource as ResourceOf<'Agent'>
    const notAvailable = unavailable(catalog, agent.key, id)
    if (notAvailable !== undefined) return { refusal: notAvailable }
    const refusal = unrunnable(agent, parameters, id)
    if (refusal !== undefined) return { refusal }
    return { kind: 'Agent', agent, target: id, ...(who === undefined ? {} : { who }) }
  }

  /**
   * Takes the run's share of the caller's quotas (a request token) now, for a protocol that answers a refusal
   * before it hands the run on (A2A, before the SDK's task begins); `submit` does it otherwise.
   */
  async reserve(checked: Checked): Promise<Checked | { readonly refusal: Refusal }> {
    const quotas = this.#toReserve(checked)
    if (quotas === undefined) return checked
    const granted = await this.#grant(checked, quotas)
    return 'refusal' in granted ? granted : { ...checked, grant: granted }
  }

  /** The run's grant from its quotas, or their refusal: at once when every count is in this process. */
  #grant(checked: Checked, quotas: Quotas): GrantOrRefusal | Promise<GrantOrRefusal> {
    const decided = quotas.admit(checked.who, namespaceOf(checked))
    return decided instanceof Promise
      ? decided.then((d) => grantOrRefusal(d, checked.target))
      : grantOrRefusal(decided, checked.target)
  }

  /** The quotas that apply to a run by `who` in `namespace`, if any. */
  #quotasFor(who: Principal | undefined, namespace: string): Quotas | undefined {
    const quotas = this.#deps.quotas
    return quotas !== undefined && quotas.applies(who, namespace) ? quotas : undefined
  }

  /** The quotas a run still has to reserve (none once `reserve` got their consent), if any apply to it. */
  #toReserve(checked: Checked): Quotas | undefined {
    return checked.grant === undefined ? this.#quotasFor(checked.who, namespaceOf(checked)) : undefined
  }

  /**
   * Takes a slot of --max-in-flight before anything is awaited (concurrent requests cannot all pass the
   * check): the function that gives it back (once, however often it is called), or the refusal.
   */
  #takeSlot(namespace: string, target: string): (() => void) | { readonly refusal: Refusal } {
    const bound = this.#inFlight
    if (bound === undefined) return NO_SLOT
    return bound.take(namespace) ?? { refusal: overloaded(bound, namespace, target) }
  }

  /**
   * The refusal a run would get now for --max-in-flight, without taking a slot: for a protocol that answers
   * refusals before it hands the run on (A2A, before the SDK's task begins). `submit` still takes the slot,
   * and refuses then if others took the last one meanwhile.
   */
  overloaded(checked: Checked): Refusal | undefined {
    const bound = this.#inFlight
    const namespace = namespaceOf(checked)
    return bound?.full(namespace) === true ? overloaded(bound, namespace, checked.target) : undefined
  }

  /** Submits the task to the agent's pool: the run, or the refusal of a full or unreachable queue. */
  async submit(checked: Checked, request: SubmitRequest): Promise<Admitted> {
    const onRevoked = checked.who?.onRevoked
    if (this.#inFlight === undefined && onRevoked === undefined) return this.#submit(checked, request)
    const slot = this.#takeSlot(namespaceOf(checked), checked.target)
    if ('refusal' in slot) return slot
    let done = slot
    let req = request
    if (onRevoked !== undefined) {
      // A key revoked (or rescoped) while its run goes on cancels the run, whatever the protocol and
      // whether or not its answer streams.
      let abort = request.abort
      let unfollow: (() => void) | undefined
      if (abort === undefined) {
        const cancel = new AbortController()
        const outer = request.signal
        const follow = () => cancel.abort(outer.reason)
        if (outer.aborted) follow()
        else outer.addEventListener('abort', follow, { once: true })
        unfollow = () => outer.removeEventListener('abort', follow)
        abort = (reason) => cancel.abort(reason)
        req = { ...request, signal: cancel.signal }
      }
      const revoke = abort
      const stop = onRevoked(() => revoke(new DOMException(KEY_REVOKED, 'AbortError')))
      done = () => {
        slot()
        stop()
        unfollow?.()
      }
    }
    let admitted: Admitted
    try {
      admitted = await this.#submit(checked, req)
    } catch (err) {
      done()
      throw err
    }
    if ('refusal' in admitted) {
      done()
      return admitted
    }
    const { run } = admitted
    return { run: { ...run, result: run.result.finally(done) } }
  }

  /**
   * A direct model call (`model/<name>`, which runs no agent pool) takes its share of the caller's quotas
   * (a request token; refused when the day's tokens are spent) and a slot of --max-in-flight, released when
   * its answer has been handed over. Its tokens are not counted to the key's or namespace's day.
   */
  admitDirect(
    who: Principal | undefined,
    namespace: string,
    target: string,
  ): DirectSlot | Promise<DirectSlot> {
    const release = this.#takeSlot(namespace, target)
    if ('refusal' in release) return release
    const quotas = this.#quotasFor(who, namespace)
    // Synchronous unless a quota held elsewhere (Redis) applies: the passthrough path takes no extra turn.
    if (quotas === undefined) return { release }
    const slot = (decided: QuotaDecision): DirectSlot => {
      const granted = grantOrRefusal(decided, target)
      if (!('refusal' in granted)) return { release }
      release()
      return granted
    }
    const decided = quotas.admit(who, namespace)
    return decided instanceof Promise ? decided.then(slot) : slot(decided)
  }

  async #submit(checked: Checked, request: SubmitRequest): Promise<Admitted> {
    // First the caller's quotas and the agent's daily budget: nothing is loaded for a request that cannot run.
    // No detour (no turn of the event loop) when no limit applies.
    const quotas = this.#toReserve(checked)
    let grant = checked.grant
    if (quotas !== undefined) {
      const pending = this.#grant(checked, quotas)
      const granted = pending instanceof Promise ? await pending : pending
      if ('refusal' in granted) return granted
      grant = granted
    }
    if (checked.kind === 'Agent' && checked.agent.spec.limits.maxDailyTokens !== undefined) {
      const spent = await this.#spent(checked.agent, checked.target)
      if (spent !== undefined) return { refusal: spent }
    }
    // Most requests name no conversation: they take no detour (and no extra turn of the event loop).
    const recalled =
      request.conversation === undefined || this.#deps.memories === undefined
        ? { messages: request.messages }
        : await this.#recall(checked, request, request.conversation, this.#deps.memories)
    if ('refusal' in recalled) return recalled
    const history = ('history' in recalled ? recalled.history : undefined) ?? []
    const id = request.id ?? crypto.randomUUID()
    if (checked.kind === 'Team')
      return this.#submitTeam(
        checked.team,
        checked.target,
        request,
        // A team hands the history on to each member, whose runtime fits it to its own budget.
        history.length === 0 ? recalled.messages : [...history, ...recalled.messages],
        'remember' in recalled ? recalled.remember : undefined,
        grant,
        id,
        this.#recent(checked, request, id),
      )
    const { agent, target } = checked
    const task: Task = {
      id,
      agent: agent.ref,
      messages: recalled.messages,
      ...(history.length === 0 ? {} : { history }),
      parameters: request.parameters,
      stream: request.stream,
      depth: 0,
    }
    const pool = agentKey(agent.ref)
    const started = performance.now()
    let result: Promise<TaskResult>
    try {
      const { maxQueueWaitMs } = this.#deps
      const admission = await this.#deps.queue.submit(task, {
        signal: request.signal,
        ...(request.onEvent === undefined ? {} : { onEvent: request.onEvent }),
        ...(maxQueueWaitMs === undefined ? {} : { maxWaitMs: maxQueueWaitMs }),
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
      if (err instanceof NoWorkersError) {
        return refuse({
          status: 503,
          code: 'no_workers',
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
    const remember = 'remember' in recalled ? recalled.remember : undefined
    const entry = this.#recent(checked, request, task.id)
    const recorded = result.then((r) => {
      this.#finished(target, pool, task, r, started, entry)
      grant?.charge(r.usage.totalTokens)
      return remember === undefined ? r : remember(r).then(() => r)
    })
    return {
      run: {
        id: task.id,
        target,
        kind: 'Agent',
        ref: agent.ref,
        result: recorded,
        headers: grant?.headers ?? NO_HEADERS,
      },
    }
  }

  /**
   * A team runs here, in the process that admitted it: each member's turn is a task on that member's pool
   * (so on Redis the turns run on the pools' workers), and the request's signal cancels every one of them.
   * A member's pool that is full or unreachable fails the team with the reason.
   */
  #submitTeam(
    team: ResourceOf<'Team'>,
    target: string,
    request: SubmitRequest,
    messages: readonly ChatMessage[],
    remember: Remember | undefined,
    grant: QuotaGrant | undefined,
    id: string,
    entry: RecentRun | undefined,
  ): Admitted {
    const label = `team:${team.ref.namespace}/${team.ref.name}`
    const started = performance.now()
    const { queue, catalog, providerFor } = this.#deps
    const result = runTeam(
      team,
      {
        id,
        messages,
        parameters: request.parameters,
        stream: request.stream,
        signal: request.signal,
        ...(request.onEvent === undefined ? {} : { onEvent: request.onEvent }),
      },
      {
        catalog,
        providerFor,
        runTask: async (task, signal, onEvent) => {
          const admission = await queue.submit(task, {
            signal,
            ...(onEvent === undefined ? {} : { onEvent }),
          })
          return admission.result
        },
      },
    ).then(async (r) => {
      this.#finished(target, label, { id }, r, started, entry)
      grant?.charge(r.usage.totalTokens)
      await remember?.(r)
      return r
    })
    return {
      run: { id, target, kind: 'Team', ref: team.ref, result, headers: grant?.headers ?? NO_HEADERS },
    }
  }

  /** The refusal of an agent whose daily token budget is spent; undefined when it may run (or has no limit). */
  async #spent(agent: ResourceOf<'Agent'>, target: string): Promise<Refusal | undefined> {
    const limit = agent.spec.limits.maxDailyTokens
    const budget = this.#deps.budget
    if (limit === undefined || budget === undefined) return undefined
    let used: number
    try {
      used = await budget.usedToday(agent.ref)
    } catch {
      // Unreadable: the runtime decides (it fails closed once its last reading is old).
      return undefined
    }
    if (used < limit) return undefined
    const now = new Date()
    return {
      status: 429,
      code: 'daily_token_budget_exceeded',
      target,
      retry: false,
      retryAfterSeconds: secondsUntilReset(now),
      message: spentMessage(target, used, limit, now),
    }
  }

  /**
   * The messages a run sees: the conversation's history (fitted to the agent's token budget, oldest dropped
   * first) before what the caller sent, when the request names a conversation and a Memory applies; and how to
   * remember the exchange once the run succeeds. A memory that cannot be read refuses the request (503): an
   * answer without the conversation it continues would be wrong, not degraded.
   */
  async #recall(
    checked: Checked,
    request: SubmitRequest,
    conversation: NonNullable<SubmitRequest['conversation']>,
    memories: Memories,
  ): Promise<
    | { history?: readonly ChatMessage[]; messages: readonly ChatMessage[]; remember?: Remember }
    | { refusal: Refusal }
  > {
    const problem = checkConversationId(conversation.id)
    if (problem !== undefined)
      return refuse({ status: 400, code: 'invalid_conversation', param: 'conversation_id', message: problem })
    const agent = checked.kind === 'Agent' ? checked.agent : undefined
    const ref = checked.kind === 'Agent' ? checked.agent.ref : checked.team.ref
    const memory = memories.resolve(ref.namespace, conversation.memory, agent)
    if (memory === undefined) return { messages: request.messages }
    if ('missing' in memory) {
      return refuse({
        status: 404,
        code: 'memory_not_found',
        param: 'memory',
        target: checked.target,
        message: `memory ${memory.missing.namespace}/${memory.missing.name} does not exist`,
      })
    }
    let backend
    try {
      backend = memories.backend(memory)
    } catch (err) {
      // The Memory cannot work as written (no address, no REDIS_URL, a vector store): retrying will not help.
      if (err instanceof MemoryUnavailableError)
        return refuse({
          status: 503,
          code: 'memory_unavailable',
          target: checked.target,
          retry: false,
          message: err.message,
        })
      throw err
    }
    let history: ChatMessage[]
    try {
      history = await backend.load(conversation.id, request.signal)
    } catch (err) {
      if (request.signal.aborted)
        return refuse({
          status: 499,
          code: 'cancelled',
          target: checked.target,
          message: 'the caller went away',
        })
      if (err instanceof InvalidConversationError)
        return refuse({
          status: 400,
          code: 'invalid_conversation',
          param: 'conversation_id',
          message: err.message,
        })
      if (err instanceof MemoryUnavailableError)
        return refuse({
          status: 503,
          code: 'memory_unavailable',
          target: checked.target,
          message: err.message,
          retryAfterSeconds: 1,
        })
      throw err
    }
    // A first cut, to what the agent's budget could ever hold (it bounds what crosses a queue); the runtime
    // fits it exactly, knowing the system prompt and tools it sends with it.
    const budget = agent?.spec.limits.maxTokensPerCall ?? DEFAULT_HISTORY_TOKENS
    const kept = fitHistory(history, request.messages, budget)
    const log = this.#deps.log
    const remember: Remember = async (result) => {
      if (!succeeded(result) || result.content === null) return
      // What the caller said and the answer: its system and developer messages are its instructions for this
      // request, not turns of the conversation, and are not replayed to whoever continues it.
      const exchange: ChatMessage[] = [
        ...request.messages.filter((m) => m.role === 'user' || m.role === 'assistant' || m.role === 'tool'),
        { role: 'assistant', content: result.content },
      ]
      if (JSON.stringify(exchange).length > MAX_EXCHANGE_CHARS) {
        log.warn('the exchange is too large to remember', { target: checked.target, memory: memory.key })
        return
      }
      try {
        // Not the request's signal: a client that leaves once answered still had its exchange.
        await backend.append(
          conversation.id,
          exchange,
          new AbortController().signal,
          conversation.query ?? result.task,
        )
      } catch (err) {
        log.warn('the exchange was not remembered', {
          target: checked.target,
          memory: memory.key,
          error: err instanceof Error ? err.message : String(err),
        })
      }
    }
    return { history: kept, messages: request.messages, remember }
  }

  /** Cancels a task that another caller (or another replica) submitted: see TaskQueue.cancel. */
  cancel(taskId: string): Promise<boolean> {
    return this.#deps.queue.cancel(taskId)
  }

  /** The run's entry among the dashboard's recent runs, if they are kept. */
  #recent(checked: Checked, request: SubmitRequest, id: string): RecentRun | undefined {
    return this.#deps.runs?.start({
      id,
      target: checked.target,
      kind: checked.kind,
      namespace: namespaceOf(checked),
      via: request.via,
      key: checked.who?.id,
    })
  }

  #finished(
    id: string,
    pool: string,
    task: Pick<Task, 'id'>,
    result: TaskResult,
    started: number,
    entry: RecentRun | undefined,
  ): void {
    const seconds = (performance.now() - started) / 1000
    this.#deps.metrics.invocation(pool, succeeded(result) ? '' : result.outcome, seconds)
    if (entry !== undefined) this.#deps.runs?.finish(entry, result, seconds)
    if (!succeeded(result) && result.outcome !== 'cancelled') {
      this.#deps.log.warn('run failed', {
        target: id,
        task: task.id,
        outcome: result.outcome,
        error: result.error,
      })
    }
  }
}

/** Every agent a team's turns may run on, its nested teams' included (a cycle, which availability refuses, ends the walk). */
export function agentsOf(catalog: Catalog, team: ResourceOf<'Team'>): ResourceOf<'Agent'>[] {
  const out = new Map<string, ResourceOf<'Agent'>>()
  const seen = new Set<string>()
  const walk = (t: ResourceOf<'Team'>) => {
    if (seen.has(t.key)) return
    seen.add(t.key)
    for (const m of t.spec.members) {
      if (m.type === 'team') {
        const sub = catalog.get('Team', m.ref)
        if (sub !== undefined) walk(sub)
      } else {
        const agent = catalog.get('Agent', m.ref)
        if (agent !== undefined) out.set(agent.key, agent)
      }
    }
  }
  walk(team)
  return [...out.values()]
}

/**
 * Why `agent` cannot take a task for target `id` now, though it is Available: it is scaled to zero, or the
 * request lacks one of its query parameters. `member` names it when it runs as one of the team `id`'s.
 */
function unrunnable(
  agent: ResourceOf<'Agent'>,
  parameters: Readonly<Record<string, string>>,
  id: string,
  member?: string,
): Refusal | undefined {
  if (agent.spec.replicas === 0) {
    return {
      status: 503,
      code: 'ScaledToZero',
      target: id,
      retry: false,
      message:
        member === undefined
          ? `${id} is scaled to zero (replicas: 0); scale it up to serve requests`
          : `${id} cannot run: its member ${member} is scaled to zero (replicas: 0)`,
    }
  }
  const missing = queryParametersOf(agent).find((p) => parameters[p] === undefined)
  if (missing === undefined) return undefined
  const whose = member === undefined ? '' : ` (for its member ${member})`
  return {
    status: 400,
    code: 'missing_parameter',
    param: `metadata.${missing}`,
    target: id,
    message: `${id} needs the parameter "${missing}"${whose}: send it in the request's metadata, e.g. "metadata": {"${missing}": "..."}`,
  }
}

/** The refusal for a target whose Available condition is not True, with its reason as the code. */
export function unavailable(catalog: Catalog, key: string, id: string): Refusal | undefined {
  const available = catalog.available(key)
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
    case 'queue_timeout':
      // Nothing ran: a retry a moment later may find a free worker.
      return {
        status: 503,
        message,
        code: 'queue_timeout',
        retryAfterSeconds: QUEUE_TIMEOUT_RETRY_SECONDS,
        retry: true,
      }
    case 'max_iterations':
      return { status: 422, message, code: 'max_iterations' }
    case 'token_limit':
      return { status: 422, message, code: 'token_limit_exceeded' }
    case 'invalid_output':
      return { status: 502, message, code: 'invalid_output' }
    case 'budget_exceeded':
      // Seconds counted now, not when the run ended: its result may have waited in a queue.
      return {
        status: 429,
        message,
        code: 'daily_token_budget_exceeded',
        ...(result.resetsAt === undefined ? {} : { retryAfterSeconds: secondsUntil(result.resetsAt) }),
      }
    case 'cancelled':
      // Nobody reads it; 499 is what proxies log for a client that closed the request.
      return { status: 499, message, code: 'cancelled' }
    default:
      return { status: 502, message, code: 'agent_error' }
  }
}

const refuse = (refusal: Refusal): { readonly refusal: Refusal } => ({ refusal })

/** When a caller whose task waited out --queue-wait may try again. */
const QUEUE_TIMEOUT_RETRY_SECONDS = 5

/** The release of a slot that was never bounded. */
const NO_SLOT = (): void => {}

/**
 * The largest exchange remembered (what the caller sent and the answer, as JSON): a bound on what one request
 * adds to a conversation, which every later request loads.
 */
const MAX_EXCHANGE_CHARS = 256 * 1024

/** Remembers a run's exchange in its conversation (a no-op for a run that failed). */
type Remember = (result: TaskResult) => Promise<void>
