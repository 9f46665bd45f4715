import { afterEach, describe, expect, it, vi } from 'vitest'
import type { JsonSchema } from '../../../controller/api/index.ts'
import type { AssistantMessage, ChatMessage, ToolCall, ToolDefinition } from '../messages.ts'
import type { Completion, CompletionRequest, Provider, ProviderConfig } from '../provider.ts'
import { compileJsonSchema } from '../schema.ts'
import { createMockProvider, exampleOf } from './mock.ts'
import { within } from '../../../test/within.ts'

const config = (properties: Record<string, string> = {}): ProviderConfig => ({
  provider: 'mock',
  model: 'm',
  headers: {},
  properties,
})

const definition = (name: string): ToolDefinition => ({
  type: 'function',
  function: { name, parameters: { type: 'object' } },
})

const TOOLS: readonly ToolDefinition[] = ['calculator', 'noop', 'web-search'].map(definition)

const user = (content: string): ChatMessage => ({ role: 'user', content })

function ask(
  provider: Provider,
  messages: readonly ChatMessage[],
  extra: Partial<Omit<CompletionRequest, 'messages'>> = {},
): Promise<Completion> {
  return provider.complete({ messages, tools: [], signal: new AbortController().signal, ...extra })
}

const mock = () => createMockProvider(config())

/** The content of a reply that must be an answer. */
function answerOf(completion: Completion): string {
  expect(completion.message.tool_calls).toBeUndefined()
  expect(completion.finishReason).toBe('stop')
  expect(completion.message.content).not.toBeNull()
  return completion.message.content!
}

/** The tool calls of a reply that must call tools. */
function callsOf(completion: Completion): readonly ToolCall[] {
  expect(completion.finishReason).toBe('tool_calls')
  expect(completion.message.content).toBeNull()
  return completion.message.tool_calls ?? []
}

const named = (calls: readonly ToolCall[]) => calls.map((c) => [c.function.name, c.function.arguments])

/**
 * Plays the tool loop against the mock: each tool call is answered with `respond`, until the mock answers.
 * Returns the tool-call turns and the answer.
 */
async function converse(
  provider: Provider,
  text: string,
  respond: (call: ToolCall) => string,
  tools: readonly ToolDefinition[] = TOOLS,
): Promise<{ turns: (readonly ToolCall[])[]; answer: string; messages: ChatMessage[] }> {
  const messages: ChatMessage[] = [{ role: 'system', content: 'sys' }, user(text)]
  const turns: (readonly ToolCall[])[] = []
  for (let i = 0; i < 20; i++) {
    const { message } = await ask(provider, messages, { tools })
    if (message.tool_calls === undefined) return { turns, answer: message.content ?? '', messages }
    turns.push(message.tool_calls)
    messages.push(message)
    for (const c of message.tool_calls)
      messages.push({ role: 'tool', tool_call_id: c.id, content: respond(c) })
  }
  throw new Error('the mock kept calling tools')
}

// ---------------------------------------------------------------------------------------------------------

describe('mock provider: identity', () => {
  it('names its provider and model', () => {
    const p = createMockProvider(config())
    expect(p.provider).toBe('mock')
    expect(p.model).toBe('m')
    expect(createMockProvider({ ...config(), model: 'other' }).model).toBe('other')
  })
})

describe('mock provider: answers', () => {
  it('echoes the last user message', async () => {
    const c = await ask(mock(), [{ role: 'system', content: 'sys' }, user('first'), user('Hello, mock!')])
    expect(answerOf(c)).toBe('You said: Hello, mock!')
  })

  it('reads the text parts of a multi-part message', async () => {
    const message: ChatMessage = {
      role: 'user',
      content: [
        { type: 'text', text: 'part one, ' },
        { type: 'image_url' },
        { type: 'text', text: 'part two' },
      ],
    }
    expect(answerOf(await ask(mock(), [message]))).toBe('You said: part one, part two')
  })

  it('truncates a long message to 500 characters and "..."', async () => {
    const long = 'abcdefghij'.repeat(60)
    const content = answerOf(await ask(mock(), [user(long)]))
    expect(content).toBe(`You said: ${long.slice(0, 500)}...`)
    const exact = 'z'.repeat(500)
    expect(answerOf(await ask(mock(), [user(exact)]))).toBe(`You said: ${exact}`)
    expect(answerOf(await ask(mock(), [user(`${exact}!`)]))).toBe(`You said: ${exact}...`)
  })

  it('echoes nothing when there is no user message', async () => {
    expect(answerOf(await ask(mock(), [{ role: 'system', content: 'sys' }]))).toBe('You said: ')
  })

  it('answers the text of an "answer:" line', async () => {
    const c = await ask(mock(), [user('Please reply.\n  answer:   forty-two  \nanswer: not this one')])
    expect(answerOf(c)).toBe('forty-two')
  })

  it('answers its system prompt for "show: system"', async () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You help team {{.team}} -> rendered: blue' },
      user('hello\nshow: system'),
    ]
    expect(answerOf(await ask(mock(), messages))).toBe('You help team {{.team}} -> rendered: blue')
    expect(answerOf(await ask(mock(), [user('show: system')]))).toBe('')
  })
})

describe('mock provider: tool directives', () => {
  it('a tool with an empty name is never called (and the search for it ends)', async () => {
    const c = await ask(mock(), [user('noop {} and {}')], { tools: [...TOOLS, definition('')] })
    expect(named(callsOf(c))).toEqual([['noop', '{}']])
  })

  it('calls the tool a line names, with its JSON arguments', async () => {
    const c = await ask(mock(), [user('calculator {"expression": "2+3"}')], { tools: TOOLS })
    const calls = callsOf(c)
    expect(named(calls)).toEqual([['calculator', '{"expression": "2+3"}']])
    expect(calls[0]!.type).toBe('function')
  })

  it('plays one line per turn, with several tools of a line in the same turn', async () => {
    const text = [
      'First compute calculator {"expression": "1+1"} please.',
      'Then noop {"message": "a {nested} \\"quoted\\" }"} and calculator {"expression": "(2)"} together',
      'no tool on this line',
      'web-search {"q": "ark"}',
    ].join('\n')
    const { turns, answer, messages } = await converse(mock(), text, (c) => `result ${c.id}`)
    expect(turns.map(named)).toEqual([
      [['calculator', '{"expression": "1+1"}']],
      [
        ['noop', '{"message": "a {nested} \\"quoted\\" }"}'],
        ['calculator', '{"expression": "(2)"}'],
      ],
      [['web-search', '{"q": "ark"}']],
    ])
    const ids = turns.flat().map((c) => c.id)
    expect(new Set(ids).size).toBe(ids.length)
    // After the tools, the answer lists each result as `name: content`, in the order they were given.
    const toolLines = messages
      .filter((m) => m.role === 'tool')
      .map((m) => {
        const c = turns.flat().find((x) => x.id === m.tool_call_id)!
        return `${c.function.name}: ${m.content}`
      })
    expect(answer).toBe(toolLines.join('\n'))
    expect(answer.split('\n')).toEqual([
      `calculator: result ${ids[0]!}`,
      `noop: result ${ids[1]!}`,
      `calculator: result ${ids[2]!}`,
      `web-search: result ${ids[3]!}`,
    ])
  })

  it('plays turn k after k assistant tool-call messages', async () => {
    const text = 'noop {"n": 1}\nnoop {"n": 2}\nnoop {"n": 3}'
    const messages: ChatMessage[] = [user(text)]
    for (let k = 0; k < 3; k++) {
      const calls = callsOf(await ask(mock(), messages, { tools: TOOLS }))
      expect(named(calls)).toEqual([['noop', `{"n": ${String(k + 1)}}`]])
      messages.push({ role: 'assistant', content: null, tool_calls: calls })
      messages.push({ role: 'tool', tool_call_id: calls[0]!.id, content: `r${String(k)}` })
    }
    // Assistant messages without tool calls do not count as turns.
    const plain: AssistantMessage = { role: 'assistant', content: 'thinking' }
    expect(answerOf(await ask(mock(), [...messages, plain], { tools: TOOLS }))).toBe(
      'noop: r0\nnoop: r1\nnoop: r2',
    )
  })

  it('starts counting turns again at a new user message', async () => {
    const first = callsOf(await ask(mock(), [user('noop {}')], { tools: TOOLS }))
    const history: ChatMessage[] = [
      user('noop {}'),
      { role: 'assistant', content: null, tool_calls: first },
      { role: 'tool', tool_call_id: first[0]!.id, content: 'ok' },
      { role: 'assistant', content: 'done' },
      user('calculator {"expression": "9"}'),
    ]
    expect(named(callsOf(await ask(mock(), history, { tools: TOOLS })))).toEqual([
      ['calculator', '{"expression": "9"}'],
    ])
  })

  it('recognizes only the names of offered tools, as whole words', async () => {
    const text = [
      'xcalculator {"expression": "1"}',
      'my-noop {"a": 1}',
      'search {"q": "not offered alone"}',
      'weather {"city": "Oslo"}',
      'calculator without arguments',
      'calculatorx {"expression": "2"}',
    ].join('\n')
    const c = await ask(mock(), [user(text)], { tools: TOOLS })
    expect(answerOf(c)).toBe(`You said: ${text}`)
  })

  it('does not call a tool named inside the arguments of another call', async () => {
    const line = 'noop {"message": "then calculator {\\"expression\\": \\"1\\"}"}'
    const calls = callsOf(await ask(mock(), [user(line)], { tools: TOOLS }))
    expect(named(calls)).toEqual([['noop', '{"message": "then calculator {\\"expression\\": \\"1\\"}"}']])
    expect(JSON.parse(calls[0]!.function.arguments)).toEqual({
      message: 'then calculator {"expression": "1"}',
    })
  })

  it('ignores tool directives when no tools are offered', async () => {
    const c = await ask(mock(), [user('calculator {"expression": "1"}')], { tools: [] })
    expect(answerOf(c)).toBe('You said: calculator {"expression": "1"}')
  })

  it('answers the "answer:" line after its tools have run', async () => {
    const text = 'calculator {"expression": "6*7"}\nanswer: The answer is in.'
    const { turns, answer } = await converse(mock(), text, () => '42')
    expect(turns).toHaveLength(1)
    expect(answer).toBe('The answer is in.')
  })
})

describe('mock provider: outputSchema', () => {
  const schemas: Record<string, JsonSchema> = {
    'object with required, enum and minimum': {
      type: 'object',
      properties: {
        status: { type: 'string', enum: ['ok', 'failed'] },
        count: { type: 'integer', minimum: 3 },
        note: { type: 'string' },
      },
      required: ['status', 'count'],
      additionalProperties: false,
    },
    'array with minItems': {
      type: 'array',
      items: { type: 'string', minLength: 2 },
      minItems: 2,
    },
    nested: {
      type: 'object',
      properties: {
        user: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1 },
            tags: { type: 'array', items: { type: 'number', exclusiveMinimum: 5 }, minItems: 1 },
            admin: { type: 'boolean' },
            level: { const: 'gold' },
          },
        },
      },
      required: ['user'],
    },
    'number with a negative maximum': { type: 'number', maximum: -2 },
  }

  it.each(Object.entries(schemas))('answers JSON that matches: %s', async (_, schema) => {
    const c = await ask(mock(), [user('give me JSON')], { outputSchema: schema })
    const value: unknown = JSON.parse(answerOf(c))
    expect(value).toEqual(exampleOf(schema))
    expect(compileJsonSchema(schema).problems(value)).toEqual([])
  })

  it('makes the smallest values', () => {
    expect(exampleOf(schemas['object with required, enum and minimum']!)).toEqual({ status: 'ok', count: 3 })
    expect(exampleOf(schemas['array with minItems']!)).toEqual(['xx', 'xx'])
    expect(exampleOf(schemas.nested!)).toEqual({
      user: { name: 'x', tags: [6], admin: false, level: 'gold' },
    })
  })

  it('prefers an "answer:" line to the schema example', async () => {
    const c = await ask(mock(), [user('answer: {"mine": true}')], { outputSchema: { type: 'object' } })
    expect(answerOf(c)).toBe('{"mine": true}')
  })
})

describe('mock provider: usage', () => {
  it('counts one token per 4 characters in and out, the same every time', async () => {
    const messages: ChatMessage[] = [{ role: 'system', content: 'abcd' }, user('hello')]
    const a = await ask(mock(), messages)
    const b = await ask(mock(), messages)
    expect(a.usage).toEqual(b.usage)
    // 'abcd' + 'hello' = 9 characters in; 'You said: hello' = 15 out.
    expect(a.usage).toEqual({ promptTokens: 3, completionTokens: 4, totalTokens: 7 })
  })

  it('counts tool calls and tool results', async () => {
    const first = await ask(mock(), [user('noop {"a": 1}')], { tools: TOOLS })
    const calls = callsOf(first)
    // Out: the name and the arguments.
    expect(first.usage.completionTokens).toBe(Math.ceil(('noop'.length + '{"a": 1}'.length) / 4))
    const after = await ask(
      mock(),
      [
        user('noop {"a": 1}'),
        { role: 'assistant', content: null, tool_calls: calls },
        { role: 'tool', tool_call_id: calls[0]!.id, content: 'x'.repeat(40) },
      ],
      { tools: TOOLS },
    )
    expect(after.usage.promptTokens).toBe(Math.ceil(('noop {"a": 1}'.length + '{"a": 1}'.length + 40) / 4))
    expect(after.usage.totalTokens).toBe(after.usage.promptTokens + after.usage.completionTokens)
  })

  it('is more than zero even for an empty conversation', async () => {
    const c = await ask(mock(), [])
    expect(c.usage.completionTokens).toBeGreaterThan(0)
    expect(c.usage.totalTokens).toBeGreaterThan(0)
  })
})

describe('mock provider: streaming', () => {
  it('sends the answer in pieces that join to the whole', async () => {
    const pieces: string[] = []
    const c = await ask(mock(), [user('one two  three\tfour\n five')], {
      onDelta: (t) => void pieces.push(t),
    })
    expect(pieces.length).toBeGreaterThan(1)
    expect(pieces.join('')).toBe(answerOf(c))
  })

  it('sends no pieces for tool calls', async () => {
    const pieces: string[] = []
    const c = await ask(mock(), [user('noop {}')], { tools: TOOLS, onDelta: (t) => void pieces.push(t) })
    expect(callsOf(c)).toHaveLength(1)
    expect(pieces).toEqual([])
  })
})

describe('mock provider: latency', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('waits latencyMs before answering', async () => {
    vi.useFakeTimers()
    const p = createMockProvider(config({ latencyMs: '1000' }))
    let done = false
    const reply = ask(p, [user('hi')]).then((c) => {
      done = true
      return c
    })
    await vi.advanceTimersByTimeAsync(999)
    expect(done).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    expect(done).toBe(true)
    expect(answerOf(await reply)).toBe('You said: hi')
  })

  it('waits chunkDelayMs between streamed words', async () => {
    vi.useFakeTimers()
    const p = createMockProvider(config({ chunkDelayMs: '100' }))
    const pieces: string[] = []
    const reply = ask(p, [user('a b')], { onDelta: (t) => void pieces.push(t) })
    // 'You said: a b' is four words: the first at once, then one every 100 ms.
    await vi.advanceTimersByTimeAsync(0)
    expect(pieces).toEqual(['You '])
    await vi.advanceTimersByTimeAsync(100)
    expect(pieces).toEqual(['You ', 'said: '])
    await vi.advanceTimersByTimeAsync(200)
    expect(pieces.join('')).toBe('You said: a b')
    expect(answerOf(await reply)).toBe('You said: a b')
  })

  it('ignores latency properties that are not positive numbers', async () => {
    for (const value of ['-60000', 'soon', '', 'NaN', 'Infinity']) {
      const p = createMockProvider(config({ latencyMs: value, chunkDelayMs: value }))
      const reply = ask(p, [user('x y z')], { onDelta: () => undefined })
      const outcome = await within(reply.then(answerOf))
      expect(outcome, `latencyMs ${JSON.stringify(value)}`).toBe('You said: x y z')
    }
  })

  it('rejects promptly with the signal reason when aborted during latencyMs', async () => {
    const p = createMockProvider(config({ latencyMs: '60000' }))
    const controller = new AbortController()
    const reply = ask(p, [user('hi')], { signal: controller.signal })
    const reason = new DOMException('the client went away', 'AbortError')
    controller.abort(reason)
    const outcome = await within(
      reply.then(
        () => 'answered',
        (e: unknown) => e,
      ),
    )
    expect(outcome).toBe(reason)
  })

  it('rejects promptly with the signal reason when aborted between streamed words', async () => {
    const p = createMockProvider(config({ chunkDelayMs: '60000' }))
    const controller = new AbortController()
    const reason = new DOMException('x', 'TimeoutError')
    const pieces: string[] = []
    const reply = ask(p, [user('a b c')], {
      signal: controller.signal,
      onDelta: (t) => {
        pieces.push(t)
        controller.abort(reason)
      },
    })
    const outcome = await within(
      reply.then(
        () => 'answered',
        (e: unknown) => e,
      ),
    )
    expect(outcome).toBe(reason)
    expect(pieces).toEqual(['You '])
  })

  it('rejects at once when the signal has already fired', async () => {
    const reason = new Error('already gone')
    await expect(ask(mock(), [user('hi')], { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
  })
})
