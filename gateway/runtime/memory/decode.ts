/**
 * Messages read back from a store are untrusted JSON: another ark version, another writer (ARK's controller,
 * a person with redis-cli) or a corruption may have put them there. They are rebuilt field by field into
 * ark's ChatMessage shapes, and what cannot be a message is reported as such (undefined), so that a backend
 * skips it rather than handing a provider a message it will refuse.
 */
import type { ChatMessage, ContentPart, ToolCall } from '../messages.ts'

type Json = Record<string, unknown>

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A string, or an array of parts each with a string `type` (text parts need a string `text`). */
function content(v: unknown): string | readonly ContentPart[] | undefined {
  if (typeof v === 'string') return v
  if (!Array.isArray(v)) return undefined
  const parts: ContentPart[] = []
  for (const p of v) {
    if (!isObject(p) || typeof p.type !== 'string') return undefined
    if (p.type === 'text' && typeof p.text !== 'string') return undefined
    parts.push(p as ContentPart)
  }
  return parts
}

function textOfParts(parts: readonly ContentPart[]): string {
  let out = ''
  for (const p of parts) if ('text' in p && typeof p.text === 'string') out += p.text
  return out
}

function toolCalls(v: unknown): readonly ToolCall[] | undefined | false {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) return false
  const calls: ToolCall[] = []
  for (const c of v) {
    if (!isObject(c) || typeof c.id !== 'string' || !isObject(c.function)) return false
    const { name, arguments: args } = c.function
    if (typeof name !== 'string' || typeof args !== 'string') return false
    calls.push({ id: c.id, type: 'function', function: { name, arguments: args } })
  }
  return calls.length === 0 ? undefined : calls
}

/** A2A messages (`{role: 'user'|'agent', parts: [{kind: 'text', text}]}`), which ARK's A2A-era controller stored. */
function a2aText(parts: unknown): string | undefined {
  if (!Array.isArray(parts)) return undefined
  let out = ''
  for (const p of parts) {
    if (!isObject(p)) return undefined
    if ((p.kind === 'text' || p.type === 'text') && typeof p.text === 'string') out += p.text
  }
  return out
}

/** The message `v` stands for, or undefined when it cannot be one. */
export function decodeMessage(v: unknown): ChatMessage | undefined {
  if (!isObject(v) || typeof v.role !== 'string') return undefined
  const role = v.role
  if (v.content === undefined && v.parts !== undefined) {
    const text = a2aText(v.parts)
    if (text === undefined) return undefined
    return role === 'agent' || role === 'assistant'
      ? { role: 'assistant', content: text }
      : { role: 'user', content: text }
  }
  switch (role) {
    case 'system':
    case 'developer': {
      const c = content(v.content)
      return c === undefined ? undefined : { role, content: c }
    }
    case 'assistant': {
      const calls = toolCalls(v.tool_calls)
      if (calls === false) return undefined
      const c = v.content === undefined || v.content === null ? null : content(v.content)
      if (c === undefined) return undefined
      const text = c === null || typeof c === 'string' ? c : textOfParts(c)
      // An assistant message says something or calls something; one that does neither is no message.
      if (calls === undefined && (text === null || text === '')) return undefined
      return calls === undefined ? { role, content: text } : { role, content: text, tool_calls: calls }
    }
    case 'tool': {
      const c = content(v.content)
      if (c === undefined || typeof v.tool_call_id !== 'string') return undefined
      return { role, content: typeof c === 'string' ? c : textOfParts(c), tool_call_id: v.tool_call_id }
    }
    case 'function':
      // OpenAI's deprecated function role has no place in a conversation ark sends.
      return undefined
    default: {
      // `user`, and (as ARK's controller does) any role it does not know, read as the user's words.
      const c = content(v.content)
      if (c === undefined) return undefined
      return typeof v.name === 'string' && role === 'user'
        ? { role: 'user', content: c, name: v.name }
        : { role: 'user', content: c }
    }
  }
}

/** A stored entry (JSON text) as a message, or undefined when it is not one. */
export function parseMessage(text: string): ChatMessage | undefined {
  try {
    return decodeMessage(JSON.parse(text))
  } catch {
    return undefined
  }
}
