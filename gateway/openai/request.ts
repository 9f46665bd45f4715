/**
 * The chat completions request, checked before anything else happens the way OpenAI's Chat Completions API
 * checks it, for agents and `model/` targets alike: an invalid field is a 400 whose `param` names it
 * (`messages[0].content`, `response_format.json_schema.name`) and whose message says what to change, before
 * a task is queued or a byte goes upstream.
 *
 * Three dialects differ only where the target does:
 * - agent: the agent runs its own tools and answers once, in its own format: client tools, n > 1 and
 *   structured response_format are refused with the reason.
 * - forwarded (`model/` on an OpenAI-wire upstream): the body goes upstream as is. Parts, tools, tool calls,
 *   tool_choice and response_format of a type ark does not know go on for the upstream to judge
 *   (OpenAI-compatible servers add their own, such as vLLM's `video_url`); known types are checked in full.
 * - mapped (`model/` on a provider ark translates to, Anthropic or the mock): only what the mapping carries.
 *
 * Everywhere, unknown top-level fields are accepted and ignored (or forwarded), as OpenAI-compatible servers
 * do, so that clients sending newer options keep working. Validators are compiled once, at import.
 */
import { Compile } from 'typebox/compile'
import Type from 'typebox'
import type { TSchema } from 'typebox'
import type { TypeBoxError } from '../../controller/api/index.ts'
import { describeSchemaErrors } from '../../controller/api/index.ts'
import type { JsonSchema } from '../../controller/api/index.ts'
import type { ChatMessage, ContentPart, ToolDefinition } from '../runtime/messages.ts'
import { textOf } from '../runtime/messages.ts'

export interface ChatRequest {
  readonly model: string
  readonly messages: readonly ChatMessage[]
  readonly stream: boolean
  readonly includeUsage: boolean
  /** String pairs; they fill the agent's queryParameterRef parameters. */
  readonly metadata: Readonly<Record<string, string>>
}

export type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly message: string; readonly param: string | null }

type Problem = Extract<Checked<never>, { ok: false }>

type Dialect = 'agent' | 'forwarded' | 'mapped'

/** How deep a body may nest. Deeper bodies cannot be serialized again (a stack overflow upstream, in queues). */
export const MAX_DEPTH = 64
/** ark's own bound on token limits; providers cap far lower. */
const MAX_TOKENS = 100_000_000
/** OpenAI's name rule for tools and response schemas. */
const NAME = /^[a-zA-Z0-9_-]{1,64}$/
/** OpenAI's rule for a message's `name`: no whitespace, no < | \ / >. */
const MESSAGE_NAME = /^[^\s<|\\/>]+$/

const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]))
const Enum = (values: readonly string[]) => Type.Unsafe<string>({ type: 'string', enum: [...values] })
const Obj = Type.Record(Type.String(), Type.Unknown())

// ---------------------------------------------------------------------------------------------------------
// Compiled shapes. Unions (content, tools, tool_choice, response_format) are dispatched by hand on their
// discriminator first: a typebox union would report every branch's errors for one mistake.

const Top = Compile(
  Type.Object({
    model: Type.String({ minLength: 1, maxLength: 512 }),
    messages: Type.Array(Type.Unknown(), { minItems: 1 }),
    stream: Nullable(Type.Boolean()),
    stream_options: Nullable(
      Type.Object({
        include_usage: Type.Optional(Type.Boolean()),
        include_obfuscation: Type.Optional(Type.Boolean()),
      }),
    ),
    n: Nullable(Type.Integer({ minimum: 1, maximum: 128 })),
    temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
    top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
    presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
    frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
    logprobs: Nullable(Type.Boolean()),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    max_tokens: Nullable(Type.Integer({ minimum: 1, maximum: MAX_TOKENS })),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1, maximum: MAX_TOKENS })),
    // An int64 upstream.
    seed: Nullable(Type.Integer({ minimum: -(2 ** 63), maximum: 2 ** 63 - 1 })),
    user: Nullable(Type.String()),
    safety_identifier: Nullable(Type.String()),
    prompt_cache_key: Nullable(Type.String()),
    parallel_tool_calls: Nullable(Type.Boolean()),
    store: Nullable(Type.Boolean()),
    reasoning_effort: Nullable(Enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh'])),
    service_tier: Nullable(Enum(['auto', 'default', 'flex', 'scale', 'priority'])),
    verbosity: Nullable(Enum(['low', 'medium', 'high'])),
    modalities: Nullable(Type.Array(Enum(['text', 'audio']))),
    audio: Nullable(
      Type.Object({
        voice: Type.Union([
          Type.String({ minLength: 1 }),
          Type.Object({ id: Type.String({ minLength: 1 }) }),
        ]),
        format: Enum(['wav', 'aac', 'mp3', 'flac', 'opus', 'pcm16']),
      }),
    ),
    web_search_options: Nullable(
      Type.Object({
        search_context_size: Type.Optional(Enum(['low', 'medium', 'high'])),
        user_location: Nullable(
          Type.Object({
            type: Enum(['approximate']),
            approximate: Type.Object({
              city: Type.Optional(Type.String()),
              country: Type.Optional(Type.String()),
              region: Type.Optional(Type.String()),
              timezone: Type.Optional(Type.String()),
            }),
          }),
        ),
      }),
    ),
  }),
)

const Name = Type.Optional(Type.String())

/** Each role's fields but its content, which is checked part by part. */
const ROLES: Readonly<Record<string, ReturnType<typeof Compile>>> = {
  system: Compile(Type.Object({ role: Type.String(), name: Name })),
  developer: Compile(Type.Object({ role: Type.String(), name: Name })),
  user: Compile(Type.Object({ role: Type.String(), name: Name })),
  assistant: Compile(
    Type.Object({
      role: Type.String(),
      name: Name,
      refusal: Nullable(Type.String()),
      audio: Nullable(Type.Object({ id: Type.String({ minLength: 1 }) })),
      tool_calls: Nullable(Type.Array(Type.Unknown())),
      function_call: Nullable(Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String() })),
    }),
  ),
  tool: Compile(Type.Object({ role: Type.String(), tool_call_id: Type.String({ minLength: 1 }) })),
  // Deprecated, and only on forwarded calls: the runtime and the mappings know tool messages only.
  function: Compile(
    Type.Object({
      role: Type.String(),
      name: Type.String({ minLength: 1 }),
      content: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
}
const RUNTIME_ROLES = 'system, developer, user, assistant, tool'

const PARTS: Readonly<Record<string, ReturnType<typeof Compile>>> = {
  text: Compile(Type.Object({ type: Type.String(), text: Type.String() })),
  refusal: Compile(Type.Object({ type: Type.String(), refusal: Type.String() })),
  image_url: Compile(
    Type.Object({
      type: Type.String(),
      image_url: Type.Object({
        url: Type.String({ minLength: 1 }),
        detail: Type.Optional(Enum(['auto', 'low', 'high'])),
      }),
    }),
  ),
  input_audio: Compile(
    Type.Object({
      type: Type.String(),
      input_audio: Type.Object({ data: Type.String(), format: Enum(['wav', 'mp3']) }),
    }),
  ),
  file: Compile(
    Type.Object({
      type: Type.String(),
      file: Type.Object({
        file_data: Type.Optional(Type.String()),
        file_id: Type.Optional(Type.String()),
        filename: Type.Optional(Type.String()),
      }),
    }),
  ),
}
/** The part types each role may send. */
const TEXT_ONLY = ['text'] as const
const PART_TYPES: Readonly<Record<string, readonly string[]>> = {
  system: TEXT_ONLY,
  developer: TEXT_ONLY,
  tool: TEXT_ONLY,
  user: ['text', 'image_url', 'input_audio', 'file'],
  assistant: ['text', 'refusal'],
}

const TOOL_CALLS: Readonly<Record<string, ReturnType<typeof Compile>>> = {
  function: Compile(
    Type.Object({
      id: Type.String({ minLength: 1 }),
      type: Type.String(),
      function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String() }),
    }),
  ),
  custom: Compile(
    Type.Object({
      id: Type.String({ minLength: 1 }),
      type: Type.String(),
      custom: Type.Object({ name: Type.String({ minLength: 1 }), input: Type.String() }),
    }),
  ),
}

const TOOLS: Readonly<Record<string, ReturnType<typeof Compile>>> = {
  function: Compile(
    Type.Object({
      type: Type.String(),
      function: Type.Object({
        name: Type.String(),
        description: Type.Optional(Type.String()),
        parameters: Type.Optional(Obj),
        strict: Nullable(Type.Boolean()),
      }),
    }),
  ),
  custom: Compile(
    Type.Object({
      type: Type.String(),
      custom: Type.Object({
        name: Type.String(),
        description: Type.Optional(Type.String()),
        format: Type.Optional(Obj),
      }),
    }),
  ),
}

const TOOL_CHOICES: Readonly<Record<string, ReturnType<typeof Compile>>> = {
  function: Compile(Type.Object({ type: Type.String(), function: Type.Object({ name: Type.String() }) })),
  custom: Compile(Type.Object({ type: Type.String(), custom: Type.Object({ name: Type.String() }) })),
  allowed_tools: Compile(
    Type.Object({
      type: Type.String(),
      allowed_tools: Type.Object({
        mode: Enum(['auto', 'required']),
        tools: Type.Array(Obj, { minItems: 1 }),
      }),
    }),
  ),
}

const FORMATS: Readonly<Record<string, ReturnType<typeof Compile>>> = {
  text: Compile(Type.Object({ type: Type.String() })),
  json_object: Compile(Type.Object({ type: Type.String() })),
  json_schema: Compile(
    Type.Object({
      type: Type.String(),
      json_schema: Type.Object({
        name: Type.String(),
        description: Type.Optional(Type.String()),
        schema: Type.Optional(Obj),
        strict: Nullable(Type.Boolean()),
      }),
    }),
  ),
}

const Functions = Compile(
  Type.Array(
    Type.Object({
      name: Type.String(),
      description: Type.Optional(Type.String()),
      parameters: Type.Optional(Obj),
    }),
    { minItems: 1 },
  ),
)

// ---------------------------------------------------------------------------------------------------------
// The checks

/** `messages[0].content`, `metadata.k`, `metadata["a b"]`: the param as OpenAI spells it. */
function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${String(key)}]`
  if (/^[A-Za-z_$][\w$-]*$/.test(key)) return path === '' ? key : `${path}.${key}`
  return `${path}[${JSON.stringify(key)}]`
}

function fail(param: string | null, message: string): Problem {
  return { ok: false, message: `${param ?? 'body'}: ${message}`, param }
}

/** A short rendering of a client's value for messages. */
function shown(v: unknown): string {
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object' && v !== null) return 'an object'
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v)
  // undefined for undefined, whatever its type says.
  const json = JSON.stringify(v) as string | undefined
  const text = json ?? String(v)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

const given = (v: unknown) => v !== undefined && v !== null

function schema(check: ReturnType<typeof Compile>, value: unknown, path: string): Problem | undefined {
  return check.Check(value) ? undefined : firstProblem(check.Errors(value), value, path)
}

/** The path of the first value nested deeper than `MAX_DEPTH`, or undefined. */
function tooDeep(value: unknown, depth: number, path: string): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  if (depth >= MAX_DEPTH) return path
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = tooDeep(value[i], depth + 1, path)
      if (found !== undefined) return found
    }
  } else {
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue
      const found = tooDeep((value as Record<string, unknown>)[key], depth + 1, depth === 0 ? key : path)
      if (found !== undefined) return found
    }
  }
  return undefined
}

/**
 * Everything OpenAI checks, in one pass over the body, for `dialect`. The body is the parsed JSON object;
 * nothing is changed.
 */
function checkBody(body: Record<string, unknown>, dialect: Dialect): Problem | undefined {
  const deep = tooDeep(body, 0, '')
  if (deep !== undefined) {
    return fail(
      deep === '' ? null : deep,
      `nested deeper than ${String(MAX_DEPTH)} levels; no OpenAI request needs that depth`,
    )
  }
  const top = schema(Top, body, '')
  if (top !== undefined) return top

  const messages = checkMessages(body.messages as unknown[], dialect)
  if (messages !== undefined) return messages

  const tools = checkTools(body, dialect)
  if ('ok' in tools) return tools
  const choice = checkToolChoice(body.tool_choice, tools, dialect)
  if (choice !== undefined) return choice

  return (
    checkFormat(body.response_format, dialect) ??
    checkStop(body.stop) ??
    checkMetadata(body.metadata) ??
    checkLogitBias(body.logit_bias) ??
    checkPrediction(body.prediction) ??
    checkTogether(body, dialect)
  )
}

/** Fields that depend on one another, and what a target cannot do. */
function checkTogether(body: Record<string, unknown>, dialect: Dialect): Problem | undefined {
  if (given(body.stream_options) && body.stream !== true) {
    return fail(
      'stream_options',
      'only allowed when stream is true; set "stream": true or drop stream_options',
    )
  }
  if (given(body.top_logprobs) && body.logprobs !== true) {
    return fail('top_logprobs', 'needs "logprobs": true; set it or drop top_logprobs')
  }
  if (Array.isArray(body.modalities) && body.modalities.includes('audio') && !given(body.audio)) {
    return fail(
      'audio',
      'is required when modalities include "audio": send e.g. {"voice": "alloy", "format": "wav"}',
    )
  }
  if (typeof body.n === 'number' && body.n > 1) {
    if (dialect === 'agent') {
      return fail(
        'n',
        `agents answer with one choice, n must be 1, got ${String(body.n)}; send the request again for another answer`,
      )
    }
    if (dialect === 'mapped') {
      return fail(
        'n',
        `this model is called through ark's mapping of its provider, which answers with one choice: n must be 1, got ${String(body.n)}`,
      )
    }
  }
  if (dialect !== 'forwarded') {
    if (given(body.functions) && !(Array.isArray(body.functions) && body.functions.length === 0)) {
      return fail(
        'functions',
        dialect === 'agent'
          ? 'agents run their own tools; client tools are for model/ targets'
          : 'functions is deprecated and not mapped for this model; send tools',
      )
    }
    if (given(body.function_call) && body.function_call !== 'none' && body.function_call !== 'auto') {
      return fail('function_call', 'functions is deprecated and not served here; use tools and tool_choice')
    }
  } else {
    if (given(body.functions)) {
      const f = schema(Functions, body.functions, 'functions')
      if (f !== undefined) return f
    }
    const call = body.function_call
    if (
      given(call) &&
      call !== 'none' &&
      call !== 'auto' &&
      !(isRecord(call) && typeof call.name === 'string')
    ) {
      return fail('function_call', `must be "none", "auto" or {"name": "<function>"}, got ${shown(call)}`)
    }
  }
  return undefined
}

// Messages ------------------------------------------------------------------------------------------------

function checkMessages(list: readonly unknown[], dialect: Dialect): Problem | undefined {
  /** Ids of the last assistant message's tool calls, and those no tool message has answered yet. */
  let asked: Set<string> | undefined
  let unanswered: Set<string> | undefined
  let askedAt = -1
  for (let i = 0; i < list.length; i++) {
    const m = list[i]
    const path = at('messages', i)
    if (!isRecord(m)) return fail(path, `must be a message object with a role, got ${shown(m)}`)
    const role = m.role
    if (role === undefined) return fail(at(path, 'role'), `is required: one of ${RUNTIME_ROLES}`)
    if (typeof role !== 'string') return fail(at(path, 'role'), `must be a string, got ${shown(role)}`)
    const check = Object.hasOwn(ROLES, role) ? ROLES[role] : undefined
    if (check === undefined || (role === 'function' && dialect !== 'forwarded')) {
      const why = role === 'function' ? ' (function messages are deprecated: send tool messages)' : ''
      return fail(at(path, 'role'), `must be one of ${RUNTIME_ROLES}, got ${shown(role.slice(0, 40))}${why}`)
    }
    const shape = schema(check, m, path)
    if (shape !== undefined) return shape
    if (typeof m.name === 'string' && role !== 'function' && !MESSAGE_NAME.test(m.name)) {
      return fail(
        at(path, 'name'),
        `must be a name without spaces or any of < | \\ / >, got ${shown(m.name)}`,
      )
    }

    if (role !== 'tool' && unanswered !== undefined && unanswered.size > 0)
      return unansweredCalls(askedAt, unanswered)
    if (role === 'function') continue
    if (role === 'assistant') {
      const calls = checkToolCalls(m.tool_calls, at(path, 'tool_calls'), dialect)
      if (!(calls instanceof Set)) return calls
      const content = m.content
      const hasContent =
        (typeof content === 'string' && content !== '') || (Array.isArray(content) && content.length > 0)
      if (!hasContent && calls.size === 0 && !given(m.function_call) && !given(m.audio)) {
        return fail(
          at(path, 'content'),
          "an assistant message needs content or tool_calls; send the assistant's text as content, or drop the message",
        )
      }
      if (given(content)) {
        const c = checkContent(content, 'assistant', at(path, 'content'), dialect)
        if (c !== undefined) return c
      }
      if (calls.size > 0) {
        asked = calls
        unanswered = new Set(calls)
        askedAt = i
      }
      continue
    }
    if (m.content === undefined || m.content === null) {
      return fail(
        at(path, 'content'),
        `is required in a ${role} message: a string or a list of content parts`,
      )
    }
    const c = checkContent(m.content, role, at(path, 'content'), dialect)
    if (c !== undefined) return c
    if (role === 'tool') {
      const id = m.tool_call_id as string
      if (asked === undefined || !asked.has(id)) {
        return fail(
          at(path, 'tool_call_id'),
          `${shown(id)} answers no tool call: a tool message must follow the assistant message whose tool_calls include its id`,
        )
      }
      unanswered?.delete(id)
    }
  }
  if (unanswered !== undefined && unanswered.size > 0) return unansweredCalls(askedAt, unanswered)
  return undefined
}

function unansweredCalls(index: number, ids: ReadonlySet<string>): Problem {
  const list = [...ids]
    .slice(0, 5)
    .map((id) => JSON.stringify(id.slice(0, 64)))
    .join(', ')
  return fail(
    at(at('messages', index), 'tool_calls'),
    `the tool calls ${list} have no tool message answering them; follow this message with one {"role": "tool", "tool_call_id": ...} message per call`,
  )
}

/** The ids of an assistant message's tool calls, or the problem with them. */
function checkToolCalls(calls: unknown, path: string, dialect: Dialect): Set<string> | Problem {
  const ids = new Set<string>()
  if (!Array.isArray(calls)) return ids
  for (let j = 0; j < calls.length; j++) {
    const call: unknown = calls[j]
    const p = at(path, j)
    if (!isRecord(call)) return fail(p, `must be a tool call object, got ${shown(call)}`)
    const type = call.type
    if (typeof type !== 'string') {
      return fail(
        at(p, 'type'),
        type === undefined ? 'is required: "function"' : `must be "function", got ${shown(type)}`,
      )
    }
    const check = Object.hasOwn(TOOL_CALLS, type) ? TOOL_CALLS[type] : undefined
    if (check === undefined || (type !== 'function' && dialect !== 'forwarded')) {
      if (dialect === 'forwarded' && check === undefined && type !== '') {
        if (typeof call.id === 'string') ids.add(call.id)
        continue
      }
      return fail(at(p, 'type'), `must be "function", got ${shown(type)}`)
    }
    const shape = schema(check, call, p)
    if (shape !== undefined) return shape
    ids.add(call.id as string)
  }
  return ids
}

/** A message's content: a string, or a non-empty list of parts of the types its role may send. */
function checkContent(content: unknown, role: string, path: string, dialect: Dialect): Problem | undefined {
  if (typeof content === 'string') return undefined
  if (!Array.isArray(content)) {
    return fail(path, `must be a string or a list of content parts, got ${shown(content)}`)
  }
  if (content.length === 0)
    return fail(path, 'must not be an empty list; send at least one part, or a string')
  const allowed = PART_TYPES[role] ?? TEXT_ONLY
  for (let j = 0; j < content.length; j++) {
    const problem = checkPart(content[j], allowed, role, at(path, j), dialect)
    if (problem !== undefined) return problem
  }
  return undefined
}

function checkPart(
  part: unknown,
  allowed: readonly string[],
  role: string,
  path: string,
  dialect: Dialect,
): Problem | undefined {
  if (!isRecord(part))
    return fail(
      path,
      `must be a content part object like {"type": "text", "text": "..."}, got ${shown(part)}`,
    )
  const type = part.type
  const expected = `one of ${allowed.join(', ')} in a ${role} message`
  if (type === undefined) return fail(at(path, 'type'), `is required: ${expected}`)
  if (typeof type !== 'string') return fail(at(path, 'type'), `must be ${expected}, got ${shown(type)}`)
  const check = Object.hasOwn(PARTS, type) ? PARTS[type] : undefined
  if (check === undefined && dialect === 'forwarded' && type !== '') return undefined
  if (check === undefined || !allowed.includes(type))
    return fail(at(path, 'type'), `must be ${expected}, got ${shown(type)}`)
  const shape = schema(check, part, path)
  if (shape !== undefined) return shape
  if (type === 'file') {
    const file = part.file as Record<string, unknown>
    if (file.file_id === undefined && file.file_data === undefined) {
      return fail(at(path, 'file'), 'needs file_id (an uploaded file) or file_data (base64)')
    }
  }
  return undefined
}

// Tools ---------------------------------------------------------------------------------------------------

/** What tool_choice may choose from. */
interface Offered {
  /** Tools of every type, those ark does not know included. */
  readonly count: number
  /** `function:<name>`, `custom:<name>`. */
  readonly names: ReadonlySet<string>
}

/** The request's tools, or the problem with them. */
function checkTools(body: Record<string, unknown>, dialect: Dialect): Offered | Problem {
  const tools = body.tools
  const names = new Set<string>()
  const none = { count: 0, names }
  if (!given(tools)) return none
  if (dialect === 'agent') {
    if (Array.isArray(tools) && tools.length === 0) return none
    return fail(
      'tools',
      'agents run their own tools; client tools are for model/ targets (drop tools, or call model/<name>)',
    )
  }
  if (!Array.isArray(tools)) return fail('tools', `must be a list of tools, got ${shown(tools)}`)
  if (tools.length > 128) return fail('tools', `at most 128 tools, got ${String(tools.length)}`)
  for (let i = 0; i < tools.length; i++) {
    const tool: unknown = tools[i]
    const path = at('tools', i)
    if (!isRecord(tool))
      return fail(
        path,
        `must be a tool object like {"type": "function", "function": {...}}, got ${shown(tool)}`,
      )
    const type = tool.type
    if (typeof type !== 'string') {
      return fail(
        at(path, 'type'),
        type === undefined ? 'is required: "function"' : `must be "function", got ${shown(type)}`,
      )
    }
    const check = Object.hasOwn(TOOLS, type) ? TOOLS[type] : undefined
    if (check === undefined || (type !== 'function' && dialect !== 'forwarded')) {
      if (dialect === 'forwarded' && check === undefined && type !== '') continue
      return fail(
        at(path, 'type'),
        type === 'custom'
          ? 'custom tools need an OpenAI-wire upstream; this model takes "function" tools'
          : `must be "function", got ${shown(type)}`,
      )
    }
    const shape = schema(check, tool, path)
    if (shape !== undefined) return shape
    const name = (tool[type] as { name: string }).name
    if (!NAME.test(name))
      return fail(at(at(path, type), 'name'), `must be 1 to 64 letters, digits, _ or -, got ${shown(name)}`)
    names.add(`${type}:${name}`)
  }
  return { count: tools.length, names }
}

function checkToolChoice(choice: unknown, tools: Offered, dialect: Dialect): Problem | undefined {
  if (!given(choice) || choice === 'none' || choice === 'auto') return undefined
  const noTools = () =>
    fail(
      'tool_choice',
      dialect === 'agent'
        ? 'agents choose among their own tools; tool_choice other than "none" or "auto" is for model/ targets'
        : 'the request has no tools to choose from; send tools, or drop tool_choice',
    )
  if (choice === 'required') return tools.count === 0 ? noTools() : undefined
  const expected = '"none", "auto", "required" or {"type": "function", "function": {"name": ...}}'
  if (!isRecord(choice)) return fail('tool_choice', `must be ${expected}, got ${shown(choice)}`)
  const type = choice.type
  if (typeof type !== 'string') return fail(at('tool_choice', 'type'), `is required: ${expected}`)
  const check = Object.hasOwn(TOOL_CHOICES, type) ? TOOL_CHOICES[type] : undefined
  if (check === undefined || (type !== 'function' && dialect !== 'forwarded')) {
    if (dialect === 'forwarded' && check === undefined && type !== '') return undefined
    return fail(at('tool_choice', 'type'), `must be "function" here, got ${shown(type)}`)
  }
  const shape = schema(check, choice, 'tool_choice')
  if (shape !== undefined) return shape
  if (type === 'allowed_tools') return undefined
  if (tools.count === 0) return noTools()
  const name = (choice[type] as { name: string }).name
  if (!tools.names.has(`${type}:${name}`)) {
    const offered = [...tools.names]
      .filter((n) => n.startsWith(`${type}:`))
      .map((n) => n.slice(type.length + 1))
    return fail(
      at(at('tool_choice', type), 'name'),
      `names no ${type} tool of the request (${offered.slice(0, 10).join(', ') || 'none'}), got ${shown(name)}`,
    )
  }
  return undefined
}

// Other fields --------------------------------------------------------------------------------------------

function checkFormat(format: unknown, dialect: Dialect): Problem | undefined {
  if (!given(format)) return undefined
  const expected =
    '{"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}'
  if (!isRecord(format)) return fail('response_format', `must be ${expected}, got ${shown(format)}`)
  const type = format.type
  if (typeof type !== 'string') {
    return fail(
      'response_format.type',
      type === undefined
        ? 'is required: text, json_object or json_schema'
        : `must be text, json_object or json_schema, got ${shown(type)}`,
    )
  }
  const check = Object.hasOwn(FORMATS, type) ? FORMATS[type] : undefined
  if (check === undefined) {
    if (dialect === 'forwarded' && type !== '') return undefined
    return fail('response_format.type', `must be text, json_object or json_schema, got ${shown(type)}`)
  }
  const shape = schema(check, format, 'response_format')
  if (shape !== undefined) return shape
  if (type === 'json_schema') {
    const name = (format.json_schema as { name: string }).name
    if (!NAME.test(name)) {
      return fail(
        'response_format.json_schema.name',
        `must be 1 to 64 letters, digits, _ or -, got ${shown(name)}`,
      )
    }
  }
  if (dialect === 'agent' && type !== 'text') {
    return fail(
      'response_format',
      'an agent answers in the format its spec declares (outputSchema); structured response_format is for model/ targets',
    )
  }
  return undefined
}

function checkStop(stop: unknown): Problem | undefined {
  if (!given(stop) || typeof stop === 'string') return undefined
  if (!Array.isArray(stop))
    return fail('stop', `must be a string or a list of up to 4 strings, got ${shown(stop)}`)
  if (stop.length > 4) return fail('stop', `at most 4 stop sequences, got ${String(stop.length)}`)
  const i = stop.findIndex((s) => typeof s !== 'string')
  return i < 0 ? undefined : fail(at('stop', i), `must be a string, got ${shown(stop[i])}`)
}

function checkMetadata(metadata: unknown): Problem | undefined {
  if (!given(metadata)) return undefined
  if (!isRecord(metadata))
    return fail('metadata', `must be an object of string pairs, got ${shown(metadata)}`)
  const keys = Object.keys(metadata)
  if (keys.length > 16) return fail('metadata', `at most 16 pairs, got ${String(keys.length)}`)
  for (const key of keys) {
    if (key.length > 64)
      return fail('metadata', `keys are at most 64 characters, got ${shown(key)} (${String(key.length)})`)
    const value = metadata[key]
    if (typeof value !== 'string') return fail(at('metadata', key), `must be a string, got ${shown(value)}`)
    if (value.length > 512)
      return fail(at('metadata', key), `must be at most 512 characters, got ${String(value.length)}`)
  }
  return undefined
}

function checkLogitBias(bias: unknown): Problem | undefined {
  if (!given(bias)) return undefined
  if (!isRecord(bias)) return fail('logit_bias', `must be an object of token id -> bias, got ${shown(bias)}`)
  for (const key of Object.keys(bias)) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(key)) {
      return fail('logit_bias', `keys are token ids (integers, as strings), got ${shown(key)}`)
    }
    const value = bias[key]
    if (typeof value !== 'number' || !(value >= -100 && value <= 100)) {
      return fail(
        'logit_bias',
        `the bias of token ${key} must be a number from -100 to 100, got ${shown(value)}`,
      )
    }
  }
  return undefined
}

function checkPrediction(prediction: unknown): Problem | undefined {
  if (!given(prediction)) return undefined
  if (!isRecord(prediction))
    return fail('prediction', `must be {"type": "content", "content": ...}, got ${shown(prediction)}`)
  if (prediction.type !== 'content')
    return fail('prediction.type', `must be "content", got ${shown(prediction.type)}`)
  if (prediction.content === undefined)
    return fail('prediction.content', 'is required: a string or a list of text parts')
  return checkContent(prediction.content, 'prediction', 'prediction.content', 'agent')
}

// ---------------------------------------------------------------------------------------------------------
// The three entry points

export function checkChatRequest(body: unknown): Checked<ChatRequest> {
  if (!isRecord(body)) return fail(null, `the request body must be a JSON object, got ${shown(body)}`)
  const problem = checkBody(body, 'agent')
  if (problem !== undefined) return problem
  const streamOptions = body.stream_options as { include_usage?: boolean } | null | undefined
  return {
    ok: true,
    value: {
      model: body.model as string,
      messages: runtimeMessages(body.messages as Record<string, unknown>[]),
      stream: body.stream === true,
      includeUsage: streamOptions?.include_usage === true,
      metadata: (body.metadata ?? {}) as Record<string, string>,
    },
  }
}

/**
 * Checked messages as the runtime reads them: text-only roles' parts become strings, an assistant message
 * without content has `content: null`. Other fields are kept (they are the client's, and harmless).
 */
function runtimeMessages(list: readonly Record<string, unknown>[]): ChatMessage[] {
  return list.map((m) => {
    if (m.role === 'user') return m
    if (Array.isArray(m.content)) return { ...m, content: textOf(m.content as ContentPart[]) }
    if (m.role === 'assistant' && m.content === undefined) return { ...m, content: null }
    return m
  }) as unknown as ChatMessage[]
}

// ---------------------------------------------------------------------------------------------------------
// Direct model calls (`model/<name>`)

/** A direct model call, as the runtime's providers take it. */
export interface DirectRequest {
  readonly stream: boolean
  readonly includeUsage: boolean
  readonly messages: readonly ChatMessage[]
  readonly tools: readonly ToolDefinition[]
  readonly outputSchema?: JsonSchema
  readonly maxTokens?: number
  /** Sampling parameters, in OpenAI's names, for the provider to map. */
  readonly parameters: Readonly<Record<string, unknown>>
}

/**
 * A call for an OpenAI-wire upstream: checked as OpenAI checks it, then forwarded as is (types ark does not
 * know included, for the upstream to judge).
 */
export function checkForwardedRequest(
  body: Record<string, unknown>,
): Checked<{ stream: boolean; includeUsage: boolean }> {
  const problem = checkBody(body, 'forwarded')
  if (problem !== undefined) return problem
  const streamOptions = body.stream_options as { include_usage?: boolean } | null | undefined
  return {
    ok: true,
    value: { stream: body.stream === true, includeUsage: streamOptions?.include_usage === true },
  }
}

/** Checks and maps a direct call for a provider ark translates to (every message, tools, response_format). */
export function checkMappedRequest(body: Record<string, unknown>): Checked<DirectRequest> {
  const problem = checkBody(body, 'mapped')
  if (problem !== undefined) return problem
  const format = body.response_format as
    { type: string; json_schema?: { schema?: JsonSchema } } | null | undefined
  const outputSchema =
    format?.type === 'json_schema'
      ? (format.json_schema?.schema ?? {})
      : format?.type === 'json_object'
        ? { type: 'object' }
        : undefined
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined
  const parameters: Record<string, unknown> = {}
  for (const k of ['temperature', 'top_p', 'stop'] as const)
    if (body[k] !== undefined && body[k] !== null) parameters[k] = body[k]
  const tools = (
    (body.tools ?? []) as { function: { name: string; description?: string; parameters?: JsonSchema } }[]
  ).map((t): ToolDefinition => ({
    type: 'function',
    function: {
      name: t.function.name,
      ...(t.function.description === undefined ? {} : { description: t.function.description }),
      parameters: t.function.parameters ?? { type: 'object', properties: {} },
    },
  }))
  const streamOptions = body.stream_options as { include_usage?: boolean } | null | undefined
  return {
    ok: true,
    value: {
      stream: body.stream === true,
      includeUsage: streamOptions?.include_usage === true,
      messages: runtimeMessages(body.messages as Record<string, unknown>[]),
      tools,
      ...(outputSchema === undefined ? {} : { outputSchema }),
      ...(maxTokens === undefined ? {} : { maxTokens: maxTokens as number }),
      parameters,
    },
  }
}

function firstProblem(errors: readonly TypeBoxError[], value: unknown, prefix: string): Problem {
  // JSON.parse reads 1e999 as Infinity, which the schema messages would show as null.
  for (const e of errors) {
    let v: unknown = value
    let path = prefix
    for (const raw of e.instancePath.split('/').slice(1)) {
      const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~')
      if (Array.isArray(v)) {
        path = at(path, Number(seg))
        v = v[Number(seg)]
      } else {
        path = at(path, seg)
        v = isRecord(v) ? v[seg] : undefined
      }
    }
    if (typeof v === 'number' && !Number.isFinite(v)) {
      return fail(
        path,
        `must be a finite number, got ${String(v)} (a literal beyond a double's range, like 1e999)`,
      )
    }
  }
  const issues = describeSchemaErrors(errors, value, { showValues: true, unknownFields: 'error' })
  // The most specific issue is the deepest one: `messages[0].content` before `messages`.
  const issue = issues.sort((a, b) => b.path.length - a.path.length)[0]
  if (issue === undefined) return fail(prefix === '' ? null : prefix, 'is not valid')
  const path =
    prefix === ''
      ? issue.path
      : issue.path === ''
        ? prefix
        : `${prefix}${issue.path.startsWith('[') ? '' : '.'}${issue.path}`
  return fail(path === '' ? null : path, issue.message)
}
