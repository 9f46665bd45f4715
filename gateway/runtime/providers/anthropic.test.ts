import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { freePort } from '../../../test/fakes/http.ts'
import type { JsonSchema } from '../../../controller/api/index.ts'
import type { FakeUpstream } from '../../../test/fakes/anthropic-upstream.ts'
import { startFakeAnthropic } from '../../../test/fakes/anthropic-upstream.ts'
import type { AgentEvent } from '../events.ts'
import type { LoopAgent, LoopResult } from '../loop.ts'
import { runLoop } from '../loop.ts'
import type { ChatMessage } from '../messages.ts'
import type { Completion, CompletionRequest, Provider, ProviderConfig } from '../provider.ts'
import { ProviderError } from '../provider.ts'
import { compileJsonSchema } from '../schema.ts'
import type { PreparedTool } from '../tools/tool.ts'
import { createAnthropicProvider } from './anthropic.ts'

const MODEL = 'claude-test-1'
const KEY = 'sk-ant-test-key-0123456789'

/** What ark sent, as the fake recorded it. */
interface SentBody {
  readonly model: string
  readonly max_tokens: number
  readonly messages: readonly { readonly role: string; readonly content: unknown }[]
  readonly system?: string
  readonly tools?: readonly {
    readonly name: string
    readonly description?: string
    readonly input_schema: unknown
  }[]
  readonly tool_choice?: unknown
  readonly stream?: boolean
  readonly [key: string]: unknown
}

let fake: FakeUpstream

beforeEach(async () => {
  fake = await startFakeAnthropic()
})

afterEach(async () => {
  vi.unstubAllEnvs()
  await fake.close()
})

function anthropic(extra: Partial<ProviderConfig> = {}): Provider {
  return createAnthropicProvider({
    provider: 'anthropic',
    model: MODEL,
    baseUrl: fake.url,
    apiKey: KEY,
    headers: {},
    properties: {},
    maxRetries: 2,
    ...extra,
  })
}

function ask(
  provider: Provider,
  messages: readonly ChatMessage[],
  extra: Partial<Omit<CompletionRequest, 'messages'>> = {},
): Promise<Completion> {
  return provider.complete({ messages, tools: [], signal: new AbortController().signal, ...extra })
}

const user = (content: string): ChatMessage => ({ role: 'user', content })

/** The Messages API calls the fake received (probes are GETs). */
const posts = () => fake.calls.filter((c) => c.method === 'POST' && c.path === '/v1/messages')
const sent = (i: number) => posts()[i]!.body as SentBody

/** A Message body for scripted answers. */
function message(content: readonly object[], stopReason = 'end_turn', usage: object = {}): object {
  return {
    id: 'msg_scripted',
    type: 'message',
    role: 'assistant',
    model: MODEL,
    content,
    stop_reason: stopReason,
    stop_sequence: null,
    usage: {
      input_tokens: 3,
      output_tokens: 4,
      cache_creation_input_tokens: null,
      cache_read_input_tokens: null,
      ...usage,
    },
  }
}

function tool(
  name: string,
  execute: PreparedTool['execute'],
  inputSchema: JsonSchema = { type: 'object' },
): PreparedTool {
  return {
    name,
    definition: {
      type: 'function',
      function: { name, description: `the ${name} tool`, parameters: inputSchema },
    },
    validator: compileJsonSchema(inputSchema),
    execute,
  }
}

const ADD_SCHEMA: JsonSchema = {
  type: 'object',
  properties: { a: { type: 'number' }, b: { type: 'number' } },
  required: ['a', 'b'],
}

const add = tool('add', (args) => ({ content: String((args.a as number) + (args.b as number)) }), ADD_SCHEMA)

const CITY: JsonSchema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }

function agentWith(tools: readonly PreparedTool[], outputSchema?: JsonSchema): LoopAgent {
  return {
    id: 'agent/test/claude',
    tools: new Map(tools.map((t) => [t.name, t])),
    toolDefinitions: tools.map((t) => t.definition),
    maxIterations: 10,
    ...(outputSchema === undefined ? {} : { outputSchema, outputValidator: compileJsonSchema(outputSchema) }),
  }
}

async function run(
  agent: LoopAgent,
  provider: Provider,
  said: string,
  stream = false,
): Promise<{ result: LoopResult; events: AgentEvent[] }> {
  const events: AgentEvent[] = []
  const result = await runLoop(agent, {
    task: 'task-1',
    messages: [{ role: 'system', content: 'You add numbers.' }, user(said)],
    provider,
    signal: new AbortController().signal,
    emit: (e) => void events.push(e),
    stream,
    runAgent: () => Promise.reject(new Error('runAgent is not used here')),
  })
  return { result, events }
}

/** Runs `work` and collects the unhandled rejections that appear while it runs and just after. */
async function watchingRejections<T>(
  work: () => Promise<T>,
): Promise<{ outcome: unknown; unhandled: unknown[] }> {
  const unhandled: unknown[] = []
  const onRejection = (reason: unknown) => unhandled.push(reason)
  process.on('unhandledRejection', onRejection)
  try {
    const outcome = await work().then(
      (v) => v as unknown,
      (e: unknown) => e,
    )
    // Rejections are reported after the microtask queue drains: give them a few turns of the event loop.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
    return { outcome, unhandled }
  } finally {
    process.off('unhandledRejection', onRejection)
  }
}

async function rejection(work: Promise<unknown>): Promise<ProviderError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ProviderError)
  return err as ProviderError
}

// ---------------------------------------------------------------------------------------------------------

describe('anthropic: a text answer', () => {
  it('answers, with the mapped request and the upstream usage', async () => {
    const completion = await ask(anthropic(), [user('hello there')])
    expect(completion).toEqual({
      message: { role: 'assistant', content: 'You said: hello there' },
      // The mock counts a token per 4 characters: 11 in, 21 out.
      usage: { promptTokens: 3, completionTokens: 6, totalTokens: 9 },
      finishReason: 'stop',
    })
    expect(posts()).toHaveLength(1)
    const body = sent(0)
    expect(body).toEqual({
      model: MODEL,
      max_tokens: 4096,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hello there' }] }],
      stream: false,
    })
  })

  it('sends the key, and no key of its own from ANTHROPIC_API_KEY', async () => {
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-ant-from-the-environment')
    await ask(anthropic(), [user('hi')])
    const headers = posts()[0]!.headers
    expect(headers.authorization ?? headers['x-api-key']).toContain(KEY)
    expect(JSON.stringify(headers)).not.toContain('from-the-environment')
  })

  it('joins system and developer messages into the system parameter', async () => {
    const completion = await ask(anthropic(), [
      { role: 'system', content: 'You are terse.' },
      { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
      user('show: system'),
    ])
    expect(sent(0).system).toBe('You are terse.\n\nAnswer in French.')
    expect(sent(0).messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'show: system' }] }])
    // The mock answers the system prompt it was given: it reached the model as one.
    expect(completion.message.content).toBe('You are terse.\n\nAnswer in French.')
  })

  it('counts cached input as prompt tokens', async () => {
    fake.next({
      status: 200,
      body: message([{ type: 'text', text: 'ok' }], 'end_turn', {
        input_tokens: 10,
        cache_creation_input_tokens: 20,
        cache_read_input_tokens: 30,
        output_tokens: 7,
      }),
    })
    const completion = await ask(anthropic(), [user('hi')])
    expect(completion.usage).toEqual({ promptTokens: 60, completionTokens: 7, totalTokens: 67 })
  })

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['refusal', 'content_filter'],
  ])('maps stop_reason %s to %s', async (stopReason, finish) => {
    fake.next({ status: 200, body: message([{ type: 'text', text: 'partial' }], stopReason) })
    const completion = await ask(anthropic(), [user('hi')])
    expect(completion.finishReason).toBe(finish)
    expect(completion.message.content).toBe('partial')
  })

  it('answers null content when the reply has no text', async () => {
    fake.next({ status: 200, body: message([]) })
    const completion = await ask(anthropic(), [user('hi')])
    expect(completion.message).toEqual({ role: 'assistant', content: null })
  })

  it('maps Model properties and request parameters, and leaves out names Anthropic does not know', async () => {
    const provider = anthropic({
      properties: {
        temperature: '0.2',
        top_p: '0.5',
        top_k: '5',
        max_tokens: '300',
        stop: '["END"]',
        latencyMs: '5',
      },
    })
    const completion = await ask(provider, [user('say alpha HALT beta')], {
      parameters: { top_p: 0.9, stop: 'HALT', frequency_penalty: 1, max_completion_tokens: 200, user: 'u1' },
    })
    const body = sent(0)
    expect(body.temperature).toBe(0.2)
    expect(body.top_p).toBe(0.9)
    expect(body.top_k).toBe(5)
    expect(body.stop_sequences).toEqual(['HALT'])
    expect(body.max_tokens).toBe(200)
    for (const k of ['frequency_penalty', 'max_completion_tokens', 'stop', 'latencyMs', 'user']) {
      expect(body).not.toHaveProperty(k)
    }
    // The fake stops at the stop sequence, as the API does.
    expect(completion.message.content).toBe('You said: say alpha ')
    expect(completion.finishReason).toBe('stop')
  })

  it('takes the agent settings’ temperature (defaults) unless the Model or the request sets one', async () => {
    await ask(anthropic(), [user('hi')], { defaults: { temperature: 0.3 } })
    expect(sent(0).temperature).toBe(0.3)
    await ask(anthropic({ properties: { temperature: '0.7' } }), [user('hi')], {
      defaults: { temperature: 0.3 },
    })
    expect(sent(1).temperature).toBe(0.7)
    await ask(anthropic({ properties: { temperature: '0.7' } }), [user('hi')], {
      defaults: { temperature: 0.3 },
      parameters: { temperature: 0.1 },
    })
    expect(sent(2).temperature).toBe(0.1)
    // No JSON mode in the Messages API: `json` leaves the request as it was (the prompt asks for JSON).
    await ask(anthropic(), [user('hi')], { json: true })
    expect(Object.keys(sent(3)).sort()).toEqual(
      Object.keys(sent(0))
        .filter((k) => k !== 'temperature')
        .sort(),
    )
  })

  it.each([
    ['nothing', {}, {}, undefined, 4096],
    ['the Model property', { max_tokens: '300' }, {}, undefined, 300],
    ['the request parameter', { max_tokens: '300' }, { max_tokens: 200 }, undefined, 200],
    ['the request limit', { max_tokens: '300' }, { max_tokens: 200 }, 77, 77],
  ])('max_tokens from %s', async (_, properties, parameters, maxTokens, expected) => {
    await ask(anthropic({ properties }), [user('hi')], {
      parameters,
      ...(maxTokens === undefined ? {} : { maxTokens }),
    })
    expect(sent(0).max_tokens).toBe(expected)
  })

  it('sends the Model headers and its API version', async () => {
    await ask(anthropic({ headers: { 'x-team': 'ark-platform' }, apiVersion: '2023-06-01' }), [user('hi')])
    expect(posts()[0]!.headers).toMatchObject({ 'x-team': 'ark-platform', 'anthropic-version': '2023-06-01' })
  })

  it('maps text and image parts, and drops parts Anthropic has no block for', async () => {
    await ask(anthropic(), [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in these?' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'low' } },
          { type: 'image_url', image_url: { url: 'data:image/tiff;base64,AAAA' } },
          { type: 'image_url', image_url: { url: 'http://example.com/plain.jpg' } },
          { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } },
        ] as ChatMessage['content'] & object[],
      },
    ])
    expect(sent(0).messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in these?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
        ],
      },
    ])
  })

  it('fails clearly, without a request, when Anthropic itself would get no key', async () => {
    const provider = createAnthropicProvider({
      provider: 'anthropic',
      model: MODEL,
      headers: {},
      properties: {},
    })
    const err = await rejection(ask(provider, [user('hi')]))
    expect(err.code).toBe('missing_api_key')
    expect(err.message).toContain(MODEL)
    expect((await rejection(provider.probe(new AbortController().signal))).code).toBe('missing_api_key')
  })

  it('sends no credential to a keyless server at a baseUrl, and looks for none of its own', async () => {
    // Had the SDK gone looking for credentials of its own, it would fail on a profile that does not exist.
    vi.stubEnv('ANTHROPIC_API_KEY', '')
    vi.stubEnv('ANTHROPIC_AUTH_TOKEN', '')
    vi.stubEnv('ANTHROPIC_PROFILE', 'no-such-profile')
    const keyless = {
      provider: 'anthropic',
      model: MODEL,
      baseUrl: fake.url,
      headers: {},
      properties: {},
    } as const
    const completion = await ask(createAnthropicProvider(keyless), [user('hi')])
    expect(completion.message.content).toBe('You said: hi')
    expect(posts()[0]!.headers).not.toHaveProperty('authorization')
    expect(posts()[0]!.headers).not.toHaveProperty('x-api-key')
  })
})

describe('anthropic: streaming', () => {
  it('calls onDelta with each piece of text in order, and the pieces join to the answer', async () => {
    const deltas: string[] = []
    const said = 'answer: one two three four'
    const streamed = await ask(anthropic(), [user(said)], { onDelta: (t) => void deltas.push(t) })
    expect(sent(0).stream).toBe(true)
    expect(deltas).toEqual(['one ', 'two ', 'three ', 'four'])
    expect(streamed.message).toEqual({ role: 'assistant', content: 'one two three four' })
    expect(streamed.finishReason).toBe('stop')
    // Usage comes in two events (input at message_start, output at message_delta) and adds up the same.
    const whole = await ask(anthropic(), [user(said)])
    expect(streamed.usage).toEqual(whole.usage)
    expect(streamed.usage.promptTokens).toBeGreaterThan(0)
    expect(streamed.usage.completionTokens).toBeGreaterThan(1)
  })

  it('reads text that arrives with content_block_start, and input counts that arrive with message_delta', async () => {
    fake.next({
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
      body: sse([
        { type: 'message_start', message: message([], 'end_turn', { input_tokens: 1, output_tokens: 1 }) },
        { type: 'content_block_start', index: 0, content_block: { type: 'text', text: 'Hi' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' there' } },
        { type: 'content_block_stop', index: 0 },
        {
          type: 'message_delta',
          delta: { stop_reason: 'max_tokens', stop_sequence: null },
          usage: { input_tokens: 12, cache_read_input_tokens: 5, output_tokens: 2 },
        },
        { type: 'message_stop' },
      ]),
    })
    const deltas: string[] = []
    const completion = await ask(anthropic(), [user('hi')], { onDelta: (t) => void deltas.push(t) })
    expect(deltas).toEqual(['Hi', ' there'])
    expect(completion).toEqual({
      message: { role: 'assistant', content: 'Hi there' },
      usage: { promptTokens: 17, completionTokens: 2, totalTokens: 19 },
      finishReason: 'length',
    })
  })

  it('puts tool input together from its JSON pieces', async () => {
    const deltas: string[] = []
    const completion = await ask(anthropic(), [user('add {"a": 20, "b": 22}')], {
      tools: [add.definition],
      onDelta: (t) => void deltas.push(t),
    })
    expect(deltas).toEqual([])
    expect(completion.finishReason).toBe('tool_calls')
    expect(completion.message.tool_calls).toEqual([
      { id: 'toolu_fake1_0', type: 'function', function: { name: 'add', arguments: '{"a":20,"b":22}' } },
    ])
  })
})

describe('anthropic: tools', () => {
  it.each([false, true])('runs a multi-step tool loop (streaming: %s)', async (stream) => {
    const provider = anthropic()
    const { result, events } = await run(
      agentWith([add]),
      provider,
      'add {"a": 2, "b": 3}\nadd {"a": 10, "b": 5}',
      stream,
    )
    expect(result.outcome).toBe('answer')
    expect(result.content).toBe('add: 5\nadd: 15')
    expect(result.iterations).toBe(3)
    expect(posts()).toHaveLength(3)

    const first = sent(0)
    expect(first.system).toBe('You add numbers.')
    expect(first.tools).toEqual([{ name: 'add', description: 'the add tool', input_schema: ADD_SCHEMA }])
    expect(first).not.toHaveProperty('tool_choice')
    // Each tool_use id the upstream chose comes back in the tool_result that answers it.
    expect(sent(2).messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'add {"a": 2, "b": 3}\nadd {"a": 10, "b": 5}' }] },
      {
        role: 'assistant',
        content: [{ type: 'tool_use', id: 'toolu_fake1_0', name: 'add', input: { a: 2, b: 3 } }],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_fake1_0', content: '5' }] },
      {
        role: 'assistant',
        content: [{ type: 'tool_use', id: 'toolu_fake2_0', name: 'add', input: { a: 10, b: 5 } }],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_fake2_0', content: '15' }] },
    ])
    const toolIds = events.flatMap((e) => (e.type === 'tool.start' ? [e.id] : []))
    expect(toolIds).toEqual(['toolu_fake1_0', 'toolu_fake2_0'])
    const deltas = events.flatMap((e) => (e.type === 'llm.delta' ? [e.text] : []))
    expect(deltas.join('')).toBe(stream ? 'add: 5\nadd: 15' : '')
    const usage = events.flatMap((e) => (e.type === 'llm.complete' ? [e.usage] : []))
    expect(usage).toHaveLength(3)
    expect(usage.every((u) => u.promptTokens > 0 && u.completionTokens > 0)).toBe(true)
  })

  it('sends an assistant turn as text then tool_use, and merges tool results and same-role neighbours', async () => {
    const completion = await ask(
      anthropic(),
      [
        user('first'),
        user('second'),
        {
          role: 'assistant',
          content: 'Let me look.',
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'add', arguments: '{"a": 1, "b": 2}' } },
            { id: 'call_b', type: 'function', function: { name: 'add', arguments: '{oops' } },
            { id: 'call_c', type: 'function', function: { name: 'add', arguments: '[1, 2]' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: '3' },
        { role: 'tool', tool_call_id: 'call_b', content: 'error: the arguments of add are not valid JSON' },
        {
          role: 'tool',
          tool_call_id: 'call_c',
          content: 'error: the arguments of add must be a JSON object',
        },
        user('and then?'),
      ],
      { tools: [add.definition] },
    )
    expect(sent(0).messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'first' },
          { type: 'text', text: 'second' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me look.' },
          { type: 'tool_use', id: 'call_a', name: 'add', input: { a: 1, b: 2 } },
          { type: 'tool_use', id: 'call_b', name: 'add', input: {} },
          { type: 'tool_use', id: 'call_c', name: 'add', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_a', content: '3' },
          {
            type: 'tool_result',
            tool_use_id: 'call_b',
            content: 'error: the arguments of add are not valid JSON',
          },
          {
            type: 'tool_result',
            tool_use_id: 'call_c',
            content: 'error: the arguments of add must be a JSON object',
          },
          { type: 'text', text: 'and then?' },
        ],
      },
    ])
    // The fake refuses tool_use without its tool_result: an answer means the ids matched.
    expect(completion.message.content).toBe('You said: and then?')
  })

  it('reads a reply with text and tool_use blocks', async () => {
    fake.next({
      status: 200,
      body: message(
        [
          { type: 'text', text: 'Let me check.' },
          { type: 'tool_use', id: 'toolu_01', name: 'add', input: { a: 1, b: 2 } },
          { type: 'tool_use', id: 'toolu_02', name: 'add', input: {} },
        ],
        'tool_use',
      ),
    })
    const completion = await ask(anthropic(), [user('hi')], { tools: [add.definition] })
    expect(completion.finishReason).toBe('tool_calls')
    expect(completion.message).toEqual({
      role: 'assistant',
      content: 'Let me check.',
      tool_calls: [
        { id: 'toolu_01', type: 'function', function: { name: 'add', arguments: '{"a":1,"b":2}' } },
        { id: 'toolu_02', type: 'function', function: { name: 'add', arguments: '{}' } },
      ],
    })
  })
})

describe('anthropic: outputSchema', () => {
  it('without tools, forces the answer tool and answers its input as JSON', async () => {
    const completion = await ask(anthropic(), [user('Where is the Louvre?\nanswer: {"city": "Paris"}')], {
      outputSchema: CITY,
    })
    expect(sent(0).tools).toEqual([
      { name: 'final_answer', description: expect.any(String) as string, input_schema: CITY },
    ])
    expect(sent(0).tool_choice).toEqual({ type: 'tool', name: 'final_answer' })
    expect(completion).toMatchObject({
      message: { role: 'assistant', content: '{"city":"Paris"}' },
      finishReason: 'stop',
    })
    expect(completion.message.tool_calls).toBeUndefined()
  })

  it('with tools, makes the model call one, and the loop gets the validated answer', async () => {
    const sum: JsonSchema = { type: 'object', properties: { sum: { type: 'number' } }, required: ['sum'] }
    const { result } = await run(
      agentWith([add], sum),
      anthropic(),
      'add {"a": 2, "b": 3}\nanswer: {"sum": 5}',
    )
    expect(result.outcome).toBe('answer')
    expect(result.content).toBe('{"sum":5}')
    expect(result.iterations).toBe(2)
    expect(sent(0).tool_choice).toEqual({ type: 'any' })
    expect(sent(0).tools?.map((t) => t.name)).toEqual(['add', 'final_answer'])
    expect(sent(1).tool_choice).toEqual({ type: 'any' })
  })

  it('hands an answer that does not match the schema to the loop, whose correction reaches the model', async () => {
    const { result } = await run(agentWith([], CITY), anthropic(), 'answer: {"city": 5}')
    // The first answer fails validation; the loop says why and the model (the fake: the schema's example) answers again.
    expect(result.outcome).toBe('answer')
    expect(result.content).toBe('{"city":""}')
    expect(result.iterations).toBe(2)
    const again = sent(1).messages
    expect(again.slice(0, 2)).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'answer: {"city": 5}' }] },
      { role: 'assistant', content: [{ type: 'text', text: '{"city":5}' }] },
    ])
    expect(again[2]?.role).toBe('user')
    expect(JSON.stringify(again[2]?.content)).toContain('city: must be a string')
    expect(sent(1).tool_choice).toEqual({ type: 'tool', name: 'final_answer' })
  })

  it('wraps a schema that is not an object, and unwraps the answer', async () => {
    const list: JsonSchema = { type: 'array', items: { type: 'number' } }
    const completion = await ask(anthropic(), [user('answer: {"value": [1, 2]}')], { outputSchema: list })
    expect(sent(0).tools?.[0]?.input_schema).toEqual({
      type: 'object',
      properties: { value: list },
      required: ['value'],
    })
    expect(completion.message.content).toBe('[1,2]')
  })

  it('picks a free name when an agent tool is already called final_answer', async () => {
    const taken = tool('final_answer', () => ({ content: 'taken' }))
    fake.next({
      status: 200,
      body: message(
        [{ type: 'tool_use', id: 'toolu_1', name: 'final_answer_1', input: { city: 'Rome' } }],
        'tool_use',
      ),
    })
    const completion = await ask(anthropic(), [user('hi')], { tools: [taken.definition], outputSchema: CITY })
    expect(sent(0).tools?.map((t) => t.name)).toEqual(['final_answer', 'final_answer_1'])
    expect(sent(0).tool_choice).toEqual({ type: 'any' })
    expect(completion.message).toEqual({ role: 'assistant', content: '{"city":"Rome"}' })
  })

  it('lets other tools called in the same turn win over the answer', async () => {
    fake.next({
      status: 200,
      body: message(
        [
          { type: 'tool_use', id: 'toolu_1', name: 'final_answer', input: { city: 'Rome' } },
          { type: 'tool_use', id: 'toolu_2', name: 'add', input: { a: 1, b: 1 } },
        ],
        'tool_use',
      ),
    })
    const completion = await ask(anthropic(), [user('hi')], { tools: [add.definition], outputSchema: CITY })
    expect(completion.finishReason).toBe('tool_calls')
    expect(completion.message.tool_calls).toEqual([
      { id: 'toolu_2', type: 'function', function: { name: 'add', arguments: '{"a":1,"b":1}' } },
    ])
  })

  it('streams the answer once, whole, never its JSON in pieces', async () => {
    const deltas: string[] = []
    const completion = await ask(anthropic(), [user('answer: {"city": "Paris"}')], {
      outputSchema: CITY,
      onDelta: (t) => void deltas.push(t),
    })
    expect(sent(0).stream).toBe(true)
    expect(completion.message.content).toBe('{"city":"Paris"}')
    expect(deltas).toEqual(['{"city":"Paris"}'])
  })
})

describe('anthropic: upstream failures', () => {
  it.each([
    [429, { 'retry-after-ms': '50' }],
    [429, { 'retry-after': '0.05' }],
    [500, { 'retry-after-ms': '10' }],
    [529, { 'retry-after-ms': '10' }],
  ])('retries a %i and succeeds', async (status, headers) => {
    fake.next({ status, headers })
    const completion = await ask(anthropic(), [user('hi')])
    expect(completion.message.content).toBe('You said: hi')
    expect(posts()).toHaveLength(2)
  })

  it('gives up after maxRetries with the last error', async () => {
    fake.next(
      { status: 500, headers: { 'retry-after-ms': '10' } },
      { status: 529, headers: { 'retry-after-ms': '10' } },
    )
    const err = await rejection(ask(anthropic({ maxRetries: 1 }), [user('hi')]))
    expect(err).toMatchObject({ status: 529, code: 'overloaded_error' })
    expect(err.message).toBe('529 fake upstream answered 529')
    expect(posts()).toHaveLength(2)
  })

  it('reports a 401 without the key the upstream echoed, and does not retry it', async () => {
    fake.keys.add('sk-ant-the-right-key-000')
    const err = await rejection(ask(anthropic(), [user('hi')]))
    expect(err.status).toBe(401)
    expect(err.code).toBe('authentication_error')
    expect(err.message).not.toContain(KEY)
    // The key was sent and echoed: the redaction is what kept it out.
    expect(err.message).toContain('[REDACTED]')
    expect(posts()[0]!.headers.authorization ?? posts()[0]!.headers['x-api-key']).toContain(KEY)
    expect(posts()).toHaveLength(1)
  })

  it("reports a 400 with the upstream's message and type", async () => {
    const err = await rejection(ask(anthropic(), [user('hi')], { parameters: { temperature: 5 } }))
    expect(err).toMatchObject({ status: 400, code: 'invalid_request_error' })
    expect(err.message).toBe('400 temperature: Input should be between 0 and 1')
  })

  it('uses http_<status> when the upstream says no error type', async () => {
    fake.next({ status: 418, body: { message: 'I am a teapot' } })
    const err = await rejection(ask(anthropic(), [user('hi')]))
    expect(err).toMatchObject({ status: 418, code: 'http_418' })
  })

  it.each(['malformed', 'cut'] as const)(
    'reports a %s stream as bad_response, with nothing unhandled',
    async (how) => {
      fake.next({ brokenStream: how, afterEvents: 4 })
      const deltas: string[] = []
      const { outcome, unhandled } = await watchingRejections(() =>
        ask(anthropic(), [user('answer: one two three four five')], { onDelta: (t) => void deltas.push(t) }),
      )
      expect(outcome).toBeInstanceOf(ProviderError)
      const err = outcome as ProviderError
      expect(['bad_response', 'connection']).toContain(err.code)
      expect(err.status).toBeUndefined()
      expect(err.message).toContain(MODEL)
      // message_start, ping, content_block_start, then one word: the answer broke after it.
      expect(deltas).toEqual(['one '])
      expect(unhandled).toEqual([])
      // A broken stream is not retried: part of it may already have reached the caller.
      expect(posts()).toHaveLength(1)
    },
  )

  it.each(['malformed', 'cut'] as const)('reports a %s non-streamed answer as bad_response', async (how) => {
    fake.next({ brokenStream: how })
    const { outcome, unhandled } = await watchingRejections(() =>
      ask(anthropic({ maxRetries: 0 }), [user('hi')]),
    )
    expect(outcome).toBeInstanceOf(ProviderError)
    expect(['bad_response', 'connection']).toContain((outcome as ProviderError).code)
    expect(unhandled).toEqual([])
  })

  it('reports an error event in the middle of a stream with its type', async () => {
    const start = message([], 'end_turn')
    fake.next({
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
      body:
        sse([{ type: 'message_start', message: start }]) +
        'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',
    })
    const err = await rejection(ask(anthropic(), [user('hi')], { onDelta: () => undefined }))
    expect(err.code).toBe('overloaded_error')
    expect(err.status).toBeUndefined()
    expect(err.message).toContain('Overloaded')
  })

  it('reports a stream that ends before message_stop', async () => {
    const start = message([], 'end_turn')
    fake.next({
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
      body: sse([{ type: 'message_start', message: start }]),
    })
    const err = await rejection(ask(anthropic(), [user('hi')], { onDelta: () => undefined }))
    expect(err.code).toBe('bad_response')
    expect(err.message).toContain('message_stop')
  })

  it('aborts the upstream request with the signal, and rejects with its reason', async () => {
    fake.next({ hang: true })
    const controller = new AbortController()
    const pending = ask(anthropic(), [user('hi')], { signal: controller.signal })
    await vi.waitFor(() => expect(posts()).toHaveLength(1))
    const reason = new Error('the caller went away')
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
    await vi.waitFor(() => expect(posts()[0]!.closedEarly).toBe(true))
  })

  it('aborts a hanging stream request too', async () => {
    fake.next({ hang: true })
    const controller = new AbortController()
    const pending = ask(anthropic(), [user('hi')], { signal: controller.signal, onDelta: () => undefined })
    await vi.waitFor(() => expect(posts()).toHaveLength(1))
    const reason = new DOMException('the task timed out', 'TimeoutError')
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
    await vi.waitFor(() => expect(posts()[0]!.closedEarly).toBe(true))
  })

  it('sends nothing when the signal has already fired', async () => {
    const reason = new Error('cancelled before the call')
    await expect(ask(anthropic(), [user('hi')], { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
    expect(posts()).toHaveLength(0)
  })

  it('reports a per-attempt timeout as timeout', async () => {
    fake.next({ hang: true })
    const err = await rejection(ask(anthropic({ timeoutMs: 100, maxRetries: 0 }), [user('hi')]))
    expect(err.code).toBe('timeout')
    expect(err.status).toBeUndefined()
    await vi.waitFor(() => expect(posts()[0]!.closedEarly).toBe(true))
  })

  it('reports an upstream that is not there as connection', async () => {
    const closed = await freePort()
    const err = await rejection(
      ask(anthropic({ baseUrl: `http://127.0.0.1:${String(closed)}`, maxRetries: 0 }), [user('hi')]),
    )
    expect(err.code).toBe('connection')
    expect(err.message).toContain(`127.0.0.1:${String(closed)}`)
  })
})

describe('anthropic: probe', () => {
  it('retrieves the model, for no tokens', async () => {
    await anthropic().probe(new AbortController().signal)
    expect(fake.calls.map((c) => `${c.method} ${c.path}`)).toEqual([`GET /v1/models/${MODEL}`])
  })

  it('says model_not_found for a model that is not there', async () => {
    const err = await rejection(anthropic({ model: 'missing-model-9' }).probe(new AbortController().signal))
    expect(err).toMatchObject({ status: 404, code: 'model_not_found' })
    expect(err.message).toContain('missing-model-9')
  })

  it('reports bad credentials without the key', async () => {
    fake.keys.add('sk-ant-the-right-key-000')
    const err = await rejection(anthropic().probe(new AbortController().signal))
    expect(err).toMatchObject({ status: 401, code: 'authentication_error' })
    expect(err.message).not.toContain(KEY)
    expect(err.message).toContain('[REDACTED]')
  })

  it('passes with the right key', async () => {
    fake.keys.add(KEY)
    await anthropic().probe(new AbortController().signal)
    expect(fake.calls).toHaveLength(1)
  })
})

/** An SSE body, as the Messages API streams one. */
function sse(events: readonly (Readonly<Record<string, unknown>> & { readonly type: string })[]): string {
  return events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('')
}
