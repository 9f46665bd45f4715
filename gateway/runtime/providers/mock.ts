/**
 * `mock`: a deterministic model that needs no key and no network, so every part of the tool loop runs
 * offline, in tests and in benchmarks. What it does (README, "The mock model"):
 *
 * - It reads the last user message (not the runtime's own corrections, which are named `ark`). Each line that names one of the offered tools followed by JSON
 *   arguments (`calculator {"expression": "2+3"}`) is one turn; several tools on one line are called in
 *   the same turn. Turn k of the reply is line k; when the lines run out, it answers.
 * - Its answer is the text after `answer:` if a line starts with that; the system prompt it was given if a
 *   line is `show: system` (to see what a templated prompt became); otherwise, when the agent has an
 *   outputSchema, the smallest JSON value that matches it; otherwise the tool results of this task, one
 *   per line (`calculator: 5`), or, when no tool ran, `You said: <the message>`.
 * - In JSON mode (`json`, ArkSettings `outputFormat: structured-json`) an answer that is not a JSON object
 *   comes wrapped in one: `{"answer": "<the answer>"}`.
 * - Usage counts one token per 4 characters, in and out.
 * - Model properties `latencyMs` (before the first token) and `chunkDelayMs` (between streamed words) make
 *   it slow on purpose.
 */
import type { JsonSchema } from '../../../controller/api/index.ts'
import type { AssistantMessage, ChatMessage, ToolCall } from '../messages.ts'
import { textOf } from '../messages.ts'
import type { Completion, CompletionRequest, Provider, ProviderConfig } from '../provider.ts'
import { sleep } from '../provider.ts'

export function createMockProvider(config: ProviderConfig): Provider {
  const latencyMs = nonNegative(config.properties.latencyMs)
  const chunkDelayMs = nonNegative(config.properties.chunkDelayMs)
  return {
    provider: 'mock',
    model: config.model,
    // Always there: it runs in-process.
    probe: () => Promise.resolve(),
    async complete(request) {
      if (latencyMs > 0) await sleep(latencyMs, request.signal)
      request.signal.throwIfAborted()
      const reply = jsonMode(request, decide(request))
      // Generating takes as long whether or not anyone watches the words arrive.
      if (reply.tool_calls === undefined && reply.content !== null) {
        if (request.onDelta !== undefined)
          await stream(reply.content, request.onDelta, chunkDelayMs, request.signal)
        else if (chunkDelayMs > 0)
          await sleep(chunkDelayMs * (words(reply.content).length - 1), request.signal)
      }
      return {
        message: reply,
        usage: usageOf(request.messages, reply),
        finishReason: reply.tool_calls === undefined ? 'stop' : 'tool_calls',
      } satisfies Completion
    },
  }
}

function decide(request: CompletionRequest): AssistantMessage {
  const { messages } = request
  let lastUser = -1
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]
    // The runtime's own corrections (name: ark) are not the user's request: directives stay the user's.
    if (m?.role === 'user' && m.name !== 'ark') {
      lastUser = i
      break
    }
  }
  const said = lastUser < 0 ? '' : textOf((messages[lastUser] as { content: string }).content)
  let turn = 0
  for (let i = lastUser + 1; i < messages.length; i++) {
    const m = messages[i]
    if (m?.role === 'assistant' && m.tool_calls !== undefined && m.tool_calls.length > 0) turn++
  }

  if (request.tools.length > 0) {
    const names = request.tools.map((t) => t.function.name)
    let step = 0
    for (const line of said.split('\n')) {
      const calls = callsIn(line, names, turn)
      if (calls.length === 0) continue
      if (step === turn) return { role: 'assistant', content: null, tool_calls: calls }
      step++
    }
  }

  for (const line of said.split('\n')) {
    const t = line.trimStart()
    if (t.startsWith('answer:')) return answer(t.slice('answer:'.length).trim())
    if (t.trimEnd() === 'show: system') {
      const system = messages.find((m) => m.role === 'system')
      return answer(system === undefined ? '' : textOf(system.content))
    }
  }
  if (request.outputSchema !== undefined) return answer(JSON.stringify(exampleOf(request.outputSchema)))
  const results = toolResults(messages, lastUser)
  if (results !== '') return answer(results)
  return answer(`You said: ${said.length > 500 ? `${said.slice(0, 500)}...` : said}`)
}

/** JSON mode (ArkSettings `outputFormat: structured-json`): an answer that is not a JSON object is wrapped in one. */
function jsonMode(request: CompletionRequest, reply: AssistantMessage): AssistantMessage {
  if (request.json !== true || request.outputSchema !== undefined) return reply
  if (reply.tool_calls !== undefined || reply.content === null) return reply
  try {
    const value: unknown = JSON.parse(reply.content)
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return reply
  } catch {
    // Not JSON: wrapped below.
  }
  return answer(JSON.stringify({ answer: reply.content }))
}

function answer(content: string): AssistantMessage {
  return { role: 'assistant', content }
}

/** `name {json}` mentions of offered tools in one line, in the order they appear. */
function callsIn(line: string, names: readonly string[], turn: number): ToolCall[] {
  const found: { at: number; end: number; name: string; args: string }[] = []
  for (const name of names) {
    // An empty name is found everywhere, at the same place, forever.
    if (name === '') continue
    let from = 0
    for (;;) {
      const at = line.indexOf(name, from)
      if (at < 0) break
      from = at + name.length
      const before = at === 0 ? ' ' : (line[at - 1] ?? ' ')
      if (/[\w-]/.test(before)) continue
      let brace = from
      while (line[brace] === ' ' || line[brace] === '\t') brace++
      if (line[brace] !== '{') continue
      const end = jsonObjectEnd(line, brace)
      found.push({ at, end, name, args: line.slice(brace, end) })
      from = end
    }
  }
  found.sort((a, b) => a.at - b.at)
  // A tool named inside an earlier call's arguments is part of those arguments, not a call.
  const calls: typeof found = []
  let covered = 0
  for (const f of found) {
    if (f.at < covered) continue
    calls.push(f)
    covered = f.end
  }
  return calls.map((f, i) => ({
    id: `call_${String(turn)}_${String(i)}`,
    type: 'function',
    function: { name: f.name, arguments: f.args },
  }))
}

/** End (exclusive) of the JSON object starting at `start`, or the end of the line if it never closes. */
function jsonObjectEnd(text: string, start: number): number {
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
    } else if (c === '"') inString = true
    else if (c === '{') depth++
    else if (c === '}' && --depth === 0) return i + 1
  }
  return text.length
}

function toolResults(messages: readonly ChatMessage[], after: number): string {
  const names = new Map<string, string>()
  const lines: string[] = []
  for (let i = after + 1; i < messages.length; i++) {
    const m = messages[i]
    if (m?.role === 'assistant') for (const c of m.tool_calls ?? []) names.set(c.id, c.function.name)
    else if (m?.role === 'tool') lines.push(`${names.get(m.tool_call_id) ?? 'tool'}: ${m.content}`)
  }
  return lines.join('\n')
}

/** The smallest value that matches a (simple) JSON Schema: enough for agents with an outputSchema. */
export function exampleOf(schema: JsonSchema, depth = 0): unknown {
  if (depth > 20) return null
  if ('const' in schema) return schema.const
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0]
  if ('default' in schema) return schema.default
  const type = Array.isArray(schema.type) ? (schema.type[0] as unknown) : schema.type
  switch (type) {
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, JsonSchema>
      const required = Array.isArray(schema.required) ? (schema.required as string[]) : Object.keys(props)
      const out: Record<string, unknown> = {}
      for (const key of required) out[key] = exampleOf(props[key] ?? {}, depth + 1)
      return out
    }
    case 'array': {
      const min = typeof schema.minItems === 'number' ? schema.minItems : 0
      const items = (schema.items ?? {}) as JsonSchema
      return Array.from({ length: Math.min(min, 100) }, () => exampleOf(items, depth + 1))
    }
    case 'number':
    case 'integer': {
      if (typeof schema.minimum === 'number') return schema.minimum
      if (typeof schema.exclusiveMinimum === 'number') return schema.exclusiveMinimum + 1
      if (typeof schema.maximum === 'number' && schema.maximum < 0) return schema.maximum
      return 0
    }
    case 'string':
      return 'x'.repeat(typeof schema.minLength === 'number' ? Math.min(schema.minLength, 10_000) : 0)
    case 'boolean':
      return false
    default:
      return null
  }
}

function usageOf(messages: readonly ChatMessage[], reply: AssistantMessage) {
  let inChars = 0
  for (const m of messages) {
    inChars += m.role === 'tool' ? m.content.length : textOf(m.content).length
    if (m.role === 'assistant') for (const c of m.tool_calls ?? []) inChars += c.function.arguments.length
  }
  let outChars = reply.content?.length ?? 0
  for (const c of reply.tool_calls ?? []) outChars += c.function.name.length + c.function.arguments.length
  const promptTokens = Math.ceil(inChars / 4)
  const completionTokens = Math.max(1, Math.ceil(outChars / 4))
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens }
}

async function stream(
  text: string,
  onDelta: (t: string) => void | Promise<void>,
  delayMs: number,
  signal: AbortSignal,
) {
  // One delta per word, like a real model streams, so that clients see several chunks. Words are found one
  // at a time: a long answer is not turned into an array of all its words up front.
  const word = new RegExp(WORD.source, 'g')
  let first = true
  for (let m = word.exec(text); m !== null; m = word.exec(text)) {
    if (!first && delayMs > 0) await sleep(delayMs, signal)
    first = false
    // A slow reader pauses the stream, as a real upstream's would (by TCP).
    const paused = onDelta(m[0])
    if (paused !== undefined) {
      await paused
      signal.throwIfAborted()
    }
  }
  if (first) await onDelta(text)
}

const WORD = /\S+\s*|\s+/g

function words(text: string): string[] {
  return text.match(WORD) ?? [text]
}

function nonNegative(v: string | undefined): number {
  const n = Number(v)
  return Number.isFinite(n) && n > 0 ? n : 0
}
