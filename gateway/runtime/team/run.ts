/**
 * Team runs: a Team (ARK) or ArkTeam (arkonis) answers a conversation by letting its members take turns.
 * The strategies follow ARK's completions executor:
 *
 * - sequential: each member once, in order; with `loops` (and `round-robin`, which ARK folded into it) over
 *   and over until maxTurns, checked before each turn.
 * - selector: a selector agent's model picks the next member (selector.ts) until it calls `terminate`, names
 *   no one, or maxTurns is reached; with a graph, only the members an edge leads to are candidates.
 * - graph: from the first member along the edges (a member's last listed edge wins) until a member has none.
 * - pipeline (ArkTeam): steps as a DAG, independent steps side by side (pipeline.ts).
 * - dynamic (ArkTeam without a pipeline): the entry role takes the conversation; it hands work on with
 *   `delegate`.
 *
 * Every member turn is a task on that member's own pool (the same queue as any request), so a team spans
 * workers when pools live on Redis; a member that is a team runs here, nested. Each member sees the
 * conversation's history, every earlier member's answer (an assistant message named after the member), and
 * the caller's latest message last, as ARK's agents do. The team's answer is the last non-empty answer (or
 * what `terminate` said, or a pipeline's output template), and its usage the sum of every turn's and every
 * selector call's. Cancelling the run, the team's timeoutSeconds and its maxTokens stop every member.
 */
import type { ObjectRef, ResourceOf, TeamMember } from '../../../controller/api/index.ts'
import type { Catalog } from '../../../controller/store/index.ts'
import type { AgentEvent, EventSink, Outcome } from '../events.ts'
import type { ChatMessage, Usage } from '../messages.ts'
import { NO_USAGE, addUsage, textOf } from '../messages.ts'
import type { Provider } from '../provider.ts'
import { MAX_DEPTH } from '../subtasks.ts'
import type { Task, TaskResult } from '../task.ts'
import { notRun, succeeded } from '../task.ts'
import { runPipeline } from './pipeline.ts'
import { selectNext } from './selector.ts'
import { Stop } from './stop.ts'
import { context as traceContext } from '@opentelemetry/api'
import { failed, inSpan, tracer } from '../../trace/tracing.ts'

/** Turns of a team that could go on by itself (selector, a graph with a cycle) when it sets no maxTurns. */
export const DEFAULT_MAX_TURNS = 20

/**
 * Turns of one run whatever maxTurns says: each turn is a model call at least and adds to what the next
 * members read, so a manifest's `maxTurns: 1000000` must not make a run without end.
 */
export const MAX_TURNS = 200

export interface TeamDeps {
  readonly catalog: Catalog
  /** Runs a task on its agent's pool and waits for its result (admission's queue). */
  readonly runTask: (task: Task, signal: AbortSignal, onEvent: EventSink | undefined) => Promise<TaskResult>
  /** The provider of an agent's model: the selector's choice is one call to it. */
  readonly providerFor: (agent: ResourceOf<'Agent'>) => Provider
}

export interface TeamRequest {
  /** The run's id; member tasks get ids under it. */
  readonly id: string
  /** The caller's conversation: earlier turns, then its latest message. */
  readonly messages: readonly ChatMessage[]
  readonly parameters: Readonly<Record<string, string>>
  /** The answer's text goes to `onEvent` as it is produced (for the turn known to give the answer). */
  readonly stream: boolean
  readonly signal: AbortSignal
  readonly onEvent?: EventSink
  /** How deep this team runs inside other teams or agents. */
  readonly depth?: number
  /** Who handed work down to this run, outermost first (`<ns>/<agent>` or `team:<ns>/<name>`). */
  readonly chain?: readonly string[]
}

/** What one member turn produced. */
export interface TurnOutcome {
  readonly result: TaskResult
  /** The member's answer, as later members see it. */
  readonly message?: ChatMessage
}

/** Runs the team to one result; never throws for a failure of a member (that is the result's outcome). */
export async function runTeam(
  team: ResourceOf<'Team'>,
  request: TeamRequest,
  deps: TeamDeps,
): Promise<TaskResult> {
  const t = tracer()
  if (t === undefined) return new TeamRun(team, request, deps).run()
  // A team answers its caller as an agent does; its turns are spans under it, each member's run under its turn.
  return inSpan(
    t,
    `invoke_agent ${team.ref.name}`,
    {
      attributes: {
        'gen_ai.operation.name': 'invoke_agent',
        'gen_ai.agent.name': team.ref.name,
        'gen_ai.agent.id': `team/${team.ref.namespace}/${team.ref.name}`,
        'ark.team.strategy': team.spec.strategy,
      },
    },
    traceContext.active(),
    async (span) => {
      const result = await new TeamRun(team, request, deps).run()
      span.setAttributes({
        'gen_ai.usage.input_tokens': result.usage.promptTokens,
        'gen_ai.usage.output_tokens': result.usage.completionTokens,
        'ark.outcome': result.outcome,
      })
      if (!succeeded(result)) failed(span, result.outcome, result.error ?? result.outcome)
      return result
    },
  )
}

/** One run of a team: the conversation so far, the usage, the turns, and the deadline of every member. */
export class TeamRun {
  readonly team: ResourceOf<'Team'>
  readonly id: string
  readonly request: TeamRequest
  readonly deps: TeamDeps
  /**
   * The caller's instructions (its system and developer messages before the conversation), which every member
   * is sent as they are; its earlier turns (with a remembered conversation), which each member's runtime fits
   * to its budget; and its latest message (with anything after it).
   */
  readonly preamble: readonly ChatMessage[]
  readonly history: readonly ChatMessage[]
  readonly input: readonly ChatMessage[]
  /** What members said, in order: what later members (and the selector) read. */
  readonly transcript: ChatMessage[] = []
  usage: Usage = NO_USAGE
  turns = 0
  /** Aborted by the caller, the team's timeout, its token budget, or a failed pipeline step. */
  readonly #stop = new AbortController()
  /** The answer's text went out as a stream already (the last turn streamed it). */
  streamed = false
  /** A member's daily budget was spent: when it resets (the team's Retry-After). */
  #resetsAt: string | undefined
  readonly #emit: EventSink
  readonly #started = performance.now()

  constructor(team: ResourceOf<'Team'>, request: TeamRequest, deps: TeamDeps) {
    this.team = team
    // As clients name it (team/<name>, team/<ns>/<name>): in messages, events and errors.
    this.id = deps.catalog.targetId('Team', team.ref)
    this.request = request
    this.deps = deps
    let last = -1
    for (let i = request.messages.length - 1; i >= 0; i--) {
      if (request.messages[i]?.role === 'user') {
        last = i
        break
      }
    }
    const before = last < 0 ? [] : request.messages.slice(0, last)
    let first = 0
    while (first < before.length && isInstruction(before[first])) first++
    this.preamble = before.slice(0, first)
    this.history = before.slice(first)
    this.input = last < 0 ? request.messages : request.messages.slice(last)
    this.#emit = request.onEvent ?? ignore
  }

  get signal(): AbortSignal {
    return this.#stop.signal
  }

  /** The text of the caller's latest message: a pipeline's `.input`, the selector's user turn. */
  get inputText(): string {
    const user = this.input[0]
    return user === undefined ? '' : textOf(user.content)
  }

  /** Tells the caller's sink; a sink that throws or rejects is the caller's trouble, never the team's. */
  tell(event: AgentEvent): void {
    try {
      const settled = this.#emit(event)
      if (settled !== undefined) settled.catch(ignore)
    } catch {
      // Nothing to do: the run goes on, and the caller's own failure surfaces where it reads.
    }
  }

  async run(): Promise<TaskResult> {
    const { team, request } = this
    const depth = request.depth ?? 0
    this.tell({
      type: 'team.start',
      team: this.id,
      task: request.id,
      strategy: team.spec.strategy,
      members: team.spec.members.length,
    })
    const onCaller = () => this.#stop.abort(request.signal.reason)
    if (request.signal.aborted) onCaller()
    else request.signal.addEventListener('abort', onCaller, { once: true })
    const timeoutMs = (team.spec.timeoutSeconds ?? 0) * 1000
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () =>
              this.#stop.abort(
                new DOMException(
                  `${this.id} timed out after ${String(team.spec.timeoutSeconds)} s`,
                  'TimeoutError',
                ),
              ),
            Math.min(timeoutMs, 2 ** 31 - 1),
          )
        : undefined
    let stop: Stop
    try {
      if (depth + 1 >= MAX_DEPTH)
        stop = Stop.failed(`teams and agents nest more than ${String(MAX_DEPTH)} deep`)
      else stop = await this.#strategy()
    } catch (err) {
      stop = err instanceof Stop ? err : Stop.failed(messageOf(err))
    } finally {
      clearTimeout(timer)
      request.signal.removeEventListener('abort', onCaller)
    }
    // A cut (caller, timeout) reads as that, whatever the member it reached said.
    if (this.#stop.signal.aborted && !succeededOutcome(stop.outcome)) {
      const reason: unknown = this.#stop.signal.reason
      const timedOut = reason instanceof DOMException && reason.name === 'TimeoutError'
      if (request.signal.aborted)
        stop = new Stop('cancelled', undefined, undefined, `${this.id} was cancelled`)
      else if (timedOut) stop = new Stop('timeout', undefined, undefined, reason.message)
    }
    // Whatever still runs (pipeline steps side by side) ends with the team.
    this.#stop.abort(new DOMException(`${this.id} ended`, 'AbortError'))
    const content = succeededOutcome(stop.outcome) ? (stop.content ?? this.lastAnswer()) : null
    if (request.stream && content !== null && content !== '' && !this.streamed)
      this.tell({ type: 'llm.delta', text: content })
    this.tell({
      type: 'team.complete',
      team: this.id,
      task: request.id,
      outcome: stop.outcome,
      turns: this.turns,
      usage: this.usage,
      seconds: (performance.now() - this.#started) / 1000,
      ...(stop.note === undefined ? {} : { note: stop.note }),
    })
    return {
      task: request.id,
      outcome: stop.outcome,
      content,
      usage: this.usage,
      iterations: this.turns,
      ...(stop.error === undefined ? {} : { error: stop.error }),
      ...(stop.outcome === 'budget_exceeded' && this.#resetsAt !== undefined
        ? { resetsAt: this.#resetsAt }
        : {}),
    }
  }

  async #strategy(): Promise<Stop> {
    const spec = this.team.spec
    switch (spec.strategy) {
      case 'sequential':
      case 'round-robin':
        return spec.loops || spec.strategy === 'round-robin' ? this.#loops() : this.#sequential()
      case 'graph':
        return this.#graph()
      case 'selector':
        return this.#selector()
      case 'pipeline':
        return runPipeline(this)
      case 'dynamic': {
        const entry = this.member(spec.entry ?? '')
        const out = await this.turn(entry, { last: true })
        return this.settle(out) ?? new Stop(out.result.outcome)
      }
    }
  }

  async #sequential(): Promise<Stop> {
    const members = this.team.spec.members
    for (const [i, m] of members.entries()) {
      const stop = this.settle(await this.turn(m, { last: i === members.length - 1 }))
      if (stop !== undefined) return stop
    }
    return new Stop('answer')
  }

  async #loops(): Promise<Stop> {
    const { members, maxTurns } = this.team.spec
    const limit = Math.min(maxTurns ?? DEFAULT_MAX_TURNS, MAX_TURNS)
    for (let i = 0; ; i = (i + 1) % members.length) {
      if (this.turns >= limit) return this.#maxTurns(limit)
      const stop = this.settle(await this.turn(members[i] as TeamMember, { last: false }))
      if (stop !== undefined) return stop
    }
  }

  async #graph(): Promise<Stop> {
    const { members, maxTurns } = this.team.spec
    const next = transitions(this.team)
    const limit = Math.min(maxTurns ?? DEFAULT_MAX_TURNS, MAX_TURNS)
    let current: TeamMember | undefined = members[0]
    while (current !== undefined) {
      const after = next.get(current.name)
      const stop = this.settle(await this.turn(current, { last: after === undefined }))
      if (stop !== undefined) return stop
      if (after === undefined) break
      if (this.turns >= limit) return this.#maxTurns(limit)
      current = this.member(after)
    }
    return new Stop('answer')
  }

  async #selector(): Promise<Stop> {
    const { members, maxTurns, selector, graph } = this.team.spec
    const legal = graph === undefined ? undefined : legalTransitions(this.team)
    const limit = Math.min(maxTurns ?? DEFAULT_MAX_TURNS, MAX_TURNS)
    let previous: TeamMember | undefined
    for (;;) {
      const candidates =
        previous === undefined || legal === undefined ? members : (legal.get(previous.name) ?? [])
      if (candidates.length === 0)
        return new Stop('answer', `${previous?.name ?? ''} has no onward transitions`)
      let chosen: TeamMember
      // Where the graph leaves one way on, there is nothing to choose (ARK); a team of one still asks, for
      // the selector may end it with terminate.
      if (legal !== undefined && previous !== undefined && candidates.length === 1)
        chosen = candidates[0] as TeamMember
      else {
        const pick = await selectNext(this, selector, candidates, previous)
        this.usage = addUsage(this.usage, pick.usage)
        const over = this.overBudget()
        if (over !== undefined) return over
        if ('terminate' in pick) return new Stop('terminated', pick.note, pick.terminate)
        if ('none' in pick) return new Stop('answer', pick.none)
        chosen = pick.member
      }
      const stop = this.settle(await this.turn(chosen, { last: false }))
      if (stop !== undefined) return stop
      previous = chosen
      if (this.turns >= limit) return this.#maxTurns(limit)
    }
  }

  #maxTurns(limit: number): Stop {
    return new Stop('answer', `Team conversation reached maximum turns limit (${String(limit)})`)
  }

  /** The Stop of a run past its team's maxTokens (ArkTeam), checked after every turn and selector call. */
  overBudget(): Stop | undefined {
    const maxTokens = this.team.spec.maxTokens
    if (maxTokens === undefined || this.usage.totalTokens <= maxTokens) return undefined
    return new Stop(
      'token_limit',
      undefined,
      undefined,
      `${this.id} used ${String(this.usage.totalTokens)} tokens, more than its maxTokens (${String(maxTokens)})`,
    )
  }

  /** The member of this team named `name` (strategies only name members the adapter checked). */
  member(name: string): TeamMember {
    const m = this.team.spec.members.find((x) => x.name === name)
    if (m === undefined) throw Stop.failed(`${this.id} has no member "${name}"`)
    return m
  }

  /**
   * What a strategy does after a turn: undefined to go on; a Stop when the member terminated the team or
   * failed. The member's answer joins the transcript.
   */
  settle(out: TurnOutcome): Stop | undefined {
    if (out.message !== undefined) this.transcript.push(out.message)
    const { result } = out
    if (result.outcome === 'terminated') return new Stop('terminated', undefined, result.content ?? '')
    if (!succeeded(result)) {
      if (result.resetsAt !== undefined) this.#resetsAt = result.resetsAt
      return new Stop(result.outcome, undefined, undefined, result.error)
    }
    return this.overBudget()
  }

  /**
   * Runs one member's turn on the conversation (or on `input`, a pipeline step's own prompt): a task on
   * the member agent's pool, or the member team here. `last` marks a turn known to give the team's answer:
   * its text is streamed as it comes.
   */
  turn(
    member: TeamMember,
    options: { readonly last: boolean; readonly input?: readonly ChatMessage[] },
  ): Promise<TurnOutcome> {
    const t = tracer()
    if (t === undefined) return this.#turn(member, options)
    // The member's task is queued inside this span: its run on the member's pool is the turn's child.
    return inSpan(
      t,
      `team_turn ${member.name}`,
      { attributes: { 'ark.team.member': member.name, 'ark.team.member_type': member.type } },
      traceContext.active(),
      async (span) => {
        const outcome = await this.#turn(member, options)
        span.setAttribute('ark.outcome', outcome.result.outcome)
        if (!succeeded(outcome.result))
          failed(span, outcome.result.outcome, outcome.result.error ?? outcome.result.outcome)
        return outcome
      },
    )
  }

  async #turn(
    member: TeamMember,
    options: { readonly last: boolean; readonly input?: readonly ChatMessage[] },
  ): Promise<TurnOutcome> {
    const turn = ++this.turns
    const started = performance.now()
    this.tell({ type: 'team.turn', team: this.id, turn, member: member.name, memberType: member.type })
    const stream = this.request.stream && options.last
    // The history goes apart: each member's runtime keeps what fits its own token budget.
    const incoming = [...this.preamble, ...(options.input ?? [...this.transcript, ...this.input])]
    const forward: EventSink = (e) => {
      // Only the answer's own text is the caller's to read as it comes; other members' text is not the answer.
      if (e.type === 'llm.delta' && !stream) return
      if (e.type === 'team.start' || e.type === 'team.complete') return
      return this.#emit(e)
    }
    const id = `${this.request.id}.${String(turn)}`
    const chain = [...(this.request.chain ?? []), `team:${this.team.ref.namespace}/${this.team.ref.name}`]
    let result: TaskResult
    try {
      if (member.type === 'team') {
        const sub = this.deps.catalog.get('Team', member.ref)
        result =
          sub === undefined
            ? notRun({ id }, 'error', `team ${refName(member.ref)} (member ${member.name}) does not exist`)
            : await runTeam(
                sub,
                {
                  id,
                  messages: [...this.history, ...incoming],
                  parameters: this.request.parameters,
                  stream,
                  signal: this.#stop.signal,
                  onEvent: forward,
                  depth: (this.request.depth ?? 0) + 1,
                  chain,
                },
                this.deps,
              )
      } else {
        const task: Task = {
          id,
          agent: member.ref,
          messages: incoming,
          ...(this.history.length === 0 ? {} : { history: this.history }),
          ...(member.limits === undefined ? {} : { limits: member.limits }),
          parameters: this.request.parameters,
          stream,
          depth: (this.request.depth ?? 0) + 1,
          chain,
        }
        result = await this.deps.runTask(task, this.#stop.signal, forward)
      }
    } catch (err) {
      // A full or unreachable pool, a broken queue: the turn failed, and with it the team.
      result = notRun({ id }, 'error', messageOf(err))
    }
    this.usage = addUsage(this.usage, result.usage)
    if (stream && succeeded(result) && (result.content ?? '') !== '') this.streamed = true
    const error = succeeded(result)
      ? undefined
      : `member ${member.name} of ${this.id} ended with ${result.outcome}: ${result.error ?? 'no reason given'}`
    this.tell({
      type: 'team.turn.complete',
      team: this.id,
      turn,
      member: member.name,
      outcome: result.outcome,
      seconds: (performance.now() - started) / 1000,
      ...(error === undefined ? {} : { error }),
    })
    const content = result.content ?? ''
    return {
      result: error === undefined ? result : { ...result, error },
      ...(succeeded(result) && content !== ''
        ? { message: { role: 'assistant', name: speakerName(member.name), content } satisfies ChatMessage }
        : {}),
    }
  }

  /** The team's answer when nothing else says: the last non-empty thing a member said (ARK). */
  lastAnswer(): string {
    for (let i = this.transcript.length - 1; i >= 0; i--) {
      const m = this.transcript[i]
      if (m?.role === 'assistant' && m.content !== null && m.content !== '') return m.content
    }
    return ''
  }

  /** Stops every member turn under way (a pipeline step failed). */
  abort(reason: unknown): void {
    this.#stop.abort(reason)
  }
}

/** Graph edges as ARK reads them: one next member per member, the last listed edge winning. */
export function transitions(team: ResourceOf<'Team'>): ReadonlyMap<string, string> {
  const next = new Map<string, string>()
  for (const e of team.spec.graph?.edges ?? []) next.set(e.from, e.to)
  return next
}

/** Graph edges for a selector: every member an edge leads to from each member. */
function legalTransitions(team: ResourceOf<'Team'>): ReadonlyMap<string, readonly TeamMember[]> {
  const out = new Map<string, TeamMember[]>()
  for (const e of team.spec.graph?.edges ?? []) {
    const to = team.spec.members.find((m) => m.name === e.to)
    if (to === undefined) continue
    const list = out.get(e.from) ?? []
    if (!list.includes(to)) list.push(to)
    out.set(e.from, list)
  }
  return out
}

/** A system or developer message: the caller's instructions, not a turn of the conversation. */
function isInstruction(m: ChatMessage | undefined): boolean {
  return m?.role === 'system' || m?.role === 'developer'
}

/**
 * A member's name as OpenAI's `name` of a message allows it (no whitespace nor `<|\/>`, at most 64
 * characters): ArkTeam role names are free text, and a name the API refuses would fail the next member's call.
 */
export function speakerName(name: string): string {
  return name.replace(/[\s<|\\/>]+/g, '_').slice(0, 64) || 'member'
}

function succeededOutcome(outcome: Outcome): boolean {
  return outcome === 'answer' || outcome === 'terminated'
}

function refName(ref: ObjectRef): string {
  return `${ref.namespace}/${ref.name}`
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function ignore(): void {
  // No one listens.
}
