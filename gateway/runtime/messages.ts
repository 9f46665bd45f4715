/**
 * The conversation as the runtime sees it: OpenAI's chat message shapes, which every provider maps to and
 * from. They are plain JSON so that a task can cross a queue (Redis) unchanged.
 */
import type { JsonSchema } from '../../controller/api/index.ts'

export interface ToolCall {
  readonly id: string
  readonly type: 'function'
  readonly function: { readonly name: string; readonly arguments: string }
}

/** A part of a multi-part message. Text is what ark reads; other parts are passed to providers as given. */
export type ContentPart = { readonly type: 'text'; readonly text: string } | { readonly type: string }

export type ChatMessage =
  | { readonly role: 'system' | 'developer'; readonly content: string | readonly ContentPart[] }
  | { readonly role: 'user'; readonly content: string | readonly ContentPart[]; readonly name?: string }
  | AssistantMessage
  | { readonly role: 'tool'; readonly content: string; readonly tool_call_id: string }

export interface AssistantMessage {
  readonly role: 'assistant'
  readonly content: string | null
  /** Who spoke, where several did: a team member's name (OpenAI's `name`). */
  readonly name?: string
  readonly tool_calls?: readonly ToolCall[]
}

export interface ToolDefinition {
  readonly type: 'function'
  readonly function: { readonly name: string; readonly description?: string; readonly parameters: JsonSchema }
}

export interface Usage {
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalTokens: number
}

export const NO_USAGE: Usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0 }

export function addUsage(a: Usage, b: Usage): Usage {
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens,
  }
}

/** The text of a message's content: a string as is, the text parts of a multi-part content joined. */
export function textOf(content: string | null | readonly ContentPart[]): string {
  if (content === null) return ''
  if (typeof content === 'string') return content
  let out = ''
  for (const part of content) if ('text' in part && typeof part.text === 'string') out += part.text
  return out
}

/** Bytes of `s` in UTF-8, without encoding it. */
export function utf8Length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair is one code point of four bytes.
      n += 4
      i++
    } else n += 3
  }
  return n
}
