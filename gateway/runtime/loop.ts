/**
 * The tool loop: call the model with the conversation and the agent's tools, run the tool calls it makes (all
 * of one turn at once), feed the results back, and repeat until the model answers without tools, a tool
 * terminates the run, the iteration bound is reached, or the task's signal fires (timeout or cancellation).
 *
 * This is the hot path. Everything that can be prepared once per agent (tool definitions, validators, the
 * provider) arrives prepared; an iteration allocates only the conversation's new messages and the events.
 */
import type { JsonSchema } from '../../controller/api/index.ts'
import type { AgentEvent, EventSink, Outcome, ToolOutcome } from './events.ts'
import { LOOP_DELAY_US, spin } from './failpoint.ts'
import type { AssistantMessage, ChatMessage, ToolCall, ToolDefinition, Usage } from './messages.ts'
import { NO_USAGE, addUsage, textOf } from './messages.ts'
import type { Completion, CompletionRequest, Provider } from './provider.ts'
import type { JsonValidator } from './schema.ts'
import type { PreparedTool, ToolContext, ToolResult } from './tools/tool.ts'
import type { Tracer } from '@opentelemetry/api'
import { SpanKind, context as traceContext } from '@opentelemetry/api'
import { failed, inSpan, tracer } from '../trace/tracing.ts'

export interface LoopAgent {
  /** `agent/<name>` or `agent/<ns>/<name>`: how events name the agent. */
  readonly id: string
  readonly tools: ReadonlyMap<string, PreparedTool>
  readonly toolDefinitions: readonly ToolDefinition[]
  readonly outputSchema?: JsonSchema
  readonly outputValidator?: JsonValidator
  readonly maxIterations: number
  /** limits.maxTokensPerCall: input + output tokens one model call may use. */
  readonly maxTokensPerCall?: number
  /** Request parameters of every model call that the Model's own override (ArkSettings temperature). */
  readonly defaults?: Readonly<Record<string, unknown>>
  /** Every model call asks for one JSON object (ArkSettings outputFormat structured-json). */
  readonly json?: boolean
}

/** The agent's daily token budget as one run sees it (budget.ts: RunBudget). */
export interface LoopBudget {
  /** Counts a completed model call's tokens. */
  spend(tokens: number): void
  /** Why no further model call may be made (the day's budget is spent), or undefined. */
  exceeded(): string | undefined
}

export interface LoopInput {
  readonly task: string
  /** System prompt first, then the conversation. */
  readonly messages: readonly ChatMessage[]
  readonly provider: Provider
  /** Aborts on cancellation or timeout; the reason tells which (`TimeoutError` is a timeout). */
  readonly signal: AbortSignal
  readonly emit: EventSink
  /** Stream answer text as `llm.delta` events. */
  readonly stream: boolean
  readonly runAgent: ToolContext['runAgent']
  /** What submit_subtask, get_subtask_result and delegate do in this run (the runtime's RunTasks). */
  readonly tasks?: ToolContext['tasks']
  /** limits.maxDailyTokens: checked before each model call, told each call's usage. */
  readonly budget?: LoopBudget
}

export interface LoopResult {
  readonly outcome: Outcome
  /** The answer (outcomes answer and terminated), or the last text the model gave. */
  readonly content: string | null
  readonly usage: Usage
  readonly iterations: number
  /** Why the run failed, in words for the caller; absent on success. */
  readonly error?: string
}

export async function runLoop(agent: LoopAgent, input: LoopInput): Promise<LoopResult> {
  const { provider, signal, emit } = input
  // Only answer text waits for a slow reader (onDelta); every other event is told and the run goes on.
  const tell = (event: AgentEvent): void => {
    void emit(event)
  }
  const started = performance.now()
  const messages: ChatMessage[] = [...input.messages]
  let usage = NO_USAGE
  let iteration = 0
  let lastText: string | null = null
  const context: ToolContext =
    input.tasks === undefined
      ? { signal, runAgent: input.runAgent }
      : { signal, runAgent: input.runAgent, tasks: input.tasks }
  const budget = agent.maxTokensPerCall
  // Characters of the conversation so far, for the input estimate a token budget needs before each call.
  let inputChars = budget === undefined ? 0 : charsOf(messages, agent.toolDefinitions)
  // An answer that does not match the outputSchema gets one corrective turn before the run fails.
  let corrected = false
  // Answers that must match a schema are validated before anyone sees them, so they are not streamed.
  const onDelta =
    input.stream && agent.outputValidator === undefined
      ? (text: string): void | Promise<void> => emit({ type: 'llm.delta', text })
      : undefined

  const finish = (outcome: Outcome, content: string | null, error?: string): LoopResult => {
    tell({
      type: 'agent.complete',
      agent: agent.id,
      task: input.task,
      outcome,
      iterations: iteration,
      usage,
      seconds: (performance.now() - started) / 1000,
    })
    return error === undefined
      ? { outcome, content, usage, iterations: iteration }
      : { outcome, content, usage, iterations: iteration, error }
  }

  tell({ type: 'agent.start', agent: agent.id, task: input.task })
  while (iteration < agent.maxIterations) {
    if (signal.aborted) return finish(...stopped(signal, lastText))
    // The day's budget, spent by this run's earlier calls or by other runs meanwhile: no further call.
    const spent = input.budget?.exceeded()
    if (spent !== undefined) return finish('budget_exceeded', lastText, spent)
    iteration++
    if (LOOP_DELAY_US > 0) spin(LOOP_DELAY_US)
    // The reply may use what the input leaves of the budget; the estimate (4 characters a token) is only
    // the cap sent upstream, the usage the provider reports is what the budget is checked against.
    let maxTokens: number | undefined
    if (budget !== undefined) {
      const estimate = Math.ceil(inputChars / 4)
      if (estimate >= budget) {
        return finish(
          'token_limit',
          lastText,
          `${agent.id}: the conversation (about ${String(estimate)} tokens) does not fit limits.maxTokensPerCall (${String(budget)})`,
        )
      }
      maxTokens = budget - estimate
    }
    tell({ type: 'llm.start', iteration, model: provider.model })
    const t0 = performance.now()
    let reply: AssistantMessage
    let finishReason: string
    const before = usage.totalTokens
    try {
      const request: CompletionRequest = {
        messages,
        tools: agent.toolDefinitions,
        ...(agent.outputSchema === undefined ? {} : { outputSchema: agent.outputSchema }),
        ...(maxTokens === undefined ? {} : { replyBudget: maxTokens }),
        ...(agent.defaults === undefined ? {} : { defaults: agent.defaults }),
        ...(agent.json === true ? { json: true } : {}),
        signal,
        ...(onDelta === undefined ? {} : { onDelta }),
      }
      const t = tracer()
      // A provider that ignores the signal must not hold the run past its deadline either.
      const completion = await untilAborted(
        t === undefined ? provider.complete(request) : tracedCompletion(t, provider, request),
        signal,
      )
      reply = completion.message
      finishReason = completion.finishReason
      usage = addUsage(usage, completion.usage)
      input.budget?.spend(completion.usage.totalTokens)
      tell({
        type: 'llm.complete',
        iteration,
        provider: provider.provider,
        model: provider.model,
        usage: completion.usage,
        seconds: (performance.now() - t0) / 1000,
        toolCalls: reply.tool_calls?.length ?? 0,
      })
    } catch (err) {
      const error = messageOf(err)
      tell({
        type: 'llm.complete',
        iteration,
        provider: provider.provider,
        model: provider.model,
        usage: NO_USAGE,
        seconds: (performance.now() - t0) / 1000,
        toolCalls: 0,
        error,
      })
      if (aborted(signal)) return finish(...stopped(signal, lastText))
      return finish('error', lastText, `model ${provider.model} (${provider.provider}) failed: ${error}`)
    }
    if (reply.content !== null && reply.content !== '') lastText = reply.content
    if (budget !== undefined) {
      const used = usage.totalTokens - before
      if (used > budget) {
        return finish(
          'token_limit',
          lastText,
          `${agent.id}: model call ${String(iteration)} used ${String(used)} tokens, over limits.maxTokensPerCall (${String(budget)})`,
        )
      }
      if (finishReason === 'length') {
        return finish(
          'token_limit',
          lastText,
          `${agent.id}: the reply of model call ${String(iteration)} was cut at the ${String(maxTokens)} tokens left by limits.maxTokensPerCall (${String(budget)})`,
        )
      }
    }

    const calls = reply.tool_calls
    if (calls === undefined || calls.length === 0) {
      const content = reply.content ?? ''
      if (agent.outputValidator !== undefined) {
        const problems = checkOutput(agent.outputValidator, content)
        if (problems !== undefined) {
          if (corrected || iteration >= agent.maxIterations)
            return finish('invalid_output', content, problems)
          corrected = true
          const correction: ChatMessage = {
            role: 'user',
            // Said by the runtime, not by the person who asked: the name tells them apart.
            name: 'ark',
            content: `Your answer cannot be used: ${problems}. Answer again with only the JSON value, matching the schema.`,
          }
          messages.push(reply, correction)
          if (budget !== undefined) inputChars += content.length + textLength(correction)
          continue
        }
        if (input.stream) tell({ type: 'llm.delta', text: content })
      }
      return finish('answer', content)
    }

    messages.push(reply)
    const t = tracer()
    const results = await Promise.all(
      calls.map((call) =>
        t === undefined
          ? callTool(agent, call, iteration, context, tell)
          : tracedTool(t, agent, call, iteration, context, tell),
      ),
    )
    let terminated: string | undefined
    for (let i = 0; i < calls.length; i++) {
      const call = calls[i] as ToolCall
      const result = results[i] as ToolResult
      messages.push({ role: 'tool', tool_call_id: call.id, content: result.content })
      if (budget !== undefined)
        inputChars += result.content.length + call.function.arguments.length + call.function.name.length
      if (result.terminate === true && terminated === undefined) terminated = result.content
    }
    if (aborted(signal)) return finish(...stopped(signal, lastText))
    if (terminated !== undefined) {
      if (input.stream && terminated !== '') tell({ type: 'llm.delta', text: terminated })
      return finish('terminated', terminated)
    }
  }
  return finish(
    'max_iterations',
    lastText,
    `${agent.id} did not finish within ${String(agent.maxIterations)} iterations (the model kept calling tools)`,
  )
}

/** A model call in a `chat` span (GenAI semantic conventions), which its HTTP request carries upstream. */
function tracedCompletion(t: Tracer, provider: Provider, request: CompletionRequest): Promise<Completion> {
  return inSpan(
    t,
    `chat ${provider.model}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': provider.provider,
        'gen_ai.request.model': provider.model,
      },
    },
    traceContext.active(),
    async (span) => {
      const completion = await provider.complete(request)
      span.setAttributes({
        'gen_ai.usage.input_tokens': completion.usage.promptTokens,
        'gen_ai.usage.output_tokens': completion.usage.completionTokens,
        'gen_ai.response.finish_reasons': [completion.finishReason],
      })
      return completion
    },
  )
}

/** A tool call in an `execute_tool` span; a call that does not end `ok` marks it failed, with its outcome. */
function tracedTool(
  t: Tracer,
  agent: LoopAgent,
  call: ToolCall,
  iteration: number,
  context: ToolContext,
  tell: (event: AgentEvent) => void,
): Promise<ToolResult> {
  const name = call.function.name
  return inSpan(
    t,
    `execute_tool ${name}`,
    {
      kind: SpanKind.INTERNAL,
      attributes: {
        'gen_ai.operation.name': 'execute_tool',
        'gen_ai.tool.name': name,
        'gen_ai.tool.call.id': call.id,
        'gen_ai.tool.type': 'function',
      },
    },
    traceContext.active(),
    (span) =>
      callTool(agent, call, iteration, context, (event) => {
        if (event.type === 'tool.complete') {
          span.setAttribute('ark.tool.outcome', event.outcome)
          if (event.outcome !== 'ok') failed(span, event.outcome, `${name}: ${event.outcome}`)
        }
        tell(event)
      }),
  )
}

async function callTool(
  agent: LoopAgent,
  call: ToolCall,
  iteration: number,
  context: ToolContext,
  tell: (event: AgentEvent) => void,
): Promise<ToolResult> {
  const name = call.function.name
  tell({ type: 'tool.start', iteration, id: call.id, tool: name, arguments: call.function.arguments })
  const t0 = performance.now()
  const done = (outcome: ToolOutcome, result: ToolResult): ToolResult => {
    const event: AgentEvent = {
      type: 'tool.complete',
      iteration,
      id: call.id,
      tool: name,
      outcome,
      seconds: (performance.now() - t0) / 1000,
      result: result.content,
    }
    tell(event)
    return result
  }

  const tool = agent.tools.get(name)
  if (tool === undefined) {
    const known = [...agent.tools.keys()].join(', ') || 'none'
    return done('unknown_tool', {
      content: `error: there is no tool named "${name}"; tools: ${known}`,
      isError: true,
    })
  }
  let args: unknown
  try {
    args = call.function.arguments.trim() === '' ? {} : JSON.parse(call.function.arguments)
  } catch (err) {
    return done('invalid_arguments', {
      content: `error: the arguments of ${name} are not valid JSON (${messageOf(err)}); send a JSON object`,
      isError: true,
    })
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    return done('invalid_arguments', {
      content: `error: the arguments of ${name} must be a JSON object`,
      isError: true,
    })
  }
  const problems = tool.validator?.problems(args)
  if (problems !== undefined && problems.length > 0) {
    return done('invalid_arguments', {
      content: `error: invalid arguments for ${name}: ${problems.join('; ')}`,
      isError: true,
    })
  }
  try {
    const result = await untilAborted(tool.execute(args as Record<string, unknown>, context), context.signal)
    return done(result.outcome ?? (result.isError === true ? 'error' : 'ok'), result)
  } catch (err) {
    if (context.signal.aborted) {
      const timedOut = isTimeout(context.signal)
      return done(timedOut ? 'timeout' : 'cancelled', {
        content: `error: ${name} was stopped: the task ${timedOut ? 'timed out' : 'was cancelled'}`,
        isError: true,
      })
    }
    return done('error', { content: `error: ${name} failed: ${messageOf(err)}`, isError: true })
  }
}

/** Work (a tool, a model call) that ignores the signal must not hold the run past its deadline. */
function untilAborted<T>(work: Promise<T> | T, signal: AbortSignal): Promise<T> | T {
  if (!(work instanceof Promise)) return work
  if (signal.aborted) {
    work.catch(() => {}) // Its outcome no longer matters; its rejection must not go unhandled.
    return Promise.reject(signal.reason as Error)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e instanceof Error ? e : new Error(String(e)))
      },
    )
  })
}

/** What a conversation and its tool definitions weigh, in characters. */
function charsOf(messages: readonly ChatMessage[], tools: readonly ToolDefinition[]): number {
  let n = toolChars(tools)
  for (const m of messages) {
    n += textLength(m)
    if (m.role === 'assistant') for (const c of m.tool_calls ?? []) n += c.function.arguments.length
  }
  return n
}

/** Tool definitions are prepared once per agent, so their weight is measured once per agent too. */
const toolWeights = new WeakMap<readonly ToolDefinition[], number>()

export function toolChars(tools: readonly ToolDefinition[]): number {
  let n = toolWeights.get(tools)
  if (n === undefined) {
    n = 0
    for (const t of tools) n += JSON.stringify(t).length
    toolWeights.set(tools, n)
  }
  return n
}

function textLength(m: ChatMessage): number {
  return m.role === 'tool' ? m.content.length : textOf(m.content).length
}

function checkOutput(validator: JsonValidator, content: string): string | undefined {
  let value: unknown
  try {
    value = JSON.parse(content)
  } catch {
    return 'the answer is not JSON, but the agent has an outputSchema'
  }
  const problems = validator.problems(value)
  return problems.length === 0
    ? undefined
    : `the answer does not match the outputSchema: ${problems.join('; ')}`
}

/** Read through a call: TypeScript narrows `signal.aborted` to false after one check and would not re-read it. */
function aborted(signal: AbortSignal): boolean {
  return signal.aborted
}

function isTimeout(signal: AbortSignal): boolean {
  const reason: unknown = signal.reason
  return reason instanceof Error && reason.name === 'TimeoutError'
}

function stopped(signal: AbortSignal, lastText: string | null): [Outcome, string | null, string] {
  return isTimeout(signal)
    ? ['timeout', lastText, 'the task timed out']
    : ['cancelled', lastText, 'the task was cancelled']
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
