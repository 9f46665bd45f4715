/**
 * The fuzz suite's requests: every route, and for chat completions a valid body for the target's kind with at
 * most one invalid change (so the error it must cause is known, `param` included) and any number of changes
 * that keep it valid (unknown fields, nulls, reordered or escaped JSON, duplicate keys whose last value is
 * valid). Transport-level damage (truncated JSON, invalid UTF-8, wrong content types and methods) is drawn
 * separately. Each request says what must come back; fuzz.test.ts sends them and checks.
 */
import type { Rng } from './fuzz-random.ts'

/** How a target validates: agents, forwarded to an OpenAI-wire upstream, or mapped by ark to a provider. */
export type Dialect = 'agent' | 'forwarded' | 'mapped'

/** The fuzz gateway's targets: test/fixtures/gateway's agents and fuzz-target.ts's Models. */
interface Target {
  readonly model: string
  readonly dialect: Dialect
  /** What a valid request gets: a completion, or a refusal that comes after validation. */
  readonly outcome: 'ok' | { readonly status: number; readonly code: string }
  /** The agent needs `metadata.agent_name` (a queryParameterRef parameter). */
  readonly needsName?: boolean
}

const NOT_FOUND = { status: 404, code: 'model_not_found' } as const
/** Model targets appear twice: each takes more fields than an agent, so each gets more draws. */
const TARGETS: readonly Target[] = [
  { model: 'agent/support-agent', dialect: 'agent', outcome: 'ok' },
  { model: 'support-agent', dialect: 'agent', outcome: 'ok' },
  { model: 'agent/default/math-agent', dialect: 'agent', outcome: 'ok' },
  { model: 'agent/busy-agent', dialect: 'agent', outcome: 'ok' },
  { model: 'agent/analyzer', dialect: 'agent', outcome: 'ok' },
  { model: 'agent/dynamic-agent', dialect: 'agent', outcome: 'ok', needsName: true },
  { model: 'team/crew', dialect: 'agent', outcome: 'ok' },
  { model: 'agent/nobody', dialect: 'agent', outcome: NOT_FOUND },
  { model: 'model/nothing', dialect: 'agent', outcome: NOT_FOUND },
  { model: 'model/gpt', dialect: 'forwarded', outcome: 'ok' },
  { model: 'model/azure-gpt', dialect: 'forwarded', outcome: 'ok' },
  { model: 'model/gpt', dialect: 'forwarded', outcome: 'ok' },
  { model: 'model/default', dialect: 'mapped', outcome: 'ok' },
  { model: 'model/claude', dialect: 'mapped', outcome: 'ok' },
  { model: 'model/claude', dialect: 'mapped', outcome: 'ok' },
]

/** What the response must be. */
export type Expectation =
  /** 200 with the route's success shape (a completion, a stream, a model list...). */
  | { readonly kind: 'ok' }
  /** This status; `param` and `code` too when given (null included). */
  | {
      readonly kind: 'error'
      readonly status: number
      readonly param?: string | null
      readonly code?: string
    }
  /** Some 4xx: the input is wrong in more than one way, or how it is reported is not pinned down. */
  | { readonly kind: 'client-error' }
  /** Anything but a 5xx. */
  | { readonly kind: 'any' }

export interface FuzzRequest {
  readonly index: number
  readonly method: string
  /** Sent as is on the request line: not normalized, not re-encoded. */
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: Uint8Array
  /** Sent with Transfer-Encoding: chunked instead of a Content-Length. */
  readonly chunked: boolean
  /** A stream of server-sent events is asked for (a 200 must be one). */
  readonly stream: boolean
  readonly expect: Expectation
  /** What was done to the request, for the failure report. */
  readonly notes: readonly string[]
  /** Which kind of request this is, for the run's tally: the chat dialect, or the route and method. */
  readonly label: string
}

// ---------------------------------------------------------------------------------------------------------
// JSON text the generator controls: raw tokens (1e999, -0), duplicate keys, and prototype keys.

/** A token written into the JSON text as is. */
export class Raw {
  readonly text: string
  constructor(text: string) {
    this.text = text
  }
}
/** An object written key by key: keys may repeat (the last one wins in JSON.parse). */
export class Pairs {
  readonly entries: readonly (readonly [string, unknown])[]
  constructor(entries: readonly (readonly [string, unknown])[]) {
    this.entries = entries
  }
}

export function encodeJson(v: unknown, pretty = false): string {
  if (v instanceof Raw) return v.text
  if (v instanceof Pairs)
    return `{${v.entries.map(([k, x]) => `${JSON.stringify(k)}:${encodeJson(x, pretty)}`).join(',')}}`
  if (Array.isArray(v))
    return `[${v.map((x) => (x === undefined ? 'null' : encodeJson(x, pretty))).join(',')}]`
  if (typeof v === 'object' && v !== null) {
    const sep = pretty ? ',\n  ' : ','
    return `{${Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${JSON.stringify(k)}${pretty ? ': ' : ':'}${encodeJson(x, pretty)}`)
      .join(sep)}}`
  }
  if (typeof v === 'string') return JSON.stringify(v)
  return v === undefined ? 'null' : JSON.stringify(v)
}

/** A Raw nesting of `depth` arrays. */
const nested = (depth: number) => new Raw(`${'['.repeat(depth)}${']'.repeat(depth)}`)

// ---------------------------------------------------------------------------------------------------------
// Values

const STRINGS = [
  '',
  ' ',
  'hi',
  'NaN',
  'Infinity',
  '-1',
  '1e999',
  'null',
  'true',
  '__proto__',
  'constructor',
  'toString',
  '\u0000',
  '\ud800',
  'a\udfffb',
  '\u202eevil',
  'zero\u200bwidth',
  '𝕳𝖊𝖑𝖑𝖔 👩🏽‍💻',
  'ı İ ß ǅ',
  '{{.agent_name}}',
  '{{ .mode }}',
  '%zz',
  '../../etc/passwd',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '\r\n\t',
  'data: [DONE]\n\n',
  'calculator {"expression": "2^10"}',
]

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.5,
  2.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 63,
  1e20,
  3.14159,
  128,
  129,
  16,
  17,
  20,
  21,
  64,
  65,
  100,
  101,
  -100,
  -101,
]

const RAW_NUMBERS = [
  '1e999',
  '-1e999',
  '-0',
  '1E2',
  '0.0000000001',
  '100000000000000000000000000000000',
  '1.0',
  '-0.0',
]

function text(r: Rng): string {
  if (r.chance(0.6))
    return r.pick([
      'hello',
      'How do I reset my password?',
      'Bonjour, ça va ?',
      'what is 2+2',
      'summarise this',
    ])
  return r.pick(STRINGS.filter((s) => s.trim() !== '')) + (r.chance(0.5) ? ' tail' : '')
}

/** Any JSON value, nested up to `depth`. */
export function anyValue(r: Rng, depth = 3): unknown {
  const k = r.int(0, depth > 0 ? 9 : 6)
  switch (k) {
    case 0:
      return null
    case 1:
      return r.chance(0.5)
    case 2:
      return r.pick(NUMBERS)
    case 3:
      return new Raw(r.pick(RAW_NUMBERS))
    case 4:
    case 5:
      return r.pick(STRINGS)
    case 6:
      return r.int(-5, 5)
    case 7:
      return Array.from({ length: r.int(0, 3) }, () => anyValue(r, depth - 1))
    case 8:
      return new Pairs(
        Array.from(
          { length: r.int(0, 3) },
          () => [r.pick([...STRINGS, 'type', 'role', 'text']), anyValue(r, depth - 1)] as const,
        ),
      )
    default:
      return { type: r.pick(['text', 'function', 'object', 'x']), value: anyValue(r, depth - 1) }
  }
}

/** A value of any JSON type but `type` ('string', 'number', ...), for "wrong type" mutations. */
function wrongType(r: Rng, not: readonly string[]): unknown {
  const options: [string, () => unknown][] = [
    ['string', () => r.pick(STRINGS)],
    ['number', () => r.pick(NUMBERS)],
    ['integer', () => r.int(-3, 3)],
    ['boolean', () => r.chance(0.5)],
    ['array', () => [anyValue(r, 1)]],
    ['object', () => ({ x: anyValue(r, 1) })],
  ]
  const allowed = options.filter(([t]) => !not.includes(t) && !(t === 'integer' && not.includes('number')))
  return r.pick(allowed)[1]()
}

// ---------------------------------------------------------------------------------------------------------
// A valid body per dialect

type Body = Record<string, unknown>
type Message = Record<string, unknown>

interface Ctx {
  readonly dialect: Dialect
  readonly body: Body
}

function textParts(r: Rng): unknown[] {
  return Array.from({ length: r.int(1, 3) }, () => ({ type: 'text', text: text(r) }))
}

function userContent(r: Rng, dialect: Dialect): unknown {
  if (r.chance(0.7)) return text(r)
  const parts: unknown[] = [{ type: 'text', text: text(r) }]
  if (r.chance(0.3)) {
    parts.push({
      type: 'image_url',
      image_url: {
        url: 'https://example.com/cat.png',
        ...(r.chance(0.5) ? { detail: r.pick(['auto', 'low', 'high']) } : {}),
      },
    })
  }
  // Audio and files reach the agent runtime's providers as given; the mock and Anthropic mapping drop them.
  if (r.chance(0.15) && dialect !== 'mapped')
    parts.push({ type: 'input_audio', input_audio: { data: 'UklGRg==', format: r.pick(['wav', 'mp3']) } })
  if (r.chance(0.15) && dialect !== 'mapped') parts.push({ type: 'file', file: { file_id: 'file-abc123' } })
  return parts
}

/** A conversation that ends with a user message; tool exchanges are answered, as OpenAI requires. */
function conversation(r: Rng, dialect: Dialect): Message[] {
  const out: Message[] = []
  if (r.chance(0.3)) {
    out.push({
      role: r.pick(['system', 'developer']),
      content: r.chance(0.7) ? text(r) : textParts(r),
      ...(r.chance(0.2) ? { name: 'ops' } : {}),
    })
  }
  const turns = r.int(0, 2)
  for (let t = 0; t < turns; t++) {
    out.push({ role: 'user', content: userContent(r, dialect) })
    if (r.chance(0.4)) {
      // From the request's own numbers, so that a replayed request is the same request.
      const ids = Array.from({ length: r.int(1, 2) }, (_, k) => `call_${String(t)}_${String(k)}`)
      out.push({
        role: 'assistant',
        content: r.chance(0.5) ? null : text(r),
        tool_calls: ids.map((id) => ({
          id,
          type: 'function',
          function: { name: 'lookup', arguments: '{"key":"answer"}' },
        })),
      })
      for (const id of ids)
        out.push({
          role: 'tool',
          tool_call_id: id,
          content: r.chance(0.8) ? '42' : [{ type: 'text', text: '42' }],
        })
      out.push({ role: 'assistant', content: 'It is 42.' })
    } else {
      out.push({ role: 'assistant', content: r.chance(0.8) ? text(r) : [{ type: 'text', text: text(r) }] })
    }
  }
  out.push({ role: 'user', content: userContent(r, dialect), ...(r.chance(0.1) ? { name: 'ada_l' } : {}) })
  return out
}

const TOOL = (name: string) => ({
  type: 'function',
  function: {
    name,
    description: 'Looks a fact up.',
    parameters: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] },
  },
})

/** Optional fields with a valid value for the dialect, in an order where later ones may look at earlier ones. */
const VALID: readonly (readonly [string, (r: Rng, c: Ctx) => unknown])[] = [
  ['stream', (r) => r.pick([true, false, null])],
  ['stream_options', (r, c) => (c.body.stream === true ? { include_usage: r.chance(0.5) } : null)],
  [
    'tools',
    (r, c) =>
      c.dialect === 'agent'
        ? r.pick([[], null])
        : [TOOL('lookup'), ...(r.chance(0.3) ? [TOOL('get_time')] : [])],
  ],
  [
    'tool_choice',
    (r, c) =>
      Array.isArray(c.body.tools) && c.body.tools.length > 0
        ? r.pick(['none', 'auto', 'required', { type: 'function', function: { name: 'lookup' } }])
        : r.pick(['none', 'auto']),
  ],
  ['parallel_tool_calls', (r) => r.chance(0.5)],
  ['n', (r, c) => (c.dialect === 'forwarded' ? r.int(1, 128) : 1)],
  // Anthropic takes 0..1 and says so with a 400 of its own: mapped calls stay within it.
  ['temperature', (r, c) => r.pick(c.dialect === 'mapped' ? [0, 0.2, 1, null] : [0, 0.2, 1, 2, null])],
  ['top_p', (r) => r.pick([0, 0.5, 1])],
  ['presence_penalty', (r) => r.pick([-2, 0, 1.5, 2])],
  ['frequency_penalty', (r) => r.pick([-2, -0.5, 0, 2])],
  ['logit_bias', (r) => r.pick([{}, { '50256': -100 }, { '1': 100, '42': 0.5 }])],
  ['logprobs', (r) => r.chance(0.5)],
  ['top_logprobs', (r, c) => (c.body.logprobs === true ? r.int(0, 20) : null)],
  ['max_tokens', (r) => r.pick([1000, 4096, null])],
  ['max_completion_tokens', (r) => r.pick([1000, 8192])],
  ['seed', (r) => r.pick([0, 42, -7, 2 ** 53])],
  ['user', (r) => r.pick(['user-1234', ''])],
  ['stop', (r) => r.pick(['\n\nEND', ['STOP'], ['a', 'b', 'c', 'd'], null])],
  ['metadata', (r) => r.pick([{}, { team: 'support', ticket: 'T-1' }, null])],
  [
    'response_format',
    (r, c) =>
      // Agents answer in their own declared format: only text is theirs to take.
      c.dialect === 'agent'
        ? { type: 'text' }
        : r.pick([
            { type: 'text' },
            { type: 'json_object' },
            {
              type: 'json_schema',
              json_schema: {
                name: 'answer_v2',
                strict: true,
                schema: {
                  type: 'object',
                  properties: { a: { type: 'string' } },
                  required: ['a'],
                  additionalProperties: false,
                },
              },
            },
          ]),
  ],
  ['reasoning_effort', (r) => r.pick(['minimal', 'low', 'medium', 'high'])],
  ['service_tier', (r) => r.pick(['auto', 'default', 'flex', 'priority'])],
  ['store', (r) => r.chance(0.5)],
  ['verbosity', (r) => r.pick(['low', 'medium', 'high'])],
  ['modalities', () => ['text']],
  [
    'prediction',
    (r) => ({ type: 'content', content: r.chance(0.5) ? 'draft' : [{ type: 'text', text: 'draft' }] }),
  ],
  [
    'web_search_options',
    (r) =>
      r.pick([
        {},
        { search_context_size: 'low' },
        { user_location: { type: 'approximate', approximate: { city: 'Paris', country: 'FR' } } },
      ]),
  ],
  ['prompt_cache_key', () => 'cache-1'],
  ['safety_identifier', () => 'hash-abc'],
]

function validBody(r: Rng, target: Target): Body {
  const body: Body = { model: target.model, messages: conversation(r, target.dialect) }
  if (target.needsName) body.metadata = { agent_name: 'Ada' }
  const ctx = { dialect: target.dialect, body }
  for (const [field, value] of VALID) {
    if (field === 'metadata' && target.needsName) continue
    if (r.chance(field === 'stream' ? 0.35 : 0.08)) {
      const v = value(r, ctx)
      if (v !== undefined) body[field] = v
    }
  }
  return body
}

// ---------------------------------------------------------------------------------------------------------
// One invalid change, with the param it must be reported under

interface Bad {
  readonly what: string
  /** Changes the body (a copy); returns the param OpenAI would name, null for the body itself, undefined: any. */
  apply(body: Body, r: Rng, c: Ctx): string | null | undefined
  /** Dialects where the change is in fact valid (n > 1 on forwarded calls...). */
  readonly validFor?: readonly Dialect[]
  /** Drawn only for targets of this dialect. */
  readonly only?: Dialect
}

/** Puts messages just before the body's last one (the user's turn); the index of the first. */
function beforeLast(b: Body, ...inserted: Message[]): number {
  const ms = b.messages as Message[]
  const at = ms.length - 1
  ms.splice(at, 0, ...inserted)
  return at
}

const set = (
  field: string,
  value: (r: Rng, c: Ctx) => unknown,
  what: string,
  validFor?: readonly Dialect[],
): Bad => ({
  what: `${field}: ${what}`,
  apply(body, r, c) {
    body[field] = value(r, c)
    return field
  },
  ...(validFor === undefined ? {} : { validFor }),
})

const lastUser = (body: Body) => {
  const ms = body.messages as Message[]
  return ms.length - 1
}

/** A message-level change at the last user message (always present). */
const onLastUser = (what: string, change: (m: Message, r: Rng) => string): Bad => ({
  what: `messages[last]: ${what}`,
  apply(body, r) {
    const i = lastUser(body)
    const ms = body.messages as Message[]
    const m = { ...ms[i] }
    ms[i] = m
    return `messages[${String(i)}]${change(m, r)}`
  },
})

const BAD: readonly Bad[] = [
  { what: 'model missing', apply: (b) => (delete b.model, 'model') },
  set('model', (r) => wrongType(r, ['string']), 'not a string'),
  set('model', () => '', 'empty'),
  set('model', () => 'x'.repeat(600), 'longer than 512'),
  { what: 'messages missing', apply: (b) => (delete b.messages, 'messages') },
  set('messages', () => [], 'empty'),
  set('messages', (r) => wrongType(r, ['array']), 'not an array'),
  {
    what: 'messages[last] not an object',
    apply(b, r) {
      const ms = b.messages as unknown[]
      ms[ms.length - 1] = wrongType(r, ['object'])
      return `messages[${String(ms.length - 1)}]`
    },
  },
  onLastUser('role missing', (m) => (delete m.role, '.role')),
  onLastUser(
    'role unknown',
    (m, r) => (
      (m.role = r.pick(['robot', 'USER', '', 'constructor', '__proto__', 'toString', 'function '])),
      '.role'
    ),
  ),
  onLastUser('role not a string', (m, r) => ((m.role = wrongType(r, ['string'])), '.role')),
  onLastUser('content missing', (m) => (delete m.content, '.content')),
  onLastUser('content null', (m) => ((m.content = null), '.content')),
  onLastUser('content wrong type', (m, r) => ((m.content = wrongType(r, ['string', 'array'])), '.content')),
  onLastUser('content empty array', (m) => ((m.content = []), '.content')),
  onLastUser(
    'part not an object',
    (m, r) => ((m.content = [{ type: 'text', text: 'a' }, wrongType(r, ['object'])]), '.content[1]'),
  ),
  // Types ark does not know go on to OpenAI-wire upstreams (vLLM's video_url...); the others know them all.
  {
    ...onLastUser(
      'part type unknown',
      (m, r) => (
        (m.content = [{ type: r.pick(['bogus', 'TEXT', 'video_url']), text: 'x' }]),
        '.content[0].type'
      ),
    ),
    validFor: ['forwarded'],
  },
  onLastUser(
    'part type not for users',
    (m, r) => (
      (m.content = [{ type: r.pick(['', 'refusal']), text: 'x', refusal: 'x' }]),
      '.content[0].type'
    ),
  ),
  onLastUser('part type missing', (m) => ((m.content = [{ text: 'x' }]), '.content[0].type')),
  onLastUser('text part without text', (m) => ((m.content = [{ type: 'text' }]), '.content[0].text')),
  onLastUser(
    'text part text not a string',
    (m, r) => ((m.content = [{ type: 'text', text: wrongType(r, ['string']) }]), '.content[0].text'),
  ),
  onLastUser(
    'image part without image_url',
    (m) => ((m.content = [{ type: 'image_url' }]), '.content[0].image_url'),
  ),
  onLastUser(
    'image url not a string',
    (m, r) => (
      (m.content = [{ type: 'image_url', image_url: { url: wrongType(r, ['string']) } }]),
      '.content[0].image_url.url'
    ),
  ),
  onLastUser(
    'image detail unknown',
    (m) => (
      (m.content = [{ type: 'image_url', image_url: { url: 'https://x/y.png', detail: 'ultra' } }]),
      '.content[0].image_url.detail'
    ),
  ),
  onLastUser(
    'audio format unknown',
    (m) => (
      (m.content = [{ type: 'input_audio', input_audio: { data: 'AA==', format: 'ogg' } }]),
      '.content[0].input_audio.format'
    ),
  ),
  onLastUser('name not a string', (m, r) => ((m.name = wrongType(r, ['string'])), '.name')),
  {
    what: 'system message with an image part',
    apply(b) {
      ;(b.messages as Message[]).unshift({
        role: 'system',
        content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }],
      })
      return 'messages[0].content[0].type'
    },
  },
  {
    what: 'assistant message with neither content nor tool_calls',
    apply(b, r) {
      const at = beforeLast(
        b,
        r.pick([
          { role: 'assistant' },
          { role: 'assistant', content: null },
          { role: 'assistant', content: null, tool_calls: [] },
          { role: 'assistant', content: '' },
          { role: 'assistant', content: [] },
        ]),
      )
      return `messages[${String(at)}].content`
    },
  },
  {
    what: 'assistant part type image_url',
    apply(b) {
      const at = beforeLast(b, {
        role: 'assistant',
        content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }],
      })
      return `messages[${String(at)}].content[0].type`
    },
  },
  {
    what: 'tool call without id',
    apply(b) {
      const at = beforeLast(b, {
        role: 'assistant',
        content: null,
        tool_calls: [{ type: 'function', function: { name: 'lookup', arguments: '{}' } }],
      })
      return `messages[${String(at)}].tool_calls[0].id`
    },
  },
  {
    what: 'tool call arguments not a string',
    apply(b, r) {
      const at = beforeLast(
        b,
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'lookup', arguments: wrongType(r, ['string']) } },
          ],
        },
        { role: 'tool', tool_call_id: 'c1', content: 'x' },
      )
      return `messages[${String(at)}].tool_calls[0].function.arguments`
    },
  },
  {
    what: 'tool message without tool_call_id',
    apply(b) {
      const at = beforeLast(
        b,
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{}' } }],
        },
        { role: 'tool', content: 'x' },
      )
      return `messages[${String(at + 1)}].tool_call_id`
    },
  },
  {
    what: 'tool message answering no call',
    apply(b) {
      const at = beforeLast(b, { role: 'tool', tool_call_id: 'nobody-asked', content: 'x' })
      return `messages[${String(at)}].tool_call_id`
    },
  },
  {
    what: 'tool call left unanswered',
    apply(b) {
      const at = beforeLast(b, {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'c9', type: 'function', function: { name: 'lookup', arguments: '{}' } }],
      })
      return `messages[${String(at)}].tool_calls`
    },
  },
  set('stream', (r) => wrongType(r, ['boolean']), 'not a boolean'),
  set('stream_options', (r) => wrongType(r, ['object']), 'not an object'),
  {
    what: 'stream_options without stream',
    apply(b) {
      b.stream = false
      b.stream_options = { include_usage: true }
      return 'stream_options'
    },
  },
  {
    what: 'stream_options.include_usage not a boolean',
    apply(b, r) {
      b.stream = true
      b.stream_options = { include_usage: wrongType(r, ['boolean']) }
      return 'stream_options.include_usage'
    },
  },
  set('n', (r) => r.pick([0, -1, 129, 1.5, 1e308, new Raw('1e999')]), 'out of range'),
  set('n', (r) => wrongType(r, ['number']), 'not a number'),
  set('n', (r) => r.int(2, 128), 'more than one choice', ['forwarded']),
  set(
    'temperature',
    (r) => r.pick([-0.01, 2.01, 1e308, -1e308, new Raw('1e999'), new Raw('-1e999')]),
    'out of range',
  ),
  set('temperature', (r) => wrongType(r, ['number']), 'not a number'),
  set('top_p', (r) => r.pick([-0.1, 1.01, 5]), 'out of range'),
  set('presence_penalty', (r) => r.pick([-2.01, 2.5, 100]), 'out of range'),
  set('frequency_penalty', (r) => r.pick([-3, 2.01]), 'out of range'),
  set('frequency_penalty', (r) => wrongType(r, ['number']), 'not a number'),
  set('max_tokens', (r) => r.pick([0, -1, 1.5]), 'not a positive integer'),
  set('max_tokens', (r) => wrongType(r, ['number']), 'not a number'),
  set('max_completion_tokens', (r) => r.pick([0, -5, 2.5]), 'not a positive integer'),
  set('seed', (r) => r.pick([1.5, 1e30, new Raw('1e999')]), 'not an int64'),
  set('seed', (r) => wrongType(r, ['number']), 'not a number'),
  set('user', (r) => wrongType(r, ['string']), 'not a string'),
  set('logprobs', (r) => wrongType(r, ['boolean']), 'not a boolean'),
  {
    what: 'top_logprobs out of range',
    apply(b, r) {
      b.logprobs = true
      b.top_logprobs = r.pick([-1, 21, 1.5])
      return 'top_logprobs'
    },
  },
  {
    what: 'top_logprobs without logprobs',
    apply(b, r) {
      b.logprobs = r.pick([false, undefined, null])
      b.top_logprobs = 3
      return 'top_logprobs'
    },
  },
  set('logit_bias', (r) => wrongType(r, ['object']), 'not an object'),
  {
    what: 'logit_bias value out of range',
    apply: (b, r) => ((b.logit_bias = { '50256': r.pick([-101, 100.5, 1e9]) }), 'logit_bias'),
  },
  {
    what: 'logit_bias value not a number',
    apply: (b, r) => ((b.logit_bias = { '50256': wrongType(r, ['number']) }), 'logit_bias'),
  },
  {
    what: 'logit_bias key not a token id',
    apply: (b, r) => ((b.logit_bias = { [r.pick(['abc', '-1', '1.5', ''])]: 1 }), 'logit_bias'),
  },
  set('parallel_tool_calls', (r) => wrongType(r, ['boolean']), 'not a boolean'),
  set('stop', (r) => r.pick([42, true, { x: 1 }]), 'not a string or list'),
  set('stop', () => ['a', 'b', 'c', 'd', 'e'], 'five sequences'),
  {
    what: 'stop item not a string',
    apply: (b, r) => ((b.stop = ['ok', wrongType(r, ['string'])]), 'stop[1]'),
  },
  set('metadata', (r) => wrongType(r, ['object']), 'not an object'),
  {
    what: 'metadata value not a string',
    apply: (b, r) => (
      (b.metadata = { ...(b.metadata as object), k: wrongType(r, ['string']) }),
      'metadata.k'
    ),
  },
  {
    what: 'metadata value too long',
    apply: (b) => ((b.metadata = { ...(b.metadata as object), k: 'v'.repeat(513) }), 'metadata.k'),
  },
  {
    what: 'metadata key too long',
    apply: (b) => ((b.metadata = { ...(b.metadata as object), ['k'.repeat(65)]: 'v' }), 'metadata'),
  },
  {
    what: 'metadata with 17 pairs',
    apply: (b) => (
      (b.metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${String(i)}`, 'v']))),
      'metadata'
    ),
  },
  set('response_format', (r) => wrongType(r, ['object']), 'not an object'),
  {
    what: 'structured output asked of the target',
    apply: (b, r) => (
      (b.response_format = r.pick([
        { type: 'json_object' },
        { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object' } } },
      ])),
      'response_format'
    ),
    validFor: ['forwarded', 'mapped'],
  },
  {
    what: 'response_format type unknown',
    apply: (b) => ((b.response_format = { type: 'xml' }), 'response_format.type'),
    validFor: ['forwarded'],
  },
  {
    what: 'response_format type missing',
    apply: (b) => ((b.response_format = { json_schema: { name: 'x' } }), 'response_format.type'),
  },
  {
    what: 'json_schema missing',
    apply: (b) => ((b.response_format = { type: 'json_schema' }), 'response_format.json_schema'),
  },
  {
    what: 'json_schema name invalid',
    apply: (b, r) => (
      (b.response_format = {
        type: 'json_schema',
        json_schema: { name: r.pick(['has space', '', 'x'.repeat(65), 'dots.no']), schema: {} },
      }),
      'response_format.json_schema.name'
    ),
  },
  {
    what: 'json_schema schema not an object',
    apply: (b, r) => (
      (b.response_format = {
        type: 'json_schema',
        json_schema: { name: 'ok', schema: wrongType(r, ['object']) },
      }),
      'response_format.json_schema.schema'
    ),
  },
  {
    what: 'json_schema strict not a boolean',
    apply: (b) => (
      (b.response_format = { type: 'json_schema', json_schema: { name: 'ok', schema: {}, strict: 'yes' } }),
      'response_format.json_schema.strict'
    ),
  },
  set('tool_choice', (r) => r.pick(['sometimes', 'AUTO', '', 42, true, []]), 'unknown'),
  {
    what: 'tool_choice function without function',
    apply: (b) => ((b.tool_choice = { type: 'function' }), 'tool_choice.function'),
  },
  {
    what: 'tool_choice required without tools',
    apply: (b) => (delete b.tools, (b.tool_choice = 'required'), 'tool_choice'),
  },
  {
    what: 'tool_choice names a tool not offered',
    apply(b, r, c) {
      if (c.dialect !== 'agent') b.tools = [TOOL('lookup')]
      b.tool_choice = { type: 'function', function: { name: r.pick(['missing_tool', 'get-weather']) } }
      return c.dialect === 'agent' ? 'tool_choice' : 'tool_choice.function.name'
    },
  },
  {
    what: 'client tools',
    apply: (b) => ((b.tools = [TOOL('lookup')]), 'tools'),
    validFor: ['forwarded', 'mapped'],
  },
  set('tools', (r) => wrongType(r, ['array']), 'not an array'),
  {
    what: 'tool not an object',
    apply: (b, r, c) => (
      (b.tools = [wrongType(r, ['object'])]),
      c.dialect === 'agent' ? 'tools' : 'tools[0]'
    ),
  },
  {
    what: 'tool without function',
    apply: (b, r, c) => (
      (b.tools = [{ type: 'function' }]),
      c.dialect === 'agent' ? 'tools' : 'tools[0].function'
    ),
  },
  {
    what: 'tool name invalid',
    apply: (b, r, c) => (
      (b.tools = [TOOL(r.pick(['has space', '', 'x'.repeat(65), 'dot.name']))]),
      c.dialect === 'agent' ? 'tools' : 'tools[0].function.name'
    ),
  },
  {
    what: 'tool parameters not an object',
    apply(b, r, c) {
      const t = TOOL('lookup')
      b.tools = [{ ...t, function: { ...t.function, parameters: wrongType(r, ['object']) } }]
      return c.dialect === 'agent' ? 'tools' : 'tools[0].function.parameters'
    },
  },
  set('reasoning_effort', (r) => r.pick(['extreme', '', 42]), 'unknown'),
  set('service_tier', (r) => r.pick(['gold', 1]), 'unknown'),
  set('verbosity', () => 'chatty', 'unknown'),
  set('store', (r) => wrongType(r, ['boolean']), 'not a boolean'),
  { what: 'modalities unknown', apply: (b) => ((b.modalities = ['text', 'video']), 'modalities[1]') },
  {
    what: 'modalities audio without audio',
    apply: (b) => (delete b.audio, (b.modalities = ['text', 'audio']), 'audio'),
  },
  {
    what: 'audio format unknown',
    apply: (b) => ((b.audio = { voice: 'alloy', format: 'ogg' }), 'audio.format'),
  },
  {
    what: 'prediction type unknown',
    apply: (b) => ((b.prediction = { type: 'guess', content: 'x' }), 'prediction.type'),
  },
  {
    what: 'prediction content wrong',
    apply: (b, r) => (
      (b.prediction = { type: 'content', content: wrongType(r, ['string', 'array']) }),
      'prediction.content'
    ),
  },
  {
    what: 'web_search_options size unknown',
    apply: (b) => (
      (b.web_search_options = { search_context_size: 'huge' }),
      'web_search_options.search_context_size'
    ),
  },
  {
    what: 'dynamic agent without its parameter',
    only: 'agent',
    apply(b) {
      b.model = 'agent/dynamic-agent'
      delete b.metadata
      return 'metadata.agent_name'
    },
  },
]

/** Changes that keep a valid body valid. */
const NEUTRAL: readonly (readonly [string, (b: Body, r: Rng, c: Ctx) => void])[] = [
  [
    'unknown top-level field',
    (b, r) =>
      (b[r.pick(['frobnicate', 'x_custom', 'extra_body', 'toString', 'hasOwnProperty', 'valueOf'])] =
        anyValue(r)),
  ],
  [
    'unknown field in a message',
    (b, r) => {
      const first: unknown = Array.isArray(b.messages) ? b.messages[0] : undefined
      if (typeof first === 'object' && first !== null && !Array.isArray(first))
        (first as Message)[r.pick(['weight', 'x', 'annotations'])] = anyValue(r, 2)
    },
  ],
  [
    'an optional field null where it was absent',
    (b, r) => {
      const field = r.pick([
        'temperature',
        'top_p',
        'n',
        'stop',
        'seed',
        'max_tokens',
        'tool_choice',
        'response_format',
        'metadata',
        'logprobs',
        'user',
      ])
      if (!(field in b)) b[field] = null
    },
  ],
  [
    'metadata with prototype-named keys',
    (b) => {
      if (b.metadata !== undefined || b.model === 'agent/dynamic-agent') return
      b.metadata = new Pairs([
        ['__proto__', 'x'],
        ['constructor', 'y'],
        ['hasOwnProperty', 'z'],
      ])
    },
  ],
  ['prototype key at the top', (b, r) => (b.__ark_proto__ = anyValue(r, 1))],
  ['moderately deep unknown field', (b, r) => (b.nested = nested(r.int(2, 40)))],
]

// ---------------------------------------------------------------------------------------------------------
// Chat requests

const JSON_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'application/vnd.api+json',
  'application/merge-patch+json',
]
const WRONG_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/jsonx',
  'json',
  'text/json',
  '',
]

function finish(
  index: number,
  r: Rng,
  bodyText: string | Uint8Array,
  expect: Expectation,
  notes: string[],
  stream: boolean,
  contentType: string | null = r.pick(JSON_TYPES),
): FuzzRequest {
  const bytes = typeof bodyText === 'string' ? new TextEncoder().encode(bodyText) : bodyText
  const headers: Record<string, string> = {}
  if (contentType !== null) headers['content-type'] = contentType
  if (r.chance(0.2)) headers.authorization = r.pick(['Bearer sk-anything', 'Bearer ', 'Basic Zm9vOmJhcg=='])
  if (r.chance(0.1)) headers.accept = r.pick(['text/event-stream', '*/*', 'application/xml'])
  return {
    index,
    method: 'POST',
    path: r.chance(0.1) ? '/v1/chat/completions?stream=true&x=%zz' : '/v1/chat/completions',
    headers,
    body: bytes,
    chunked: r.chance(0.1),
    stream,
    expect,
    notes,
    label: '',
  }
}

function chatRequest(index: number, r: Rng): FuzzRequest {
  const target = r.pick(TARGETS)
  return { ...chatBody(index, r, target), label: `POST chat ${target.dialect}` }
}

function chatBody(index: number, r: Rng, target: Target): FuzzRequest {
  const body = validBody(r, target)
  const ctx = { dialect: target.dialect, body }
  const notes = [`target ${target.model} (${target.dialect})`]

  // Transport damage: the body is not a JSON object at all.
  if (r.chance(0.08)) {
    const full = encodeJson(body)
    const kind = r.int(0, 8)
    switch (kind) {
      case 0: {
        const cut = r.int(0, full.length - 1)
        notes.push(`truncated at ${String(cut)}`)
        return finish(
          index,
          r,
          full.slice(0, cut),
          { kind: 'error', status: 400, code: 'invalid_json' },
          notes,
          false,
        )
      }
      case 1: {
        const bytes = new TextEncoder().encode(full)
        const at = full.indexOf('"content"') + 12
        bytes[Math.min(at, bytes.length - 2)] = r.pick([0xff, 0xfe, 0xc0, 0xc1, 0xf5])
        // Bytes that appear nowhere in UTF-8, wherever they land.
        notes.push('invalid UTF-8 byte')
        return finish(index, r, bytes, { kind: 'error', status: 400, code: 'invalid_encoding' }, notes, false)
      }
      case 2: {
        const type = r.pick(WRONG_TYPES)
        notes.push(`content-type ${JSON.stringify(type)}`)
        return finish(
          index,
          r,
          full,
          type === '' ? { kind: 'any' } : { kind: 'error', status: 415, code: 'unsupported_media_type' },
          notes,
          false,
          type,
        )
      }
      case 3:
        notes.push('empty body')
        return finish(
          index,
          r,
          r.pick(['', '   ', '\n']),
          { kind: 'error', status: 400, code: 'invalid_json' },
          notes,
          false,
        )
      case 4: {
        const v = r.pick(['null', '[]', '[1,2]', '"text"', '42', 'true', '{}'])
        notes.push(`body ${v}`)
        return finish(index, r, v, { kind: 'error', status: 400 }, notes, false)
      }
      case 5:
        notes.push('a body nested 100,000 deep')
        return finish(
          index,
          r,
          `{"model":"${target.model}","messages":[{"role":"user","content":"hi"}],"x":${nested(100_000).text}}`,
          { kind: 'client-error' },
          notes,
          false,
        )
      case 6:
        // Accepted as JSON once, refused (415) since browsers may send such bodies cross-site: either is fine.
        notes.push('no content-type')
        return finish(index, r, full, { kind: 'any' }, notes, false, null)
      case 7:
        notes.push('body over the limit')
        return finish(
          index,
          r,
          encodeJson({ ...body, pad: 'x'.repeat(2 * 1024 * 1024 + 10) }),
          { kind: 'error', status: 413, code: 'request_too_large' },
          notes,
          false,
        )
      default:
        notes.push('garbage')
        return finish(
          index,
          r,
          r.pick(['{"model":', '{,}', "{'model':'x'}", '{"a":1}}', '\u0000', 'NaN', '{"model":"x",}']),
          { kind: 'error', status: 400, code: 'invalid_json' },
          notes,
          false,
        )
    }
  }

  let expect: Expectation =
    target.outcome === 'ok'
      ? { kind: 'ok' }
      : { kind: 'error', status: target.outcome.status, code: target.outcome.code }
  if (r.chance(0.6)) {
    const bad = r.pick(BAD.filter((b) => b.only === undefined || b.only === target.dialect))
    const param = bad.apply(body, r, ctx)
    notes.push(`invalid: ${bad.what}`)
    const stillValid = bad.validFor?.includes(target.dialect) === true
    if (bad.what === 'dynamic agent without its parameter') {
      notes[0] = 'target agent/dynamic-agent (agent)'
      expect = { kind: 'error', status: 400, param }
    } else if (!stillValid) {
      // A model that names no Model goes the agent way, whose checks look at model first: still its param.
      expect = param === undefined ? { kind: 'client-error' } : { kind: 'error', status: 400, param }
    }
  }
  const neutral = r.int(0, 2)
  for (let i = 0; i < neutral; i++) {
    const [what, change] = r.pick(NEUTRAL)
    change(body, r, ctx)
    notes.push(`neutral: ${what}`)
  }
  // OpenAI's JSON mode wants the word JSON in the conversation; the fake upstream refuses it otherwise, as
  // the API does, and a forwarded request gets that 400 back.
  if (expect.kind === 'ok' && target.dialect === 'forwarded' && jsonModeWithoutJson(body))
    expect = { kind: 'client-error' }
  // Giant strings within the body limit, rarely: they cost time on every hop.
  if (r.chance(0.003)) {
    body.padding = 'p'.repeat(r.int(100_000, 1_500_000))
    notes.push('1 MB padding')
  }
  let textBody = encodeJson(body, r.chance(0.1))
  // A duplicate key before the real one: JSON.parse keeps the last, so the body is what was checked above.
  if ('model' in body && 'messages' in body && r.chance(0.1)) {
    textBody = textBody.replace(
      /^\{/,
      `{"model":${encodeJson(anyValue(r, 1))},"messages":${encodeJson(anyValue(r, 1))},`,
    )
    notes.push('neutral: duplicate keys, first ones wrong')
  }
  // The same text with every non-ASCII character escaped.
  if ('model' in body && 'messages' in body && r.chance(0.1)) {
    textBody = textBody.replace(
      /[\u007f-\uffff]/g,
      (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
    )
    notes.push('neutral: \\u escapes')
  }
  const stream = body.stream === true && expect.kind === 'ok'
  return finish(index, r, textBody, expect, notes, stream)
}

// ---------------------------------------------------------------------------------------------------------
// Other routes

/** Ids that GET /v1/models lists, spelled the way a client would encode them. */
const LISTED = [
  'agent/support-agent',
  'agent/math-agent',
  'team/crew',
  'model/default',
  'model/gpt',
  'model/claude',
]

const HOSTILE_IDS: readonly (readonly [string, Expectation])[] = [
  ['%zz', { kind: 'error', status: 400, param: 'model' }],
  ['%', { kind: 'error', status: 400, param: 'model' }],
  ['agent%2', { kind: 'error', status: 400, param: 'model' }],
  ['%E0%A4%A', { kind: 'error', status: 400, param: 'model' }],
  ['%C0%AF', { kind: 'error', status: 400, param: 'model' }],
  ['%FF', { kind: 'error', status: 400, param: 'model' }],
  ['%ED%A0%80', { kind: 'error', status: 400, param: 'model' }],
  ['agent%2Fsupport-agent', { kind: 'any' }],
  ['agent%252Fsupport-agent', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['agent/..%2F..%2Fhealthz', { kind: 'any' }],
  ['%2e%2e/%2e%2e/metrics', { kind: 'any' }],
  ['agent/./support-agent', { kind: 'any' }],
  ['agent/../model/default', { kind: 'any' }],
  ['..', { kind: 'any' }],
  ['.', { kind: 'any' }],
  ['%00', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['agent/support-agent%00', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['__proto__', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['constructor', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['agent/__proto__', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['%F0%9F%91%A9%F0%9F%8F%BD', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['support-agent', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['agent/nobody', { kind: 'error', status: 404, code: 'model_not_found' }],
  ['agent/support-agent/', { kind: 'any' }],
  ['agent//support-agent', { kind: 'any' }],
  ['', { kind: 'any' }],
]

const ROUTES = [
  '/v1/chat/completions',
  '/v1/models',
  '/v1/models/agent/support-agent',
  '/metrics',
  '/healthz',
  '/readyz',
]
const ALLOWED: Record<string, string> = {
  '/v1/chat/completions': 'POST',
  '/v1/models': 'GET',
  '/v1/models/agent/support-agent': 'GET',
  '/metrics': 'GET',
  '/healthz': 'GET',
  '/readyz': 'GET',
}
/** Methods the HTTP parsers of both runtimes pass to the app (an unknown token is refused before it). */
const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'MKCOL',
  'PURGE',
  'SEARCH',
  'REPORT',
  'LOCK',
]
const UNKNOWN_PATHS = [
  '/',
  '/v1',
  '/v1/',
  '/v1/completions',
  '/v1/embeddings',
  '/v1/chat/completions/',
  '/v1/chat/completions/extra',
  '/v1/chat',
  '/v2/chat/completions',
  '//v1/models',
  '/V1/MODELS',
  '/%zz',
  '/v1/%zz/completions',
  '/metrics/%zz',
  '/healthz/x',
  '/v1/chat%2Fcompletions',
  '/%2e%2e/%2e%2e/etc/passwd',
  '/favicon.ico',
  '/.well-known/agent.json',
  `/${'a'.repeat(4000)}`,
  '/v1/models?limit=%zz',
  '/\u00e9'.replace('\u00e9', '%C3%A9'),
]

function otherRequest(index: number, r: Rng): FuzzRequest {
  const notes: string[] = []
  const base = {
    index,
    headers: {} as Record<string, string>,
    chunked: false,
    stream: false,
    notes,
    label: '',
  }
  const k = r.int(0, 9)
  if (k <= 2) {
    // GET /v1/models/<id>: listed, hostile, or long.
    if (r.chance(0.3)) {
      const id = r.pick(LISTED)
      const spelled = r.chance(0.5) ? id : id.replace('/', '%2F')
      return {
        ...base,
        method: 'GET',
        path: `/v1/models/${spelled}`,
        expect: { kind: 'ok' },
        label: 'GET model',
      }
    }
    if (r.chance(0.1))
      return {
        ...base,
        method: 'GET',
        path: `/v1/models/${'x'.repeat(r.int(300, 6000))}`,
        expect: { kind: 'error', status: 404, code: 'model_not_found' },
        label: 'GET model',
      }
    const [id, expect] = r.pick(HOSTILE_IDS)
    notes.push(`hostile id ${JSON.stringify(id)}`)
    return {
      ...base,
      method: 'GET',
      path: `/v1/models/${id}${r.chance(0.1) ? '?q=%zz' : ''}`,
      expect,
      label: 'GET hostile model id',
    }
  }
  if (k === 3)
    return {
      ...base,
      method: 'GET',
      path: r.pick(['/v1/models', '/v1/models?limit=2', '/metrics', '/healthz', '/readyz']),
      expect: { kind: 'ok' },
      label: 'GET route',
    }
  if (k === 4) {
    const path = r.pick(ROUTES)
    return {
      ...base,
      method: 'HEAD',
      path,
      expect: path === '/v1/chat/completions' ? { kind: 'error', status: 405 } : { kind: 'ok' },
      label: 'HEAD route',
    }
  }
  if (k <= 6) {
    const path = r.pick(ROUTES)
    const method = r.pick(METHODS.filter((m) => m !== ALLOWED[path] && m !== 'HEAD'))
    notes.push('wrong method')
    const body = r.chance(0.5) ? new TextEncoder().encode('{"model":"agent/support-agent"}') : undefined
    return {
      ...base,
      method,
      path,
      ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
      expect: { kind: 'error', status: 405, code: 'method_not_allowed' },
      label: 'wrong method',
    }
  }
  const path = r.pick(UNKNOWN_PATHS)
  const method = r.pick(METHODS.filter((m) => m !== 'HEAD'))
  notes.push('unknown route')
  return { ...base, method, path, expect: { kind: 'any' }, label: 'unknown route' }
}

/** Request `index` of the run: chat completions three times out of four, the other routes otherwise. */
export function fuzzRequest(index: number, r: Rng): FuzzRequest {
  return r.chance(0.75) ? chatRequest(index, r) : otherRequest(index, r)
}

/** A body in JSON mode (`response_format: json_object`) whose messages never say "json". */
function jsonModeWithoutJson(body: Record<string, unknown>): boolean {
  const format = body.response_format
  if (typeof format !== 'object' || format === null || (format as { type?: unknown }).type !== 'json_object')
    return false
  return !JSON.stringify(body.messages ?? null)
    .toLowerCase()
    .includes('json')
}
