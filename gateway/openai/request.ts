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
import type { ChatMessage, ContentPart } from '../runtime/messages.ts'
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
  for (let i = 0; i < b.messages.length; i++) {
    const m = b.messages[i] as { role: string }
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
  const messages = b.messages.map((m) => {
    const msg = m as { role: string; content?: unknown }
    return msg.role !== 'user' && Array.isArray(msg.content)
      ? { ...msg, content: textOf(msg.content as ContentPart[]) }
      : msg
  })
  const streamOptions = b.stream_options as { include_usage?: boolean } | null | undefined
  return {
    ok: true,
    value: {
      model: b.model as string,
      messages: messages as unknown as ChatMessage[],
      stream: b.stream === true,
      includeUsage: streamOptions?.include_usage === true,
      metadata: (b.metadata ?? {}) as Record<string, string>,
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
