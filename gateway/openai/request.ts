/**
 * The chat completions request: parsed and checked before anything else happens, with errors that name the
 * field (`param`) the way OpenAI does. Fields ark does not use are accepted and ignored, as OpenAI-compatible
 * servers do, so that clients sending newer options keep working.
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

const Nullable = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]))

const Part = Type.Object({ type: Type.String({ minLength: 1 }), text: Type.Optional(Type.String()) })
const Content = Type.Union([Type.String(), Type.Array(Part)])
const TextContent = Type.Union([
  Type.String(),
  Type.Array(Type.Object({ type: Type.Literal('text'), text: Type.String() })),
])

const ToolCall = Type.Object({
  id: Type.String({ minLength: 1 }),
  type: Type.Literal('function'),
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String() }),
})

/** One validator per role: a union would report every branch's errors for one mistake. */
const ROLES: Record<string, ReturnType<typeof Compile>> = {
  system: Compile(
    Type.Object({ role: Type.String(), content: TextContent, name: Type.Optional(Type.String()) }),
  ),
  developer: Compile(
    Type.Object({ role: Type.String(), content: TextContent, name: Type.Optional(Type.String()) }),
  ),
  user: Compile(Type.Object({ role: Type.String(), content: Content, name: Type.Optional(Type.String()) })),
  assistant: Compile(
    Type.Object({
      role: Type.String(),
      content: Nullable(TextContent),
      tool_calls: Nullable(Type.Array(ToolCall)),
      name: Type.Optional(Type.String()),
    }),
  ),
  tool: Compile(
    Type.Object({ role: Type.String(), content: TextContent, tool_call_id: Type.String({ minLength: 1 }) }),
  ),
}

const Top = Compile(
  Type.Object({
    model: Type.String({ minLength: 1, maxLength: 512 }),
    messages: Type.Array(Type.Object({ role: Type.String() }), { minItems: 1 }),
    stream: Nullable(Type.Boolean()),
    stream_options: Nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
    n: Nullable(Type.Integer({ minimum: 1, maximum: 1 })),
    metadata: Nullable(Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }))),
    temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
    top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
    max_tokens: Nullable(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
    tools: Nullable(Type.Array(Type.Object({ type: Type.String() }), { maxItems: 0 })),
  }),
)

export function checkChatRequest(body: unknown): Checked<ChatRequest> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, message: 'the request body must be a JSON object', param: null }
  }
  if (!Top.Check(body)) return firstProblem(Top.Errors(body), body, '')
  const b = body as Record<string, unknown> & { messages: { role: string }[] }
  const messages = checkMessages(b.messages)
  if (!messages.ok) return messages
  const streamOptions = b.stream_options as { include_usage?: boolean } | null | undefined
  return {
    ok: true,
    value: {
      model: b.model as string,
      messages: messages.value,
      stream: b.stream === true,
      includeUsage: streamOptions?.include_usage === true,
      metadata: (b.metadata ?? {}) as Record<string, string>,
    },
  }
}

/** Each message checked against its role's shape; text-only roles' parts become strings. */
function checkMessages(list: readonly { role: string }[]): Checked<ChatMessage[]> {
  for (let i = 0; i < list.length; i++) {
    const m = list[i] as { role: string }
    const check = Object.hasOwn(ROLES, m.role) ? ROLES[m.role] : undefined
    if (check === undefined) {
      return {
        ok: false,
        message: `messages[${String(i)}].role: must be one of system, developer, user, assistant, tool, got ${JSON.stringify(m.role.slice(0, 40))}`,
        param: `messages[${String(i)}].role`,
      }
    }
    if (!check.Check(m)) return firstProblem(check.Errors(m), m, `messages[${String(i)}]`)
  }
  // Text-only roles may send their text as parts; the runtime reads strings.
  const messages = list.map((m) => {
    const msg = m as { role: string; content?: unknown }
    return msg.role !== 'user' && Array.isArray(msg.content)
      ? { ...msg, content: textOf(msg.content as ContentPart[]) }
      : msg
  })
  return { ok: true, value: messages as unknown as ChatMessage[] }
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
 * The part of a request every upstream needs: a forwarded request (OpenAI-wire upstreams) is checked only this
 * far, and the upstream judges the rest, so options ark does not know keep working.
 */
const DirectTop = Compile(
  Type.Object({
    model: Type.String({ minLength: 1, maxLength: 512 }),
    messages: Type.Array(Type.Object({ role: Type.String() }), { minItems: 1 }),
    stream: Nullable(Type.Boolean()),
    stream_options: Nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  }),
)

/** What ark maps itself, for upstreams that do not speak OpenAI's wire format (Anthropic, the mock). */
const DirectMapped = Compile(
  Type.Object({
    tools: Nullable(
      Type.Array(
        Type.Object({
          type: Type.Literal('function'),
          function: Type.Object({
            name: Type.String({ pattern: '^[a-zA-Z0-9_-]{1,64}$' }),
            description: Type.Optional(Type.String()),
            parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
          }),
        }),
      ),
    ),
    response_format: Nullable(
      Type.Union([
        Type.Object({ type: Type.Literal('text') }),
        Type.Object({ type: Type.Literal('json_object') }),
        Type.Object({
          type: Type.Literal('json_schema'),
          json_schema: Type.Object({
            name: Type.String(),
            schema: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
          }),
        }),
      ]),
    ),
    max_tokens: Nullable(Type.Integer({ minimum: 1 })),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1 })),
    temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
    top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
    stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })])),
  }),
)

/** Checks only what routing and streaming need: the body goes upstream as is. */
export function checkForwardedRequest(
  body: Record<string, unknown>,
): Checked<{ stream: boolean; includeUsage: boolean }> {
  if (!DirectTop.Check(body)) return firstProblem(DirectTop.Errors(body), body, '')
  const streamOptions = body.stream_options
  return {
    ok: true,
    value: { stream: body.stream === true, includeUsage: streamOptions?.include_usage === true },
  }
}

/** Checks and maps a direct call for a provider ark translates to (every message, tools, response_format). */
export function checkMappedRequest(body: Record<string, unknown>): Checked<DirectRequest> {
  const top = checkForwardedRequest(body)
  if (!top.ok) return top
  if (!DirectMapped.Check(body)) return firstProblem(DirectMapped.Errors(body), body, '')
  const messages = checkMessages((body as { messages: { role: string }[] }).messages)
  if (!messages.ok) return messages
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
  return {
    ok: true,
    value: {
      ...top.value,
      messages: messages.value,
      tools,
      ...(outputSchema === undefined ? {} : { outputSchema }),
      ...(maxTokens === undefined ? {} : { maxTokens }),
      parameters,
    },
  }
}

function firstProblem(errors: readonly TypeBoxError[], value: unknown, prefix: string): Checked<never> {
  const issues = describeSchemaErrors(errors, value, { showValues: true, unknownFields: 'error' })
  // The most specific issue is the deepest one: `messages[0].content` before `messages`.
  const issue = issues.sort((a, b) => b.path.length - a.path.length)[0]
  if (issue === undefined) return { ok: false, message: 'the request is not valid', param: null }
  const path =
    prefix === ''
      ? issue.path
      : issue.path === ''
        ? prefix
        : `${prefix}${issue.path.startsWith('[') ? '' : '.'}${issue.path}`
  const hint = path === 'tools' ? '; agents run their own tools (client tools are for model/ targets)' : ''
  return {
    ok: false,
    message: `${path === '' ? 'body' : path}: ${issue.message}${hint}`,
    param: path === '' ? null : path,
  }
}
