import { describe, expect, it } from 'vitest'
import type { Checked } from './request.ts'
import { MAX_DEPTH, checkChatRequest, checkForwardedRequest, checkMappedRequest } from './request.ts'

type Body = Record<string, unknown>
type Dialect = 'agent' | 'forwarded' | 'mapped'

const user = (content: unknown = 'hi') => [{ role: 'user', content }]
const base = (extra: Body = {}, dialect: Dialect = 'agent'): Body => ({
  model: dialect === 'agent' ? 'agent/support-agent' : 'model/x',
  messages: user(),
  ...extra,
})

function check(dialect: Dialect, body: Body): Checked<unknown> {
  return dialect === 'agent'
    ? checkChatRequest(body)
    : dialect === 'forwarded'
      ? checkForwardedRequest(body)
      : checkMappedRequest(body)
}

const ALL: readonly Dialect[] = ['agent', 'forwarded', 'mapped']

function refused(dialect: Dialect, body: Body): { message: string; param: string | null } {
  const r = check(dialect, body)
  if (r.ok) throw new Error(`${dialect}: expected a refusal of ${JSON.stringify(body).slice(0, 300)}`)
  // Every message starts with where, and says what.
  expect(r.message.startsWith(`${r.param ?? 'body'}: `), r.message).toBe(true)
  expect(r.message.length).toBeGreaterThan((r.param ?? 'body').length + 10)
  return r
}

function accepted(dialect: Dialect, body: Body): void {
  const r = check(dialect, body)
  if (!r.ok)
    throw new Error(`${dialect}: expected ${JSON.stringify(body).slice(0, 300)} to pass: ${r.message}`)
}

const call = (id: string) => ({ id, type: 'function', function: { name: 'lookup', arguments: '{}' } })
const tool = (name = 'lookup') => ({
  type: 'function',
  function: { name, parameters: { type: 'object', properties: {} } },
})

describe('what every target accepts', () => {
  const everything: Body = {
    stream: true,
    stream_options: { include_usage: true },
    n: 1,
    temperature: 2,
    top_p: 0,
    presence_penalty: -2,
    frequency_penalty: 2,
    logit_bias: { '50256': -100, '1': 100 },
    logprobs: true,
    top_logprobs: 20,
    max_tokens: 1,
    max_completion_tokens: 4096,
    seed: -(2 ** 53),
    user: 'u-1',
    safety_identifier: 'h',
    prompt_cache_key: 'k',
    parallel_tool_calls: false,
    store: true,
    reasoning_effort: 'minimal',
    service_tier: 'flex',
    verbosity: 'low',
    modalities: ['text', 'audio'],
    audio: { voice: 'alloy', format: 'wav' },
    web_search_options: {
      search_context_size: 'high',
      user_location: { type: 'approximate', approximate: { city: 'Paris' } },
    },
    prediction: { type: 'content', content: [{ type: 'text', text: 'draft' }] },
    stop: ['a', 'b', 'c', 'd'],
    metadata: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${String(i)}`, 'v'.repeat(512)])),
    response_format: { type: 'text' },
    tool_choice: 'auto',
    tools: [],
    frobnicate: { newer: ['options', 'pass'] },
  }
  const conversation = [
    { role: 'developer', content: [{ type: 'text', text: 'Be brief.' }], name: 'ops' },
    { role: 'system', content: 'You help.' },
    {
      role: 'user',
      name: 'ada',
      content: [
        { type: 'text', text: 'look' },
        { type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'low' } },
        { type: 'input_audio', input_audio: { data: 'AA==', format: 'mp3' } },
        { type: 'file', file: { file_id: 'file-1' } },
      ],
    },
    { role: 'assistant', content: null, tool_calls: [call('c1'), call('c2')] },
    { role: 'tool', tool_call_id: 'c2', content: [{ type: 'text', text: '2' }] },
    { role: 'tool', tool_call_id: 'c1', content: '1' },
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'ok' },
        { type: 'refusal', refusal: 'no' },
      ],
    },
    { role: 'assistant', tool_calls: [call('c3')] },
    { role: 'tool', tool_call_id: 'c3', content: '' },
    { role: 'user', content: 'and?' },
  ]
  for (const dialect of ALL) {
    it(`${dialect}: every field OpenAI defines, at its bounds, with a full conversation`, () => {
      accepted(dialect, base({ ...everything, messages: conversation }, dialect))
    })
  }

  it('forwarded calls take what only OpenAI-wire upstreams serve, and types ark does not know', () => {
    accepted(
      'forwarded',
      base(
        {
          n: 128,
          tools: [tool(), { type: 'custom', custom: { name: 'grep' } }, { type: 'mcp', server_label: 'x' }],
          tool_choice: {
            type: 'allowed_tools',
            allowed_tools: { mode: 'required', tools: [{ type: 'function' }] },
          },
          response_format: { type: 'structural_tag', structures: [] },
          functions: [{ name: 'old_style' }],
          function_call: { name: 'old_style' },
          messages: [
            { role: 'user', content: [{ type: 'video_url', video_url: { url: 'https://x/v.mp4' } }] },
            {
              role: 'assistant',
              content: null,
              tool_calls: [{ id: 'g1', type: 'custom', custom: { name: 'grep', input: 'x' } }],
            },
            { role: 'tool', tool_call_id: 'g1', content: 'found' },
            { role: 'function', name: 'old_style', content: null },
            { role: 'user', content: 'next' },
          ],
        },
        'forwarded',
      ),
    )
  })

  it('mapped and forwarded calls take function tools, a forced tool and structured output', () => {
    for (const dialect of ['forwarded', 'mapped'] as const) {
      accepted(dialect, base({ tools: [tool('lookup'), tool('get-time')], tool_choice: 'required' }, dialect))
      accepted(
        dialect,
        base({ tools: [tool()], tool_choice: { type: 'function', function: { name: 'lookup' } } }, dialect),
      )
      accepted(
        dialect,
        base(
          {
            response_format: {
              type: 'json_schema',
              json_schema: { name: 'Answer_v2', schema: { type: 'object' }, strict: true },
            },
          },
          dialect,
        ),
      )
    }
  })
})

describe('refusals: 400 with the param OpenAI names', () => {
  /** [what, body changes, param, a phrase the message must hold]: refused by every target. */
  const everywhere: [string, Body, string | null, RegExp][] = [
    ['no model', { model: undefined }, 'model', /required/],
    ['model not a string', { model: 42 }, 'model', /string/],
    ['no messages', { messages: undefined }, 'messages', /required/],
    ['empty messages', { messages: [] }, 'messages', /at least 1/],
    ['a message not an object', { messages: [42] }, 'messages[0]', /message object/],
    ['a role missing', { messages: [{ content: 'x' }] }, 'messages[0].role', /required/],
    ['an unknown role', { messages: [{ role: 'robot', content: 'x' }] }, 'messages[0].role', /one of system/],
    ['a prototype role', { messages: [{ role: '__proto__', content: 'x' }] }, 'messages[0].role', /one of/],
    ['user content missing', { messages: [{ role: 'user' }] }, 'messages[0].content', /required/],
    ['user content a number', { messages: user(42) }, 'messages[0].content', /string or a list/],
    ['user content an empty list', { messages: user([]) }, 'messages[0].content', /empty list/],
    ['a part without type', { messages: user([{ text: 'x' }]) }, 'messages[0].content[0].type', /required/],
    [
      'a text part without text',
      { messages: user([{ type: 'text' }]) },
      'messages[0].content[0].text',
      /required/,
    ],
    [
      'an empty part type',
      { messages: user([{ type: '' }]) },
      'messages[0].content[0].type',
      /one of text, image_url/,
    ],
    [
      'a refusal part from the user',
      { messages: user([{ type: 'refusal', refusal: 'x' }]) },
      'messages[0].content[0].type',
      /user message/,
    ],
    [
      'an image without url',
      { messages: user([{ type: 'image_url', image_url: {} }]) },
      'messages[0].content[0].image_url.url',
      /required/,
    ],
    [
      'an image detail unknown',
      { messages: user([{ type: 'image_url', image_url: { url: 'https://x', detail: 'max' } }]) },
      'messages[0].content[0].image_url.detail',
      /"auto", "low", "high"/,
    ],
    [
      'audio in ogg',
      { messages: user([{ type: 'input_audio', input_audio: { data: 'AA==', format: 'ogg' } }]) },
      'messages[0].content[0].input_audio.format',
      /"wav", "mp3"/,
    ],
    [
      'a file without id or data',
      { messages: user([{ type: 'file', file: { filename: 'a.pdf' } }]) },
      'messages[0].content[0].file',
      /file_id .* or file_data/,
    ],
    [
      'a system image',
      {
        messages: [
          { role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://x' } }] },
          ...user(),
        ],
      },
      'messages[0].content[0].type',
      /one of text in a system message/,
    ],
    [
      'a name with a space',
      { messages: [{ role: 'user', content: 'x', name: 'ada l' }] },
      'messages[0].name',
      /without spaces/,
    ],
    [
      'an assistant message without content or tool_calls',
      { messages: [...user(), { role: 'assistant' }, ...user()] },
      'messages[1].content',
      /needs content or tool_calls/,
    ],
    [
      'an assistant message with null content',
      { messages: [...user(), { role: 'assistant', content: null, tool_calls: [] }, ...user()] },
      'messages[1].content',
      /needs content or tool_calls/,
    ],
    [
      'an assistant message with empty content',
      { messages: [...user(), { role: 'assistant', content: '' }, ...user()] },
      'messages[1].content',
      /needs content/,
    ],
    [
      'an assistant image',
      {
        messages: [
          { role: 'assistant', content: [{ type: 'image_url', image_url: { url: 'https://x' } }] },
          ...user(),
        ],
      },
      'messages[0].content[0].type',
      /text, refusal in a assistant message/,
    ],
    [
      'a tool call without id',
      {
        messages: [
          { role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'a', arguments: '' } }] },
        ],
      },
      'messages[0].tool_calls[0].id',
      /required/,
    ],
    [
      'tool call arguments not a string',
      {
        messages: [
          {
            role: 'assistant',
            tool_calls: [{ id: 'c', type: 'function', function: { name: 'a', arguments: {} } }],
          },
        ],
      },
      'messages[0].tool_calls[0].function.arguments',
      /string/,
    ],
    [
      'a tool message without tool_call_id',
      {
        messages: [
          { role: 'assistant', tool_calls: [call('c')] },
          { role: 'tool', content: 'x' },
        ],
      },
      'messages[1].tool_call_id',
      /required/,
    ],
    [
      'a tool message answering nothing',
      { messages: [...user(), { role: 'tool', tool_call_id: 'c', content: 'x' }] },
      'messages[1].tool_call_id',
      /answers no tool call/,
    ],
    [
      'a tool call left unanswered',
      { messages: [{ role: 'assistant', tool_calls: [call('c')] }, ...user()] },
      'messages[0].tool_calls',
      /"c" have no tool message/,
    ],
    [
      'a tool call unanswered at the end',
      {
        messages: [
          ...user(),
          { role: 'assistant', tool_calls: [call('c'), call('d')] },
          { role: 'tool', tool_call_id: 'd', content: '' },
        ],
      },
      'messages[1].tool_calls',
      /"c" have no/,
    ],
    ['stream not a boolean', { stream: 'yes' }, 'stream', /true or false/],
    [
      'stream_options without stream',
      { stream_options: { include_usage: true } },
      'stream_options',
      /only allowed when stream is true/,
    ],
    ['n of 0', { n: 0 }, 'n', />= 1/],
    ['n of 129', { n: 129 }, 'n', /<= 128/],
    ['n not an integer', { n: 1.5 }, 'n', /integer/],
    ['temperature above 2', { temperature: 2.5 }, 'temperature', /<= 2/],
    ['temperature infinite (1e999)', { temperature: Infinity }, 'temperature', /finite number, got Infinity/],
    ['top_p above 1', { top_p: 1.1 }, 'top_p', /<= 1/],
    ['presence_penalty below -2', { presence_penalty: -3 }, 'presence_penalty', />= -2/],
    ['frequency_penalty a string', { frequency_penalty: '1' }, 'frequency_penalty', /number/],
    ['max_tokens of 0', { max_tokens: 0 }, 'max_tokens', />= 1/],
    ['max_tokens of 1e20', { max_tokens: 1e20 }, 'max_tokens', /<=/],
    ['max_completion_tokens fractional', { max_completion_tokens: 2.5 }, 'max_completion_tokens', /integer/],
    ['seed beyond int64', { seed: 1e30 }, 'seed', /<=/],
    ['user a number', { user: 1 }, 'user', /string/],
    ['logprobs a string', { logprobs: 'yes' }, 'logprobs', /true or false/],
    ['top_logprobs of 21', { logprobs: true, top_logprobs: 21 }, 'top_logprobs', /<= 20/],
    ['top_logprobs without logprobs', { top_logprobs: 2 }, 'top_logprobs', /needs "logprobs": true/],
    ['logit_bias a list', { logit_bias: [1] }, 'logit_bias', /object of token id/],
    ['logit_bias key not a token', { logit_bias: { abc: 1 } }, 'logit_bias', /token ids/],
    ['logit_bias out of range', { logit_bias: { '5': 101 } }, 'logit_bias', /-100 to 100/],
    ['parallel_tool_calls a string', { parallel_tool_calls: 'no' }, 'parallel_tool_calls', /true or false/],
    ['stop a number', { stop: 1 }, 'stop', /up to 4 strings/],
    ['five stop sequences', { stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /at most 4/],
    ['a stop sequence not a string', { stop: ['a', 2] }, 'stop[1]', /string/],
    ['metadata a string', { metadata: 'x' }, 'metadata', /string pairs/],
    [
      '17 metadata pairs',
      { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${String(i)}`, 'v'])) },
      'metadata',
      /at most 16/,
    ],
    ['a metadata key of 65', { metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata', /at most 64/],
    ['a metadata value not a string', { metadata: { k: 1 } }, 'metadata.k', /string/],
    ['a metadata value of 513', { metadata: { 'a b': 'v'.repeat(513) } }, 'metadata["a b"]', /512/],
    ['response_format a string', { response_format: 'json' }, 'response_format', /"type": "text"/],
    ['response_format without type', { response_format: {} }, 'response_format.type', /required/],
    [
      'json_schema missing',
      { response_format: { type: 'json_schema' } },
      'response_format.json_schema',
      /required/,
    ],
    [
      'a json_schema name with a space',
      { response_format: { type: 'json_schema', json_schema: { name: 'a b' } } },
      'response_format.json_schema.name',
      /1 to 64 letters/,
    ],
    [
      'a json_schema schema a list',
      { response_format: { type: 'json_schema', json_schema: { name: 'a', schema: [] } } },
      'response_format.json_schema.schema',
      /object/,
    ],
    [
      'json_schema strict a string',
      { response_format: { type: 'json_schema', json_schema: { name: 'a', strict: 'yes' } } },
      'response_format.json_schema.strict',
      /true or false/,
    ],
    ['tool_choice unknown', { tool_choice: 'sometimes' }, 'tool_choice', /"none", "auto", "required"/],
    ['tool_choice required without tools', { tool_choice: 'required' }, 'tool_choice', /tool/],
    [
      'tool_choice function without name',
      { tool_choice: { type: 'function', function: {} } },
      'tool_choice.function.name',
      /required/,
    ],
    ['reasoning_effort unknown', { reasoning_effort: 'max' }, 'reasoning_effort', /one of/],
    ['service_tier unknown', { service_tier: 'gold' }, 'service_tier', /one of/],
    ['verbosity unknown', { verbosity: 'chatty' }, 'verbosity', /one of/],
    ['store a string', { store: 'yes' }, 'store', /true or false/],
    ['modalities unknown', { modalities: ['video'] }, 'modalities[0]', /one of "text", "audio"/],
    ['audio modality without audio', { modalities: ['audio'] }, 'audio', /is required when modalities/],
    ['audio format unknown', { audio: { voice: 'alloy', format: 'ogg' } }, 'audio.format', /one of/],
    [
      'prediction type unknown',
      { prediction: { type: 'guess', content: 'x' } },
      'prediction.type',
      /"content"/,
    ],
    [
      'prediction content a number',
      { prediction: { type: 'content', content: 1 } },
      'prediction.content',
      /string or a list/,
    ],
    [
      'web search size unknown',
      { web_search_options: { search_context_size: 'huge' } },
      'web_search_options.search_context_size',
      /one of/,
    ],
    [
      `a field nested deeper than ${String(MAX_DEPTH)}`,
      { extra: JSON.parse(`${'['.repeat(MAX_DEPTH)}${']'.repeat(MAX_DEPTH)}`) as unknown },
      'extra',
      /nested deeper than/,
    ],
  ]
  for (const dialect of ALL) {
    it(`${dialect}: every invalid field`, () => {
      for (const [what, change, param, phrase] of everywhere) {
        // An undefined value: the field is left out.
        const body = Object.fromEntries(
          Object.entries(base(change, dialect)).filter(([, v]) => v !== undefined),
        )
        const r = refused(dialect, body)
        expect(r.param, what).toBe(param)
        expect(r.message, what).toMatch(phrase)
      }
    })
  }

  it('a body that is not an object has no param', () => {
    for (const body of [[1, 2], null, 'x', 42]) {
      const r = checkChatRequest(body)
      expect(r.ok).toBe(false)
      if (!r.ok) expect(r.param).toBeNull()
    }
  })

  it('nesting up to the bound passes: JSON Schemas in tools and response formats are deep', () => {
    const depth = MAX_DEPTH - 2
    accepted(
      'forwarded',
      base({ extra: JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) as unknown }, 'forwarded'),
    )
  })
})

describe('what agents refuse, and why', () => {
  it('client tools, with the reason', () => {
    for (const tools of [[tool()], 'x', [{}]]) {
      const r = refused('agent', base({ tools }))
      expect(r.param).toBe('tools')
      expect(r.message).toMatch(/agents run their own tools; client tools are for model\/ targets/)
    }
    accepted('agent', base({ tools: [] }))
    accepted('agent', base({ tools: null }))
    expect(refused('agent', base({ functions: [{ name: 'f' }] })).param).toBe('functions')
  })

  it('n > 1: one choice per request', () => {
    const r = refused('agent', base({ n: 2 }))
    expect(r.param).toBe('n')
    expect(r.message).toMatch(/agents answer with one choice/)
    expect(refused('mapped', base({ n: 2 }, 'mapped')).message).toMatch(/one choice/)
    accepted('forwarded', base({ n: 2 }, 'forwarded'))
  })

  it('structured output and forced tools: the agent decides', () => {
    const r = refused('agent', base({ response_format: { type: 'json_object' } }))
    expect(r.param).toBe('response_format')
    expect(r.message).toMatch(/outputSchema/)
    expect(refused('agent', base({ tool_choice: 'required' })).message).toMatch(
      /agents choose among their own tools/,
    )
  })
})

describe('model/ targets', () => {
  it('tools are checked: name, function, parameters', () => {
    for (const dialect of ['forwarded', 'mapped'] as const) {
      const cases: [unknown, string][] = [
        ['x', 'tools'],
        [[1], 'tools[0]'],
        [[{ type: 'function' }], 'tools[0].function'],
        [[tool('a b')], 'tools[0].function.name'],
        [[tool('')], 'tools[0].function.name'],
        [[tool('x'.repeat(65))], 'tools[0].function.name'],
        [[{ type: 'function', function: { name: 'a', parameters: 'x' } }], 'tools[0].function.parameters'],
        [[{ function: { name: 'a' } }], 'tools[0].type'],
      ]
      for (const [tools, param] of cases) expect(refused(dialect, base({ tools }, dialect)).param).toBe(param)
      const named = refused(
        dialect,
        base(
          { tools: [tool('lookup')], tool_choice: { type: 'function', function: { name: 'other' } } },
          dialect,
        ),
      )
      expect(named.param).toBe('tool_choice.function.name')
      expect(named.message).toMatch(/names no function tool of the request \(lookup\)/)
    }
  })

  it('tool_choice chooses among tools of every type, unknown ones included', () => {
    const mcp = { type: 'mcp', server_label: 'x' }
    accepted('forwarded', base({ tools: [mcp], tool_choice: 'required' }, 'forwarded'))
    const custom = { type: 'custom', custom: { name: 'grep' } }
    accepted(
      'forwarded',
      base({ tools: [custom], tool_choice: { type: 'custom', custom: { name: 'grep' } } }, 'forwarded'),
    )
    // A custom tool is not a function of that name.
    expect(
      refused(
        'forwarded',
        base({ tools: [custom], tool_choice: { type: 'function', function: { name: 'grep' } } }, 'forwarded'),
      ).param,
    ).toBe('tool_choice.function.name')
  })

  it('mapped calls refuse what the mapping cannot carry; forwarded calls pass it on', () => {
    const custom = { tools: [{ type: 'custom', custom: { name: 'grep' } }] }
    expect(refused('mapped', base(custom, 'mapped')).message).toMatch(
      /custom tools need an OpenAI-wire upstream/,
    )
    accepted('forwarded', base(custom, 'forwarded'))
    const video = { messages: user([{ type: 'video_url', video_url: { url: 'https://x' } }]) }
    expect(refused('mapped', base(video, 'mapped')).param).toBe('messages[0].content[0].type')
    accepted('forwarded', base(video, 'forwarded'))
    const fn = { messages: [{ role: 'function', name: 'f', content: 'x' }, ...user()] }
    expect(refused('mapped', base(fn, 'mapped')).message).toMatch(/deprecated: send tool messages/)
    accepted('forwarded', base(fn, 'forwarded'))
    // Known types are checked in full, forwarded or not.
    expect(refused('forwarded', base({ messages: user([{ type: 'image_url' }]) }, 'forwarded')).param).toBe(
      'messages[0].content[0].image_url',
    )
  })

  it('a mapped call becomes the provider request', () => {
    const r = checkMappedRequest({
      model: 'model/x',
      messages: [
        {
          role: 'system',
          content: [
            { type: 'text', text: 'a' },
            { type: 'text', text: 'b' },
          ],
        },
        { role: 'user', content: [{ type: 'text', text: 'q' }] },
        { role: 'assistant', tool_calls: [call('c')] },
        { role: 'tool', tool_call_id: 'c', content: [{ type: 'text', text: 'r' }] },
      ],
      stream: true,
      stream_options: { include_usage: true },
      tools: [{ type: 'function', function: { name: 'lookup', description: 'd' } }],
      response_format: { type: 'json_schema', json_schema: { name: 'a', schema: { type: 'object' } } },
      max_tokens: 10,
      max_completion_tokens: 20,
      temperature: 0.5,
      stop: 'x',
      seed: 3,
    })
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.value.stream).toBe(true)
    expect(r.value.includeUsage).toBe(true)
    expect(r.value.messages).toEqual([
      { role: 'system', content: 'ab' },
      { role: 'user', content: [{ type: 'text', text: 'q' }] },
      { role: 'assistant', content: null, tool_calls: [call('c')] },
      { role: 'tool', tool_call_id: 'c', content: 'r' },
    ])
    expect(r.value.tools).toEqual([
      {
        type: 'function',
        function: { name: 'lookup', description: 'd', parameters: { type: 'object', properties: {} } },
      },
    ])
    expect(r.value.outputSchema).toEqual({ type: 'object' })
    expect(r.value.maxTokens).toBe(20)
    expect(r.value.parameters).toEqual({ temperature: 0.5, stop: 'x' })
  })
})

describe('an agent request', () => {
  it('becomes the runtime conversation, metadata included', () => {
    const r = checkChatRequest({
      model: 'agent/a',
      messages: [{ role: 'developer', content: [{ type: 'text', text: 'x' }] }, ...user()],
      metadata: { __proto__: 'p', agent_name: 'Ada' },
      stream: true,
    })
    expect(r.ok).toBe(true)
    if (!r.ok) return
    expect(r.value.messages[0]).toEqual({ role: 'developer', content: 'x' })
    expect(r.value.stream).toBe(true)
    expect(r.value.includeUsage).toBe(false)
    expect(r.value.metadata.agent_name).toBe('Ada')
  })

  it('prototype-named metadata keys are plain keys', () => {
    const body = JSON.parse(
      '{"model":"agent/a","messages":[{"role":"user","content":"hi"}],"metadata":{"__proto__":"x","constructor":"y"}}',
    ) as Body
    const r = checkChatRequest(body)
    expect(r.ok).toBe(true)
    if (r.ok) expect(Object.hasOwn(r.value.metadata, '__proto__')).toBe(true)
    const bad = JSON.parse(
      '{"model":"agent/a","messages":[{"role":"user","content":"hi"}],"metadata":{"__proto__":1}}',
    ) as Body
    expect(refused('agent', bad).param).toBe('metadata.__proto__')
  })
})
