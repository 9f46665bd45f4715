/**
 * The agent runtime: turns a task into a run of the tool loop. It keeps one prepared agent per Agent and one
 * provider per Model, and drops them when the resource or anything it depends on changes (a Tool, a Secret),
 * so the next task prepares afresh. A pool worker owns one; in `ark dev` the gateway's in-process pools do.
 */
import type { AnyResource, ObjectRef, ResourceOf } from '../../controller/api/index.ts'
import { resourceKey } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { TokenBudget } from './budget.ts'
import { BudgetUnavailableError, MemoryBudget, RunBudget, nextUtcMidnight, spentMessage } from './budget.ts'
import type { AgentEvent, EventSink } from './events.ts'
import type { ChatMessage } from './messages.ts'
import { runLoop, toolChars } from './loop.ts'
import { CHARS_PER_TOKEN, DEFAULT_HISTORY_TOKENS, INPUT_SHARE, fitHistory } from './memory/trim.ts'
import type { PreparedAgent } from './prepare.ts'
import { PrepareError, prepareAgent } from './prepare.ts'
import type { Provider, ProviderConfig } from './provider.ts'
import { ProviderError } from './provider.ts'
import { remoteAgentProvider } from './providers/registry.ts'
import { withRedaction } from './providers/redacting.ts'
import { Redactor } from './redactor.ts'
import type { Enqueue, Submit } from './subtasks.ts'
import { RunTasks, checkDepth, childTask } from './subtasks.ts'
import type { Task, TaskResult } from './task.ts'
import { notRun, succeeded } from './task.ts'
import type { Tracer } from '@opentelemetry/api'
import { SpanKind } from '@opentelemetry/api'
import { contextOf, failed, inSpan, tracer } from '../trace/tracing.ts'
import type { BuiltinTool } from './tools/tool.ts'
import type { ServerTools, ToolKinds } from './tools/kinds.ts'
import type { PluginSpec, Sandbox } from '../../sandbox/index.ts'
import { ModuleRejected } from '../../sandbox/index.ts'
import { ToolSpecError, wasmPluginSpec, webhookPluginSpec } from './tools/sandboxed.ts'

export interface RuntimeOptions {
  readonly catalog: Catalog
  /** Builds the provider of a Model's resolved values (providers/registry.ts: providerFactory). */
  readonly createProvider: (config: ProviderConfig) => Provider
  readonly builtins: Readonly<Record<string, BuiltinTool>>
  /** Tool-loop bound per task (default 20). */
  readonly maxIterations?: number
  /** Task timeout for agents that do not set limits.timeoutSeconds (default 120 s). */
  readonly timeoutMs?: number
  /** Sees every event of every task (metrics). */
  readonly observe?: (agent: PreparedAgent, event: AgentEvent) => void
  /** Runs a task for another agent (agent-as-tool, delegate), through that agent's pool. */
  readonly submit?: Submit
  /**
   * Queues a task for another agent without waiting for its result (submit_subtask), so that a full pool is
   * refused at once. Without it, subtasks go through `submit`.
   */
  readonly enqueue?: Enqueue
  /** Runs webhook and `wasm` tools. */
  readonly sandbox?: Sandbox
  /** The kinds of tool this runtime runs, by Tool type (default TOOL_KINDS; an assembly adds MCP). */
  readonly toolKinds?: ToolKinds
  /** The tools of ArkAgent `mcpServers` entries (an assembly's MCP client); without it, such agents cannot run. */
  readonly serverTools?: ServerTools
  /** Bound of one agent's preparation (its tool servers connecting), default 30 s. */
  readonly prepareTimeoutMs?: number
  /**
   * Where agents' daily token usage is counted (limits.maxDailyTokens): shared on Redis by runtimes whose
   * pools are; default one of this runtime's own (MemoryBudget), closed with it.
   */
  readonly budget?: TokenBudget
  /** The clock of daily budgets (tests move it past midnight); the budget's own should be the same. */
  readonly now?: () => Date
}

/** A preparation, done or under way, of one version of an Agent. */
interface Preparation {
  readonly resource: ResourceOf<'Agent'>
  readonly prepared: Promise<PreparedAgent>
  /** Set once it resolved, so that a run on a warm agent does not wait a turn of the event loop. */
  done?: PreparedAgent
  /** Runs using it (or waiting for it): what it holds is let go only after the last one ends. */
  users: number
  /** Replaced or forgotten: disposed once no run uses it. */
  dropped: boolean
}

export interface RunContext {
  readonly signal: AbortSignal
  readonly emit?: EventSink
}

export class AgentRuntime {
  readonly #options: RuntimeOptions
  readonly #catalog: Catalog
  readonly #prepared = new Map<string, Preparation>()
  /** Agents kept prepared ahead of their tasks (a pool's): prepared again as soon as they change. */
  readonly #warm = new Set<string>()
  #warmAll = false
  /** A re-preparation of dropped warm agents is queued (one per burst of catalog changes). */
  #rewarmQueued = false
  readonly #providers = new Map<string, Provider>()
  readonly #unsubscribe: () => void
  readonly #maxIterations: number
  readonly #timeoutMs: number
  readonly #budget: TokenBudget
  readonly #ownBudget: boolean
  readonly #now: () => Date
  #submit: RuntimeOptions['submit']
  #enqueue: RuntimeOptions['enqueue']

  constructor(options: RuntimeOptions) {
    this.#options = options
    this.#catalog = options.catalog
    this.#maxIterations = options.maxIterations ?? 20
    this.#timeoutMs = options.timeoutMs ?? 120_000
    this.#now = options.now ?? (() => new Date())
    this.#ownBudget = options.budget === undefined
    this.#budget = options.budget ?? new MemoryBudget({ now: this.#now })
    this.#submit = options.submit
    this.#enqueue = options.enqueue
    this.#unsubscribe = options.catalog.store.subscribe((events) => {
      for (const e of events) {
        if (e.type === 'status') continue
        this.#invalidate(e.resource.key)
        // Whether an agent has `delegate`, and to which roles, is written in the Team that points at it.
        this.#invalidateMembers(e.resource)
        if (e.type === 'modified') this.#invalidateMembers(e.previous)
      }
      if (this.#warmAll || this.#warm.size > 0) this.#rewarm()
    })
  }

  /** Wires agent-as-tool calls to the queue, which is built after the runtime. */
  set submit(submit: RuntimeOptions['submit']) {
    this.#submit = submit
  }

  /** Wires submit_subtask to the queue, which is built after the runtime. */
  set enqueue(enqueue: RuntimeOptions['enqueue']) {
    this.#enqueue = enqueue
  }

  /** Where agents' daily token usage is counted: `usedToday(agent)` is what status reports. */
  get budget(): TokenBudget {
    return this.#budget
  }

  close(): void {
    if (this.#ownBudget) void this.#budget.close()
    this.#unsubscribe()
    this.#warm.clear()
    for (const key of [...this.#prepared.keys()]) this.#drop(key)
    for (const p of this.#providers.values()) p.dispose?.()
    this.#providers.clear()
  }

  /**
   * The prepared agent, built on first use and kept until the agent or something it depends on changes. Rejects
   * with PrepareError when the agent cannot run as declared.
   */
  prepare(agent: ResourceOf<'Agent'>): Promise<PreparedAgent> {
    const p = this.#preparation(agent)
    return p.done === undefined ? p.prepared : Promise.resolve(p.done)
  }

  /**
   * Prepares the agent now, ahead of its first task, and again whenever it changes, so that its tasks find it
   * ready (a pool does this when it starts: tool servers connect then, not on a caller's time). A failure is
   * left for the task that needs the agent to report.
   */
  warm(ref: ObjectRef): void {
    const key = resourceKey('Agent', ref.namespace, ref.name)
    this.#warm.add(key)
    const agent = this.#catalog.get('Agent', ref)
    if (agent !== undefined) this.#preparation(agent)
  }

  /**
   * Keeps every Agent of the catalog warm, those to come included: for a process whose in-process pools serve
   * every agent (`ark dev`).
   */
  warmAll(): void {
    this.#warmAll = true
    this.#rewarm()
  }

  /** Stops keeping the agent warm (its pool stopped) and lets go of what its preparation holds. */
  cool(ref: ObjectRef): void {
    const key = resourceKey('Agent', ref.namespace, ref.name)
    this.#warm.delete(key)
    this.#drop(key)
  }

  #preparation(agent: ResourceOf<'Agent'>): Preparation {
    const current = this.#prepared.get(agent.key)
    if (current !== undefined && current.resource === agent) return current
    if (current !== undefined) this.#drop(agent.key)
    const timeoutMs = this.#options.prepareTimeoutMs ?? 30_000
    const deadline = new AbortController()
    // Its tools' servers changed what they offer: this preparation goes, and a warm agent is prepared again.
    const stale = () => {
      if (this.#prepared.get(agent.key) !== entry) return
      this.#drop(agent.key)
      if (this.#warmAll || this.#warm.has(agent.key)) this.#rewarm()
    }
    const building = prepareAgent(agent, {
      catalog: this.#catalog,
      builtins: this.#options.builtins,
      maxIterations: this.#maxIterations,
      timeoutMs: this.#timeoutMs,
      id: this.#catalog.targetId('Agent', agent.ref),
      ...(this.#options.sandbox === undefined ? {} : { sandbox: this.#options.sandbox }),
      ...(this.#options.toolKinds === undefined ? {} : { toolKinds: this.#options.toolKinds }),
      ...(this.#options.serverTools === undefined ? {} : { serverTools: this.#options.serverTools }),
      signal: deadline.signal,
      stale,
    })
    // The deadline holds whatever a tool kind does with the signal; one that lands late is let go at once.
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const message = `preparing its tools took longer than ${String(timeoutMs / 1000)} s`
        deadline.abort(new DOMException(message, 'TimeoutError'))
        reject(new PrepareError(message))
        void building.then((p) => p.dispose(), ignore)
      }, timeoutMs)
    })
    const prepared = Promise.race([building, late]).finally(() => clearTimeout(timer))
    const entry: Preparation = { resource: agent, prepared, users: 0, dropped: false }
    this.#prepared.set(agent.key, entry)
    prepared.then(
      (p) => {
        entry.done = p
        // Dropped meanwhile (the agent changed while its tools connected): what it holds goes once no run
        // waiting for it is left.
        if (entry.dropped && entry.users === 0) p.dispose()
      },
      () => {
        // A failed preparation is not kept: the next task tries again (a tool server may be back).
        if (this.#prepared.get(agent.key) === entry) this.#prepared.delete(agent.key)
      },
    )
    return entry
  }

  /**
   * Forgets the agent's preparation and lets go of what it holds once it is done and no run uses it: a run
   * under way keeps the tools (and MCP connections) it started with until it ends.
   */
  #drop(key: string): void {
    const entry = this.#prepared.get(key)
    if (entry === undefined) return
    this.#prepared.delete(key)
    entry.dropped = true
    if (entry.done !== undefined && entry.users === 0) entry.done.dispose()
    // Still under way: the then() in #preparation sees it dropped and disposes it when it lands.
  }

  /** A run is done with the preparation: the last one out of a dropped preparation disposes it. */
  #release(entry: Preparation): void {
    entry.users--
    if (entry.dropped && entry.users === 0) entry.done?.dispose()
  }

  /** Warm agents that were dropped (they or a dependency changed) are prepared again, once per burst of changes. */
  #rewarm(): void {
    if (this.#rewarmQueued) return
    this.#rewarmQueued = true
    queueMicrotask(() => {
      this.#rewarmQueued = false
      if (this.#warmAll) {
        for (const agent of this.#catalog.list('Agent'))
          if (!this.#prepared.has(agent.key)) this.#preparation(agent)
        return
      }
      for (const key of this.#warm) {
        if (this.#prepared.has(key)) continue
        const agent = this.#catalog.store.get(key)
        if (agent?.kind === 'Agent') this.#preparation(agent)
      }
    })
  }

  /** The provider the agent's model binding names, created once per Model. */
  providerFor(agent: ResourceOf<'Agent'>): Provider {
    if (agent.spec.executionEngine?.name === 'a2a') {
      // A remote A2A agent in the place of a model: one provider per agent, dropped when it or its server change.
      let p = this.#providers.get(agent.key)
      if (p === undefined) {
        p = this.#remoteAgent(agent)
        this.#providers.set(agent.key, p)
      }
      return p
    }
    const binding = agent.spec.model ?? { ref: { namespace: agent.ref.namespace, name: 'default' } }
    if ('id' in binding) {
      // ArkAgent's `model: gpt-4o`: one provider per model id, shared by every agent that names it.
      const key = `${binding.provider}:${binding.id}`
      let p = this.#providers.get(key)
      if (p === undefined) {
        p = this.#create({ provider: binding.provider, model: binding.id, headers: {}, properties: {} })
        this.#providers.set(key, p)
      }
      return p
    }
    const model = this.#catalog.get('Model', binding.ref)
    if (model === undefined)
      throw new PrepareError(`Model ${binding.ref.namespace}/${binding.ref.name} not found`)
    return this.modelProvider(model)
  }

  /** The provider of a Model, created on first use and dropped when the Model or a Secret it reads changes. */
  modelProvider(model: ResourceOf<'Model'>): Provider {
    let p = this.#providers.get(model.key)
    if (p === undefined) {
      p = this.#create(this.#configOf(model))
      this.#providers.set(model.key, p)
    }
    return p
  }

  /**
   * Probes the model a Model resource, or an agent's own model id (ArkAgent), points at: the verdict for its
   * ModelReachable condition. Undefined when there is nothing to probe (an agent on a Model resource, whose
   * Model is probed itself) or when the Model's values do not resolve, which its Available condition says.
   */
  async probe(
    resource: ResourceOf<'Model'> | ResourceOf<'Agent'>,
    signal: AbortSignal,
  ): Promise<ProbeVerdict | undefined> {
    let provider: Provider
    try {
      if (resource.kind === 'Model') provider = this.modelProvider(resource)
      else if (resource.spec.model !== undefined && 'id' in resource.spec.model)
        provider = this.providerFor(resource)
      else return undefined
    } catch (err) {
      if (err instanceof PrepareError && err.cause instanceof ProviderError) return verdictOf(err.cause)
      if (err instanceof PrepareError) return undefined
      throw err
    }
    if (provider.standIn !== undefined)
      return { status: 'True', reason: 'MockStandIn', message: provider.standIn }
    try {
      await provider.probe(signal)
      return {
        status: 'True',
        reason: 'ProbeSucceeded',
        message: `${provider.provider} model ${provider.model} answered the probe`,
      }
    } catch (err) {
      if (err instanceof ProviderError) return verdictOf(err)
      if (signal.aborted) return undefined
      return {
        status: 'False',
        reason: 'ProbeFailed',
        message: err instanceof Error ? err.message : String(err),
      }
    }
  }

  /**
   * Loads the module of a Tool that runs in the sandbox: the verdict for its ModuleLoaded condition, or
   * undefined for Tools without one (and when the Tool's values do not resolve, which Available says).
   */
  async checkTool(tool: ResourceOf<'Tool'>, signal: AbortSignal): Promise<ProbeVerdict | undefined> {
    const sandbox = this.#options.sandbox
    const spec = tool.spec
    if (sandbox === undefined || (spec.type !== 'wasm' && spec.type !== 'http')) return undefined
    let plugin: PluginSpec
    try {
      plugin =
        spec.type === 'wasm'
          ? wasmPluginSpec(spec.wasm, tool.ref.namespace, this.#catalog)
          : webhookPluginSpec(spec.http)
    } catch (err) {
      if (err instanceof ToolSpecError) {
        // A value that does not resolve is Available's to report; a URL template that cannot work is ours.
        return spec.type === 'http'
          ? { status: 'False', reason: 'InvalidWebhook', message: err.message }
          : undefined
      }
      throw err
    }
    try {
      const loaded = await sandbox.load(plugin, signal)
      return {
        status: 'True',
        reason: 'ModuleLoaded',
        message: `module sha256:${loaded.digest.slice(0, 12)} compiled; it exports ${plugin.function}`,
      }
    } catch (err) {
      if (err instanceof ModuleRejected)
        return { status: 'False', reason: 'ModuleRejected', message: err.message }
      throw err
    }
  }

  run(task: Task, context: RunContext): Promise<TaskResult> {
    const t = tracer()
    return t === undefined ? this.#run(task, context) : this.#tracedRun(t, task, context)
  }

  /**
   * A run in an `invoke_agent` span, child of whoever queued the task (its carrier), after a `queue wait`
   * span for the time it waited in its pool.
   */
  #tracedRun(t: Tracer, task: Task, context: RunContext): Promise<TaskResult> {
    const parent = contextOf(task.trace)
    const pool = `${task.agent.namespace}/${task.agent.name}`
    if (task.trace !== undefined && Number.isFinite(task.trace.queuedAt)) {
      t.startSpan(
        'queue wait',
        {
          kind: SpanKind.CONSUMER,
          startTime: task.trace.queuedAt,
          attributes: { 'ark.pool': pool, 'ark.task.id': task.id },
        },
        parent,
      ).end()
    }
    return inSpan(
      t,
      `invoke_agent ${task.agent.name}`,
      {
        kind: SpanKind.INTERNAL,
        attributes: {
          'gen_ai.operation.name': 'invoke_agent',
          'gen_ai.agent.name': task.agent.name,
          'gen_ai.agent.id': pool,
          'ark.task.id': task.id,
          'ark.depth': task.depth,
        },
      },
      parent,
      async (span) => {
        const result = await this.#run(task, context)
        span.setAttributes({
          'gen_ai.usage.input_tokens': result.usage.promptTokens,
          'gen_ai.usage.output_tokens': result.usage.completionTokens,
          'ark.outcome': result.outcome,
          'ark.iterations': result.iterations,
        })
        if (!succeeded(result)) failed(span, result.outcome, result.error ?? result.outcome)
        return result
      },
    )
  }

  async #run(task: Task, context: RunContext): Promise<TaskResult> {
    const agent = this.#catalog.get('Agent', task.agent)
    if (agent === undefined)
      return notRun(task, 'error', `Agent ${task.agent.namespace}/${task.agent.name} not found`)
    // Held from before the wait, so that a drop meanwhile does not dispose what this run is about to use.
    const entry = this.#preparation(agent)
    entry.users++
    try {
      return await this.#runPrepared(task, context, agent, entry)
    } finally {
      this.#release(entry)
    }
  }

  async #runPrepared(
    task: Task,
    context: RunContext,
    agent: ResourceOf<'Agent'>,
    entry: Preparation,
  ): Promise<TaskResult> {
    let prepared: PreparedAgent
    let provider: Provider
    let system: ChatMessage | undefined
    try {
      prepared = withTurnLimits(entry.done ?? (await entry.prepared), task)
      provider = this.providerFor(agent)
      system = prepared.systemMessage(task.parameters)
    } catch (err) {
      if (err instanceof PrepareError)
        return notRun(
          task,
          'error',
          `${this.#catalog.targetId('Agent', agent.ref)} cannot run: ${err.message}`,
        )
      throw err
    }
    const limit = agent.spec.limits.maxDailyTokens
    let budget: RunBudget | undefined
    if (limit !== undefined) {
      const checked = await this.#checkBudget(task, agent, prepared.id, limit)
      if (checked instanceof RunBudget) budget = checked
      else return checked
    }
    const observe = this.#options.observe
    const sink = context.emit
    const emit: EventSink =
      observe === undefined
        ? (sink ?? ignore)
        : sink === undefined
          ? (e) => observe(prepared, e)
          : (e) => {
              observe(prepared, e)
              // The sink's promise (a slow client) is the run's to wait for.
              return sink(e)
            }
    // A timer cleared when the run ends, rather than AbortSignal.timeout: that one lives on for the whole
    // timeout after a fast run, and on Deno it holds the process open at shutdown.
    const deadline = new AbortController()
    // setTimeout overflows above 2^31-1 ms (~24.8 days) and would fire at once.
    const timer = setTimeout(
      () => {
        deadline.abort(
          new DOMException(`the task timed out after ${String(prepared.timeoutMs)} ms`, 'TimeoutError'),
        )
      },
      Math.min(prepared.timeoutMs, 2 ** 31 - 1),
    )
    const tasks = new RunTasks({
      catalog: this.#catalog,
      parent: task,
      submit: this.#submit,
      enqueue: this.#enqueue,
    })
    let result
    try {
      result = await runLoop(prepared, {
        task: task.id,
        messages: this.#conversation(prepared, system, task),
        provider,
        signal: AbortSignal.any([context.signal, deadline.signal]),
        emit,
        stream: task.stream,
        runAgent: (key, input, s) => this.#runSubtask(task, key, input, s),
        tasks,
        ...(budget === undefined ? {} : { budget }),
      })
    } finally {
      clearTimeout(timer)
      // Subtasks the model did not wait for end with the run that queued them.
      tasks.close()
    }
    const error =
      result.outcome === 'timeout'
        ? `${prepared.id} timed out after ${String(prepared.timeoutMs / 1000)} s`
        : result.error
    return {
      task: task.id,
      ...result,
      ...(error === undefined ? {} : { error }),
      ...(result.outcome === 'budget_exceeded'
        ? { resetsAt: nextUtcMidnight(this.#now()).toISOString() }
        : {}),
    }
  }

  /**
   * The run's view of its agent's daily budget; or, when the day's budget is spent (or cannot be read: the
   * budget fails closed), the result of a run that was not started.
   */
  async #checkBudget(
    task: Task,
    agent: ResourceOf<'Agent'>,
    id: string,
    limit: number,
  ): Promise<RunBudget | TaskResult> {
    let used: number
    try {
      used = await this.#budget.usedToday(agent.ref)
    } catch (err) {
      if (!(err instanceof BudgetUnavailableError)) throw err
      return notRun(
        task,
        'error',
        `${id} was not started: its daily token budget (limits.maxDailyTokens) cannot be checked: ${err.message}`,
      )
    }
    const now = this.#now()
    if (used >= limit) {
      return {
        ...notRun(task, 'budget_exceeded', spentMessage(id, used, limit, now)),
        resetsAt: nextUtcMidnight(now).toISOString(),
      }
    }
    return new RunBudget({ budget: this.#budget, agent: agent.ref, id, limit, used, now: this.#now })
  }

  /**
   * What the model is sent: the system prompt, the history that fits the agent's budget with it and the
   * tools (oldest exchanges dropped first), then the task's messages.
   */
  #conversation(
    prepared: PreparedAgent,
    system: ChatMessage | undefined,
    task: Task,
  ): readonly ChatMessage[] {
    const history = task.history ?? []
    if (history.length === 0) return system === undefined ? task.messages : [system, ...task.messages]
    const budget = prepared.maxTokensPerCall ?? DEFAULT_HISTORY_TOKENS
    // fitHistory gives history and incoming INPUT_SHARE of the budget; the tools are part of that input too.
    const tools = toolChars(prepared.toolDefinitions) / CHARS_PER_TOKEN / INPUT_SHARE
    const incoming = system === undefined ? task.messages : [system, ...task.messages]
    const kept = fitHistory(history, incoming, budget - tools)
    return system === undefined ? [...kept, ...task.messages] : [system, ...kept, ...task.messages]
  }

  async #runSubtask(parent: Task, key: string, input: string, signal: AbortSignal): Promise<string> {
    const submit = this.#submit
    if (submit === undefined) throw new Error('agent tools need a queue to run on')
    checkDepth(parent.depth)
    const [namespace = '', name = ''] = key.split('/')
    const result = await submit(childTask(parent, { namespace, name }, input), signal)
    if (result.outcome !== 'answer' && result.outcome !== 'terminated') {
      throw new Error(result.error ?? `agent ${name} ended with ${result.outcome}`)
    }
    return result.content ?? ''
  }

  #create(config: ProviderConfig): Provider {
    try {
      return this.#options.createProvider(config)
    } catch (err) {
      // A Model that cannot have a client (no key, no endpoint) cannot run; say why, keep the cause.
      const message = err instanceof Error ? err.message : String(err)
      throw new PrepareError(message, { cause: err })
    }
  }

  /**
   * The provider of an agent that runs on a remote A2A server: at the address its annotation gives, or its
   * A2AServer's (as discovered, else as written), with the server's headers; Secret values are redacted.
   */
  #remoteAgent(agent: ResourceOf<'Agent'>): Provider {
    const ns = agent.ref.namespace
    const { serverName, address } = agent.spec.a2a ?? {}
    const server =
      serverName === undefined
        ? undefined
        : this.#catalog.get('A2AServer', { namespace: ns, name: serverName })
    if (serverName !== undefined && server === undefined)
      throw new PrepareError(`A2AServer ${ns}/${serverName} not found`)
    const secrets: string[] = []
    const read = (what: string, source: Parameters<Catalog['resolveValue']>[1]) => {
      const v = this.#catalog.resolveValue(ns, source)
      if (!v.ok) throw new PrepareError(`A2AServer ${ns}/${serverName ?? ''} ${what}: ${v.message}`)
      if (v.value !== undefined && 'secretKeyRef' in source) secrets.push(v.value)
      return v.value
    }
    const headers: Record<string, string> = {}
    for (const h of server?.spec.headers ?? []) {
      const value = read(`header ${h.name}`, h.source)
      if (value !== undefined) headers[h.name] = value
    }
    // An agent an A2AServer made is called at the server's own address (its annotation shows only the origin
    // of an address kept in a Secret); one without a server, at its annotation's.
    const url = server === undefined ? address : read('address', server.spec.address)
    if (url === undefined || url === '')
      throw new PrepareError(`agent ${agent.ref.name} runs on A2A but has no address`)
    return withRedaction(
      remoteAgentProvider({ address: url, headers, name: serverName ?? agent.ref.name }),
      Redactor.of(secrets),
    )
  }

  #configOf(model: ResourceOf<'Model'>): ProviderConfig {
    const ns = model.ref.namespace
    // What came from Secrets is kept out of everything ark writes (the provider's redactor).
    const secrets: string[] = []
    const read = (what: string, source: Parameters<Catalog['resolveValue']>[1] | undefined) => {
      if (source === undefined) return undefined
      const v = this.#catalog.resolveValue(ns, source)
      if (!v.ok) throw new PrepareError(`Model ${ns}/${model.ref.name} ${what}: ${v.message}`)
      if (v.value !== undefined && 'secretKeyRef' in source) secrets.push(v.value)
      return v.value
    }
    const map = (values: ResourceOf<'Model'>['spec']['headers'], what: string) => {
      const out: Record<string, string> = {}
      for (const v of values) {
        const value = read(`${what} ${v.name}`, v.source)
        if (value !== undefined) out[v.name] = value
      }
      return out
    }
    const s = model.spec
    const baseUrl = read('baseUrl', s.baseUrl)
    const apiKey = read('apiKey', s.apiKey)
    const apiVersion = read('apiVersion', s.apiVersion)
    return {
      provider: s.provider,
      model: read('model', s.model) ?? model.ref.name,
      ...(baseUrl === undefined ? {} : { baseUrl }),
      ...(apiKey === undefined ? {} : { apiKey }),
      ...(apiVersion === undefined ? {} : { apiVersion }),
      headers: map(s.headers, 'header'),
      properties: map(s.properties, 'property'),
      secrets,
    }
  }

  #invalidateMembers(r: AnyResource): void {
    if (r.kind !== 'Team') return
    for (const m of r.spec.members) {
      if (m.type === 'agent') this.#invalidate(resourceKey('Agent', m.ref.namespace, m.ref.name))
    }
  }

  /** Drops what was built from `key` and from everything that depends on it, transitively. */
  #invalidate(key: string): void {
    const seen = new Set<string>()
    const visit = (k: string) => {
      if (seen.has(k)) return
      seen.add(k)
      this.#drop(k)
      this.#providers.get(k)?.dispose?.()
      this.#providers.delete(k)
      for (const d of this.#catalog.dependentsOf(k)) visit(d)
    }
    visit(key)
  }
}

/** What a probe says, for the ModelReachable condition. */
export interface ProbeVerdict {
  readonly status: 'True' | 'False'
  readonly reason: string
  readonly message: string
}

/**
 * The prepared agent under a task's tighter bounds (a team role's limits), as a view for this run; the
 * prepared agent itself, shared by every run, is not changed.
 */
function withTurnLimits(prepared: PreparedAgent, task: Task): PreparedAgent {
  const limits = task.limits
  if (limits === undefined) return prepared
  const tighter = (own: number | undefined, role: number | undefined) =>
    role === undefined ? own : own === undefined ? role : Math.min(own, role)
  const maxTokensPerCall = tighter(prepared.maxTokensPerCall, limits.maxTokensPerCall)
  const timeoutMs = tighter(
    prepared.timeoutMs,
    limits.timeoutSeconds === undefined ? undefined : limits.timeoutSeconds * 1000,
  )
  return {
    ...prepared,
    ...(maxTokensPerCall === undefined ? {} : { maxTokensPerCall }),
    timeoutMs: timeoutMs ?? prepared.timeoutMs,
  }
}

function verdictOf(err: ProviderError): ProbeVerdict {
  const down = (reason: string): ProbeVerdict => ({ status: 'False', reason, message: err.message })
  if (err.code === 'missing_api_key') return down('MissingAPIKey')
  if (err.code === 'misconfigured') return down('Misconfigured')
  if (err.status === 401 || err.status === 403) return down('Unauthorized')
  if (err.status === 404 || err.code === 'model_not_found') return down('ModelNotFound')
  // Rate limited means reachable, with a working key: the model serves, just not this instant.
  if (err.status === 429) return { status: 'True', reason: 'RateLimited', message: err.message }
  if (err.status === undefined) return down('Unreachable')
  return down('UpstreamError')
}

function ignore(): void {
  // No one listens.
}
