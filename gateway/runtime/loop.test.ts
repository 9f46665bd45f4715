import { describe, expect, it } from 'vitest'
import type { JsonSchema } from '../../controller/api/index.ts'
import type { AgentEvent } from './events.ts'
import type { LoopAgent, LoopResult } from './loop.ts'
import { runLoop } from './loop.ts'
import type { AssistantMessage, ChatMessage, ToolCall, ToolDefinition, Usage } from './messages.ts'
import { textOf } from './messages.ts'
import type { Completion, CompletionRequest, Provider } from './provider.ts'
import { compileJsonSchema } from './schema.ts'
import { BUILTIN_TOOLS } from './tools/builtin.ts'
import type { PreparedTool, ToolContext } from './tools/tool.ts'
import { within } from '../../test/within.ts'

// ---------------------------------------------------------------------------------------------------------
// A scripted provider, hand-built tools, and a way to run the loop and keep what it emitted.

const MODEL = 'scripted-model-1'

/** Each call gets a distinct usage, so that sums are checked, not only counts. */
const usageOf = (call: number): Usage => ({
  promptTokens: 10 * call,
  completionTokens: call,
  totalTokens: 11 * call,
})

/** What the provider saw, copied: the loop appends to the conversation it passes. */
interface SeenRequest {
  readonly messages: ChatMessage[]
  readonly tools: readonly ToolDefinition[]
  readonly outputSchema: JsonSchema | undefined
  readonly maxTokens: number | undefined
  readonly streaming: boolean
}

type Step = AssistantMessage | ((request: CompletionRequest) => Promise<Completion>)

function scripted(steps: readonly Step[]): { provider: Provider; requests: SeenRequest[] } {
  const requests: SeenRequest[] = []
  const provider: Provider = {
    provider: 'openai',
    model: MODEL,
    probe: () => Promise.resolve(),
    complete(request) {
      requests.push({
        messages: structuredClone([...request.messages]),
        tools: request.tools,
        outputSchema: request.outputSchema,
        maxTokens: request.replyBudget,
        streaming: request.onDelta !== undefined,
      })
      const n = requests.length
      const step = steps[n - 1]
      if (step === undefined) return Promise.reject(new Error(`the script has no step ${String(n)}`))
      if (typeof step === 'function') return step(request)
      return Promise.resolve({
        message: step,
        usage: usageOf(n),
        finishReason: step.tool_calls === undefined ? 'stop' : 'tool_calls',
      })
    },
  }
  return { provider, requests }
}

const say = (content: string): AssistantMessage => ({ role: 'assistant', content })

const call = (id: string, name: string, args: string | object = {}): ToolCall => ({
  id,
  type: 'function',
  function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) },
})

const calls = (content: string | null, ...toolCalls: ToolCall[]): AssistantMessage => ({
  role: 'assistant',
  content,
  tool_calls: toolCalls,
})

const OBJECT: JsonSchema = { type: 'object' }

function tool(
  name: string,
  execute: PreparedTool['execute'],
  inputSchema: JsonSchema = OBJECT,
): PreparedTool {
  return {
    name,
    definition: { type: 'function', function: { name, parameters: inputSchema } },
    validator: compileJsonSchema(inputSchema),
    execute,
  }
}

const terminateTool: PreparedTool = tool(
  'terminate',
  (args, context) => BUILTIN_TOOLS.terminate!.execute(args, context),
  BUILTIN_TOOLS.terminate!.inputSchema,
)

function agentWith(tools: readonly PreparedTool[], extra: Partial<LoopAgent> = {}): LoopAgent {
  return {
    id: 'agent/test/scripted',
    tools: new Map(tools.map((t) => [t.name, t])),
    toolDefinitions: tools.map((t) => t.definition),
    maxIterations: 10,
    ...extra,
  }
}

const CONVERSATION: readonly ChatMessage[] = [
  { role: 'system', content: 'You are a test.' },
  { role: 'user', content: 'Do the thing.' },
]

interface Run {
  readonly result: LoopResult
  readonly events: AgentEvent[]
}

async function run(
  agent: LoopAgent,
  provider: Provider,
  options: { signal?: AbortSignal; stream?: boolean; events?: AgentEvent[] } = {},
): Promise<Run> {
  const events = options.events ?? []
  const result = await runLoop(agent, {
    task: 'task-1',
    messages: CONVERSATION,
    provider,
    signal: options.signal ?? new AbortController().signal,
    emit: (e) => void events.push(e),
    stream: options.stream ?? false,
    runAgent: () => Promise.reject(new Error('runAgent is not used here')),
  })
  return { result, events }
}

function eventsOf<T extends AgentEvent['type']>(events: readonly AgentEvent[], type: T) {
  return events.filter((e): e is Extract<AgentEvent, { type: T }> => e.type === type)
}

interface Deferred<T = void> {
  readonly promise: Promise<T>
  resolve(value: T): void
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

const NEVER = new Promise<never>(() => undefined)

/** A provider step that never answers and fails with the signal's reason when it aborts. */
function untilAborted(called: Deferred): (request: CompletionRequest) => Promise<Completion> {
  return (request) =>
    new Promise<Completion>((_, reject) => {
      request.signal.addEventListener('abort', () => reject(request.signal.reason as Error), { once: true })
      called.resolve()
    })
}

// ---------------------------------------------------------------------------------------------------------

describe('runLoop: answers', () => {
  it('answers without tools in one iteration', async () => {
    const { provider, requests } = scripted([say('Hello there.')])
    const { result } = await run(agentWith([]), provider)
    expect(result).toEqual({ outcome: 'answer', content: 'Hello there.', usage: usageOf(1), iterations: 1 })
    expect(requests).toHaveLength(1)
    expect(requests[0]!.messages).toEqual(CONVERSATION)
    expect(requests[0]!.tools).toEqual([])
    expect(requests[0]!.outputSchema).toBeUndefined()
  })

  it('sums usage across calls', async () => {
    const noop = tool('noop', () => ({ content: 'ok' }))
    const { provider } = scripted([
      calls(null, call('c1', 'noop')),
      calls(null, call('c2', 'noop')),
      say('done'),
    ])
    const { result } = await run(agentWith([noop]), provider)
    expect(result.outcome).toBe('answer')
    expect(result.iterations).toBe(3)
    expect(result.usage).toEqual({ promptTokens: 60, completionTokens: 6, totalTokens: 66 })
  })

  it('answers an empty string when the model gives no content and no tool calls', async () => {
    const { provider } = scripted([{ role: 'assistant', content: null }])
    const { result } = await run(agentWith([]), provider)
    expect(result.outcome).toBe('answer')
    expect(result.content).toBe('')
  })

  it('offers the agent its tool definitions on every call', async () => {
    const noop = tool('noop', () => ({ content: 'ok' }), {
      type: 'object',
      properties: { a: { type: 'string' } },
    })
    const { provider, requests } = scripted([calls(null, call('c1', 'noop')), say('done')])
    await run(agentWith([noop, terminateTool]), provider)
    expect(requests.map((r) => r.tools.map((t) => t.function.name))).toEqual([
      ['noop', 'terminate'],
      ['noop', 'terminate'],
    ])
    expect(requests[0]!.tools[0]).toEqual(noop.definition)
  })
})

describe('runLoop: tool calls', () => {
  it('runs the tool calls of one turn concurrently', async () => {
    // Each tool waits until both have started: run one after the other, the first would wait forever.
    let started = 0
    const bothStarted = deferred()
    const waiter = (name: string) =>
      tool(name, async () => {
        started++
        if (started === 2) bothStarted.resolve()
        await bothStarted.promise
        return { content: `${name} done` }
      })
    const { provider } = scripted([calls(null, call('a1', 'left'), call('b1', 'right')), say('both done')])
    // The guard: if the tools ran one after the other, the timeout would end the run instead.
    const { result, events } = await run(agentWith([waiter('left'), waiter('right')]), provider, {
      signal: AbortSignal.timeout(2000),
    })
    expect(result.outcome).toBe('answer')
    expect(result.content).toBe('both done')
    expect(started).toBe(2)
    expect(eventsOf(events, 'tool.complete').map((e) => e.outcome)).toEqual(['ok', 'ok'])
  })

  it('feeds results back in call order with their tool_call_id, whatever order they finish in', async () => {
    const slowDone = deferred()
    const slow = tool('slow', async (args) => {
      await slowDone.promise
      return { content: `slow saw ${String(args.n)}` }
    })
    const fast = tool('fast', (args) => {
      // The fast one finishes first, then lets the slow one finish.
      setTimeout(() => slowDone.resolve(), 10)
      return { content: `fast saw ${String(args.n)}` }
    })
    const turn1 = calls('Let me check.', call('id-slow', 'slow', { n: 1 }), call('id-fast', 'fast', { n: 2 }))
    const { provider, requests } = scripted([turn1, say('final')])
    const { result, events } = await run(agentWith([slow, fast]), provider)

    expect(result).toMatchObject({ outcome: 'answer', content: 'final', iterations: 2 })
    expect(eventsOf(events, 'tool.complete').map((e) => e.id)).toEqual(['id-fast', 'id-slow'])
    expect(requests).toHaveLength(2)
    expect(requests[1]!.messages).toEqual([
      ...CONVERSATION,
      turn1,
      { role: 'tool', tool_call_id: 'id-slow', content: 'slow saw 1' },
      { role: 'tool', tool_call_id: 'id-fast', content: 'fast saw 2' },
    ])
  })

  it('passes parsed arguments and the task signal to the tool; empty arguments are {}', async () => {
    const seen: { args: unknown; signal: AbortSignal }[] = []
    const probe = tool('probe', (args, context: ToolContext) => {
      seen.push({ args, signal: context.signal })
      return { content: 'probed' }
    })
    const { provider } = scripted([
      calls(null, call('c1', 'probe', { city: 'Oslo', days: [1, 2] }), call('c2', 'probe', '  ')),
      say('ok'),
    ])
    const controller = new AbortController()
    await run(agentWith([probe]), provider, { signal: controller.signal })
    expect(seen.map((s) => s.args)).toEqual([{ city: 'Oslo', days: [1, 2] }, {}])
    expect(seen.every((s) => s.signal === controller.signal)).toBe(true)
  })

  it('ends with terminate: its response is the answer and the model is not called again', async () => {
    const { provider, requests } = scripted([
      calls('I am done.', call('t1', 'terminate', { response: 'the final word' })),
      say('never asked'),
    ])
    const { result, events } = await run(agentWith([terminateTool]), provider, { stream: true })
    expect(result).toEqual({
      outcome: 'terminated',
      content: 'the final word',
      usage: usageOf(1),
      iterations: 1,
    })
    expect(requests).toHaveLength(1)
    expect(eventsOf(events, 'llm.delta').map((e) => e.text)).toEqual(['the final word'])
    expect(eventsOf(events, 'agent.complete')[0]).toMatchObject({ outcome: 'terminated', iterations: 1 })
  })

  it('runs the other tools of the turn that terminates', async () => {
    const ran: string[] = []
    const noop = tool('noop', () => {
      ran.push('noop')
      return { content: 'ok' }
    })
    const { provider } = scripted([
      calls(null, call('n1', 'noop'), call('t1', 'terminate', { response: 'bye' })),
      say('never asked'),
    ])
    const { result, events } = await run(agentWith([noop, terminateTool]), provider)
    expect(result).toMatchObject({ outcome: 'terminated', content: 'bye' })
    expect(ran).toEqual(['noop'])
    expect(eventsOf(events, 'tool.complete').map((e) => [e.tool, e.outcome])).toEqual([
      ['noop', 'ok'],
      ['terminate', 'ok'],
    ])
  })
})

describe('runLoop: tool failures are told to the model, and the run goes on', () => {
  const strictSchema: JsonSchema = {
    type: 'object',
    properties: { city: { type: 'string' } },
    required: ['city'],
    additionalProperties: false,
  }

  it('reports each kind of failure as a tool message and a tool.complete outcome', async () => {
    const executed: string[] = []
    const weather = tool(
      'weather',
      (args) => {
        executed.push(`weather ${JSON.stringify(args)}`)
        return { content: 'sunny' }
      },
      strictSchema,
    )
    const thrower = tool('thrower', () => {
      executed.push('thrower')
      throw new Error('the disk is on fire')
    })
    const rejecter = tool('rejecter', () => {
      executed.push('rejecter')
      return Promise.reject(new Error('async kaboom'))
    })
    const refuser = tool('refuser', () => {
      executed.push('refuser')
      return { content: 'permission denied for that file', isError: true }
    })
    const turn1 = calls(
      null,
      call('u', 'nope', { x: 1 }),
      call('j', 'weather', '{"city": "Oslo"'),
      call('arr', 'weather', '["Oslo"]'),
      call('s', 'weather', { town: 'Oslo' }),
      call('t', 'thrower'),
      call('r', 'rejecter'),
      call('e', 'refuser'),
      call('ok', 'weather', { city: 'Oslo' }),
    )
    const { provider, requests } = scripted([turn1, say('I did what I could.')])
    const { result, events } = await run(agentWith([weather, thrower, rejecter, refuser]), provider)

    expect(result).toMatchObject({ outcome: 'answer', content: 'I did what I could.', iterations: 2 })
    expect(result.error).toBeUndefined()
    // Only valid calls reach a tool.
    expect(executed).toEqual(['thrower', 'rejecter', 'refuser', 'weather {"city":"Oslo"}'])

    // Completion order depends on how long each takes; compare by call id.
    const completed = new Map(eventsOf(events, 'tool.complete').map((e) => [e.id, e]))
    expect(completed.size).toBe(8)
    expect(turn1.tool_calls!.map((c) => [c.id, completed.get(c.id)?.outcome])).toEqual([
      ['u', 'unknown_tool'],
      ['j', 'invalid_arguments'],
      ['arr', 'invalid_arguments'],
      ['s', 'invalid_arguments'],
      ['t', 'error'],
      ['r', 'error'],
      ['e', 'error'],
      ['ok', 'ok'],
    ])

    const toolMessages = requests[1]!.messages.slice(CONVERSATION.length + 1)
    expect(toolMessages.map((m) => (m.role === 'tool' ? m.tool_call_id : m.role))).toEqual([
      'u',
      'j',
      'arr',
      's',
      't',
      'r',
      'e',
      'ok',
    ])
    const content = toolMessages.map((m) => (m.role === 'tool' ? m.content : ''))
    const [unknown, badJson, notObject, badSchema, threw, rejected, refused, fine] = content
    expect(unknown).toMatch(/^error: /)
    expect(unknown).toContain('no tool named "nope"')
    expect(unknown).toContain('weather, thrower, rejecter, refuser')
    expect(badJson).toMatch(/^error: /)
    expect(badJson).toContain('weather')
    expect(badJson).toContain('not valid JSON')
    expect(notObject).toMatch(/^error: /)
    expect(notObject).toContain('must be a JSON object')
    expect(badSchema).toMatch(/^error: invalid arguments for weather: /)
    expect(badSchema).toContain('city: is required')
    expect(badSchema).toContain('town: unknown field')
    expect(threw).toBe('error: thrower failed: the disk is on fire')
    expect(rejected).toBe('error: rejecter failed: async kaboom')
    expect(refused).toBe('permission denied for that file')
    expect(fine).toBe('sunny')

    // The events carry what the model was told.
    expect(turn1.tool_calls!.map((c) => completed.get(c.id)?.result)).toEqual(content)
  })

  it('names "none" when the agent has no tools', async () => {
    const { provider, requests } = scripted([calls(null, call('x', 'ghost')), say('fine')])
    const { result } = await run(agentWith([]), provider)
    expect(result.outcome).toBe('answer')
    const message = requests[1]!.messages.at(-1)
    expect(message).toMatchObject({ role: 'tool', tool_call_id: 'x' })
    expect(message?.content).toContain('tools: none')
  })
})

describe('runLoop: bounds', () => {
  it('stops after maxIterations when the model keeps calling tools', async () => {
    const noop = tool('noop', () => ({ content: 'ok' }))
    const { provider, requests } = scripted(
      Array.from({ length: 10 }, (_, i) => calls(`thinking ${String(i + 1)}`, call(`c${String(i)}`, 'noop'))),
    )
    const { result, events } = await run(agentWith([noop], { maxIterations: 3 }), provider)
    expect(result.outcome).toBe('max_iterations')
    expect(result.iterations).toBe(3)
    expect(result.content).toBe('thinking 3')
    expect(result.error).toContain('3 iterations')
    expect(result.error).toContain('agent/test/scripted')
    expect(result.usage).toEqual({ promptTokens: 60, completionTokens: 6, totalTokens: 66 })
    expect(requests).toHaveLength(3)
    expect(eventsOf(events, 'tool.complete')).toHaveLength(3)
    expect(eventsOf(events, 'agent.complete')[0]).toMatchObject({ outcome: 'max_iterations', iterations: 3 })
  })

  it('times out when the signal aborts with a TimeoutError while the model thinks', async () => {
    const called = deferred()
    const { provider, requests } = scripted([untilAborted(called), say('too late')])
    const controller = new AbortController()
    const running = run(agentWith([]), provider, { signal: controller.signal })
    await called.promise
    controller.abort(new DOMException('x', 'TimeoutError'))
    const { result, events } = await running
    expect(result).toMatchObject({
      outcome: 'timeout',
      content: null,
      iterations: 1,
      error: 'the task timed out',
    })
    expect(requests).toHaveLength(1)
    expect(eventsOf(events, 'llm.complete')[0]?.error).toBeDefined()
    expect(eventsOf(events, 'agent.complete')[0]?.outcome).toBe('timeout')
  })

  it('is cancelled when the signal aborts with an AbortError', async () => {
    const called = deferred()
    const { provider } = scripted([untilAborted(called)])
    const controller = new AbortController()
    const running = run(agentWith([]), provider, { signal: controller.signal })
    await called.promise
    controller.abort(new DOMException('the client went away', 'AbortError'))
    const { result } = await running
    expect(result).toMatchObject({ outcome: 'cancelled', iterations: 1, error: 'the task was cancelled' })
  })

  it('is cancelled on a plain abort(), and keeps the last text the model gave', async () => {
    const called = deferred()
    const noop = tool('noop', () => ({ content: 'ok' }))
    const { provider } = scripted([calls('Working on it.', call('c1', 'noop')), untilAborted(called)])
    const controller = new AbortController()
    const running = run(agentWith([noop]), provider, { signal: controller.signal })
    await called.promise
    controller.abort()
    const { result } = await running
    expect(result).toMatchObject({ outcome: 'cancelled', content: 'Working on it.', iterations: 2 })
  })

  it('does not call the model when the signal has already fired', async () => {
    const { provider, requests } = scripted([say('never asked')])
    const { result, events } = await run(agentWith([]), provider, {
      signal: AbortSignal.abort(new DOMException('x', 'TimeoutError')),
    })
    expect(result).toMatchObject({ outcome: 'timeout', iterations: 0 })
    expect(requests).toHaveLength(0)
    expect(events.map((e) => e.type)).toEqual(['agent.start', 'agent.complete'])
  })

  it('is not held by a tool that ignores the signal and never finishes', async () => {
    const toolStarted = deferred()
    const stubborn = tool('stubborn', () => {
      toolStarted.resolve()
      return NEVER
    })
    const quick = tool('quick', () => ({ content: 'quick result' }))
    const { provider, requests } = scripted([
      calls(null, call('s1', 'stubborn'), call('q1', 'quick')),
      say('x'),
    ])
    const controller = new AbortController()
    const running = run(agentWith([stubborn, quick]), provider, { signal: controller.signal })
    await toolStarted.promise
    controller.abort(new DOMException('x', 'TimeoutError'))

    const finished = await within(running)
    expect(finished).not.toBe('stuck')
    const { result, events } = finished as Run
    expect(result).toMatchObject({ outcome: 'timeout', iterations: 1 })
    expect(requests).toHaveLength(1)
    const completions = eventsOf(events, 'tool.complete')
    expect(completions.map((e) => [e.id, e.outcome])).toEqual([
      ['q1', 'ok'],
      ['s1', 'timeout'],
    ])
    expect(completions[1]!.result).toBe('error: stubborn was stopped: the task timed out')
  })

  it('reports a tool stopped by cancellation as cancelled', async () => {
    const toolStarted = deferred()
    const stubborn = tool('stubborn', () => {
      toolStarted.resolve()
      return NEVER
    })
    const { provider } = scripted([calls(null, call('s1', 'stubborn')), say('x')])
    const controller = new AbortController()
    const running = run(agentWith([stubborn]), provider, { signal: controller.signal })
    await toolStarted.promise
    controller.abort()
    const finished = await within(running)
    expect(finished).not.toBe('stuck')
    const { result, events } = finished as Run
    expect(result.outcome).toBe('cancelled')
    expect(eventsOf(events, 'tool.complete')[0]).toMatchObject({
      outcome: 'cancelled',
      result: 'error: stubborn was stopped: the task was cancelled',
    })
  })
})

describe('runLoop: provider failures', () => {
  it('ends with error, naming the model, when the provider throws', async () => {
    const { provider } = scripted([() => Promise.reject(new Error('upstream said 503'))])
    const { result, events } = await run(agentWith([]), provider)
    expect(result.outcome).toBe('error')
    expect(result.iterations).toBe(1)
    expect(result.content).toBeNull()
    expect(result.error).toContain(MODEL)
    expect(result.error).toContain('openai')
    expect(result.error).toContain('upstream said 503')
    expect(result.usage).toEqual({ promptTokens: 0, completionTokens: 0, totalTokens: 0 })
    const complete = eventsOf(events, 'llm.complete')
    expect(complete).toHaveLength(1)
    expect(complete[0]).toMatchObject({ error: 'upstream said 503', toolCalls: 0, model: MODEL })
    expect(eventsOf(events, 'agent.complete')[0]?.outcome).toBe('error')
  })

  it('keeps the usage and last text of earlier calls when a later call fails', async () => {
    const noop = tool('noop', () => ({ content: 'ok' }))
    const { provider } = scripted([
      calls('Step one.', call('c1', 'noop')),
      () => Promise.reject(new Error('gone')),
    ])
    const { result } = await run(agentWith([noop]), provider)
    expect(result).toMatchObject({ outcome: 'error', content: 'Step one.', usage: usageOf(1), iterations: 2 })
  })
})

describe('runLoop: outputSchema', () => {
  const outputSchema: JsonSchema = {
    type: 'object',
    properties: { city: { type: 'string' }, temperature: { type: 'number' } },
    required: ['city', 'temperature'],
  }
  const schemaAgent = (): LoopAgent =>
    agentWith([], { outputSchema, outputValidator: compileJsonSchema(outputSchema) })

  it('passes the schema to the provider and accepts a matching JSON answer', async () => {
    const answer = '{"city": "Oslo", "temperature": -3.5}'
    const { provider, requests } = scripted([say(answer)])
    const { result } = await run(schemaAgent(), provider)
    expect(result).toEqual({ outcome: 'answer', content: answer, usage: usageOf(1), iterations: 1 })
    expect(requests[0]!.outputSchema).toEqual(outputSchema)
  })

  it('rejects an answer that is not JSON, after one corrective turn', async () => {
    const { provider, requests } = scripted([say('It is cold in Oslo.'), say('Still cold.')])
    const { result } = await run(schemaAgent(), provider)
    expect(result.outcome).toBe('invalid_output')
    expect(result.content).toBe('Still cold.')
    expect(result.error).toContain('not JSON')
    expect(requests).toHaveLength(2)
  })

  it('rejects JSON that does not match, naming the field', async () => {
    const wrong = say('{"city": "Oslo", "temperature": "cold"}')
    const { provider } = scripted([wrong, wrong])
    const { result, events } = await run(schemaAgent(), provider)
    expect(result.outcome).toBe('invalid_output')
    expect(result.error).toContain('outputSchema')
    expect(result.error).toContain('temperature: must be a number')
    expect(eventsOf(events, 'agent.complete')[0]?.outcome).toBe('invalid_output')

    const missing = scripted([say('{"temperature": 1}'), say('{"temperature": 2}')])
    const second = await run(schemaAgent(), missing.provider)
    expect(second.result.outcome).toBe('invalid_output')
    expect(second.result.error).toContain('city: is required')
  })

  it('tells the model what was wrong once, and takes a corrected answer', async () => {
    const fixed = '{"city": "Oslo", "temperature": 2}'
    const { provider, requests } = scripted([say('{"city": "Oslo"}'), say(fixed)])
    const { result } = await run(schemaAgent(), provider)
    expect(result).toMatchObject({ outcome: 'answer', content: fixed, iterations: 2 })
    const second = requests[1]!.messages
    expect(second.at(-2)).toEqual(say('{"city": "Oslo"}'))
    expect(second.at(-1)).toMatchObject({ role: 'user' })
    expect(textOf((second.at(-1) as { content: string }).content)).toContain('temperature: is required')
    expect(requests[1]!.outputSchema).toEqual(outputSchema)
  })

  it('does not correct past the iteration bound', async () => {
    const { provider, requests } = scripted([say('nope')])
    const { result } = await run(
      agentWith([], { outputSchema, outputValidator: compileJsonSchema(outputSchema), maxIterations: 1 }),
      provider,
    )
    expect(result.outcome).toBe('invalid_output')
    expect(requests).toHaveLength(1)
  })

  it('does not stream a validated answer piece by piece: one delta with all of it, after validation', async () => {
    const answer = '{"city": "Oslo", "temperature": 2}'
    const { provider, requests } = scripted([
      (request) => {
        // A streaming provider would send pieces if it were given somewhere to send them.
        void request.onDelta?.('{"city": ')
        return Promise.resolve({ message: say(answer), usage: usageOf(1), finishReason: 'stop' })
      },
    ])
    const { result, events } = await run(schemaAgent(), provider, { stream: true })
    expect(result.outcome).toBe('answer')
    expect(requests[0]!.streaming).toBe(false)
    const types = events.map((e) => e.type)
    expect(eventsOf(events, 'llm.delta').map((e) => e.text)).toEqual([answer])
    expect(types.indexOf('llm.delta')).toBeGreaterThan(types.indexOf('llm.complete'))
    expect(types.indexOf('llm.delta')).toBeLessThan(types.indexOf('agent.complete'))
  })

  it('streams nothing when the answer fails validation', async () => {
    const { provider } = scripted([say('{"city": 3}'), say('{"city": 4}')])
    const { result, events } = await run(schemaAgent(), provider, { stream: true })
    expect(result.outcome).toBe('invalid_output')
    expect(eventsOf(events, 'llm.delta')).toEqual([])
  })

  it('streams the provider pieces as they come when there is no schema', async () => {
    const { provider, requests } = scripted([
      (request) => {
        void request.onDelta?.('Hel')
        void request.onDelta?.('lo.')
        return Promise.resolve({ message: say('Hello.'), usage: usageOf(1), finishReason: 'stop' })
      },
    ])
    const { events } = await run(agentWith([]), provider, { stream: true })
    expect(requests[0]!.streaming).toBe(true)
    expect(eventsOf(events, 'llm.delta').map((e) => e.text)).toEqual(['Hel', 'lo.'])
  })

  it('does not ask for deltas when not streaming', async () => {
    const { provider, requests } = scripted([say('Hello.')])
    const { events } = await run(agentWith([]), provider, { stream: false })
    expect(requests[0]!.streaming).toBe(false)
    expect(eventsOf(events, 'llm.delta')).toEqual([])
  })
})

describe('runLoop: limits.maxTokensPerCall', () => {
  // usageOf(n) reports 11·n tokens for call n.
  it('caps each reply at what the input leaves of the budget', async () => {
    const { provider, requests } = scripted([calls(null, call('c1', 'noop')), say('done')])
    const noop = tool('noop', () => ({ content: 'x'.repeat(400) }))
    const { result } = await run(agentWith([noop], { maxTokensPerCall: 1000 }), provider)
    expect(result.outcome).toBe('answer')
    const first = requests[0]!.maxTokens!
    const second = requests[1]!.maxTokens!
    expect(first).toBeLessThan(1000)
    // The tool's 400 characters are about 100 tokens more input, so 100 fewer for the reply.
    expect(first - second).toBeGreaterThanOrEqual(100)
  })

  it('sends no cap when the agent has no budget', async () => {
    const { provider, requests } = scripted([say('done')])
    await run(agentWith([]), provider)
    expect(requests[0]!.maxTokens).toBeUndefined()
  })

  it('fails with token_limit when a call used more than the budget, whatever the model did', async () => {
    const big: Usage = { promptTokens: 450, completionTokens: 50, totalTokens: 500 }
    const { provider } = scripted([
      calls(null, call('c1', 'noop')),
      () => Promise.resolve({ message: say('done'), usage: big, finishReason: 'stop' }),
    ])
    const noop = tool('noop', () => ({ content: 'ok' }))
    const { result } = await run(agentWith([noop], { maxTokensPerCall: 100 }), provider)
    expect(result.outcome).toBe('token_limit')
    expect(result.error).toMatch(/model call 2 used 500 tokens, over limits\.maxTokensPerCall \(100\)/)
  })

  it('fails before calling the model when the conversation alone does not fit', async () => {
    const { provider, requests } = scripted([say('never')])
    const { result } = await run(agentWith([], { maxTokensPerCall: 3 }), provider)
    expect(result.outcome).toBe('token_limit')
    expect(result.error).toContain('does not fit limits.maxTokensPerCall (3)')
    expect(requests).toHaveLength(0)
  })

  it('fails when the reply was cut at the cap the budget left', async () => {
    const { provider } = scripted([
      () => Promise.resolve({ message: say('half an ans'), usage: usageOf(1), finishReason: 'length' }),
    ])
    const { result } = await run(agentWith([], { maxTokensPerCall: 500 }), provider)
    expect(result.outcome).toBe('token_limit')
    expect(result.error).toContain('was cut')
  })
})

describe('runLoop: events', () => {
  it('tells the run as it goes, in order', async () => {
    const noop = tool('noop', () => ({ content: 'noted' }))
    const { provider } = scripted([calls(null, call('c1', 'noop', { message: 'hi' })), say('All done.')])
    const { result, events } = await run(agentWith([noop]), provider)
    expect(result.outcome).toBe('answer')

    expect(events.map((e) => e.type)).toEqual([
      'agent.start',
      'llm.start',
      'llm.complete',
      'tool.start',
      'tool.complete',
      'llm.start',
      'llm.complete',
      'agent.complete',
    ])
    const [start, llm1, llmDone1, toolStart, toolDone, llm2, llmDone2, complete] = events
    expect(start).toEqual({ type: 'agent.start', agent: 'agent/test/scripted', task: 'task-1' })
    expect(llm1).toEqual({ type: 'llm.start', iteration: 1, model: MODEL })
    expect(llmDone1).toMatchObject({
      type: 'llm.complete',
      iteration: 1,
      provider: 'openai',
      model: MODEL,
      usage: usageOf(1),
      toolCalls: 1,
    })
    expect(llmDone1).not.toHaveProperty('error')
    expect(toolStart).toEqual({
      type: 'tool.start',
      iteration: 1,
      id: 'c1',
      tool: 'noop',
      arguments: '{"message":"hi"}',
    })
    expect(toolDone).toMatchObject({
      type: 'tool.complete',
      iteration: 1,
      id: 'c1',
      tool: 'noop',
      outcome: 'ok',
      result: 'noted',
    })
    expect(llm2).toEqual({ type: 'llm.start', iteration: 2, model: MODEL })
    expect(llmDone2).toMatchObject({ type: 'llm.complete', iteration: 2, usage: usageOf(2), toolCalls: 0 })
    expect(complete).toMatchObject({
      type: 'agent.complete',
      agent: 'agent/test/scripted',
      task: 'task-1',
      outcome: 'answer',
      iterations: 2,
      usage: result.usage,
    })

    for (const e of events) {
      if ('seconds' in e) {
        expect(e.seconds).toBeGreaterThanOrEqual(0)
        expect(Number.isFinite(e.seconds)).toBe(true)
      }
    }
  })

  it('starts every tool of a turn before any of them completes', async () => {
    const gate = deferred()
    const gated = (name: string) =>
      tool(name, async () => {
        await gate.promise
        return { content: name }
      })
    const { provider } = scripted([calls(null, call('1', 'a'), call('2', 'b'), call('3', 'c')), say('ok')])
    const events: AgentEvent[] = []
    const running = run(agentWith([gated('a'), gated('b'), gated('c')]), provider, { events })
    await new Promise((resolve) => setImmediate(resolve))
    expect(eventsOf(events, 'tool.start').map((e) => e.id)).toEqual(['1', '2', '3'])
    expect(eventsOf(events, 'tool.complete')).toEqual([])
    gate.resolve()
    const { result } = await running
    expect(result.outcome).toBe('answer')
    expect(eventsOf(events, 'tool.complete').map((e) => e.id)).toEqual(['1', '2', '3'])
  })
})
