/**
 * What an MCP server says, as ark passes it on: tool entries of a tools/list answer checked one by one (a bad
 * entry skips that tool, not the list), tools/call results turned into the text a model reads, and errors
 * turned into one short line. Read from the SDK's loose result schema, so that nothing here depends on the
 * SDK knowing every content kind a server may send.
 */
import type { JsonSchema } from '../../../controller/api/index.ts'
import { utf8Length } from '../messages.ts'
import type { Redactor } from '../redactor.ts'
import type { ToolResult } from '../tools/tool.ts'

/** A tool as the server lists it, checked: a valid MCP tool name and an object inputSchema. */
export interface McpTool {
  readonly name: string
  /** The server's description (its `title` when it has none; else empty). */
  readonly description: string
  readonly inputSchema: JsonSchema
}

/** A system error code inside a message: `connect ECONNREFUSED 127.0.0.1:80`, `UND_ERR_SOCKET`. */
const SYSTEM_ERROR = /\b(E[A-Z]{4,}|UND_ERR_[A-Z_]+)\b/

/** An error's text: as much as a status line or a tool result should carry. */
export const MAX_ERROR_CHARS = 300
/** MCP tool names (spec 2025-11-25): 1 to 128 of these characters. */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * One entry of a tools/list answer (`index` counts from 1 across pages): a tool, or why it was skipped.
 * `names` holds the names taken so far; a second tool of a name is skipped.
 */
export function checkTool(entry: unknown, index: number, names: Set<string>): McpTool | string {
  if (!isRecord(entry)) return `tool #${index} skipped: not an object`
  const name = entry.name
  if (typeof name !== 'string' || name === '') return `tool #${index} skipped: it has no name`
  const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}...` : name)
  if (!TOOL_NAME.test(name)) {
    return `tool ${shown} skipped: a tool name is 1 to 128 of A-Z, a-z, 0-9, _, - and .`
  }
  const schema = entry.inputSchema
  if (!isRecord(schema) || schema.type !== 'object') {
    return `tool ${shown} skipped: its inputSchema is not a JSON Schema of type "object"`
  }
  const execution = entry.execution
  if (isRecord(execution) && execution.taskSupport === 'required') {
    return `tool ${shown} skipped: it can only run as an MCP task, which ark does not use`
  }
  if (names.has(name)) return `tool ${shown} skipped: the server lists another tool of that name first`
  names.add(name)
  const description =
    typeof entry.description === 'string'
      ? entry.description
      : typeof entry.title === 'string'
        ? entry.title
        : ''
  return { name, description, inputSchema: schema }
}

/**
 * A tools/call result as the model sees it: text parts joined with newlines; structuredContent as JSON when
 * there is no text; other parts named briefly (never their base64); secrets redacted; at most `maxBytes` of
 * UTF-8 (outcome too_large, with a note saying so).
 */
export function toToolResult(
  result: Readonly<Record<string, unknown>>,
  server: string,
  tool: string,
  maxBytes: number,
  redactor: Redactor,
): ToolResult {
  const parts: string[] = []
  let texts = 0
  const content: unknown = result.content
  if (Array.isArray(content)) {
    for (const block of content as unknown[]) {
      if (!isRecord(block)) continue
      if (block.type === 'text' && typeof block.text === 'string') {
        parts.push(block.text)
        texts++
      } else if (block.type !== 'text') parts.push(describeBlock(block))
    }
  }
  if (texts === 0 && result.structuredContent !== undefined) {
    parts.unshift(JSON.stringify(result.structuredContent))
  }
  const isError = result.isError === true
  const text = redactor.text(parts.join('\n'))
  const capped = capBytes(text, maxBytes, server, tool)
  if (capped !== undefined) return { content: capped, isError, outcome: 'too_large' }
  return isError ? { content: text, isError, outcome: 'error' } : { content: text }
}

/** A content part that is not text, in a few words: kind, type, size (a text resource keeps its text). */
function describeBlock(block: Readonly<Record<string, unknown>>): string {
  const str = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : undefined)
  const size = (data: unknown) =>
    typeof data === 'string' ? `, ${Math.floor((data.length * 3) / 4)} bytes` : ''
  const type = str(block.type) ?? 'unknown'
  switch (type) {
    case 'image':
    case 'audio':
      return `[${type}: ${str(block.mimeType) ?? 'unknown type'}${size(block.data)}]`
    case 'resource': {
      const r = isRecord(block.resource) ? block.resource : {}
      const mime = str(r.mimeType)
      const label = `[resource ${str(r.uri) ?? '(no uri)'}${mime === undefined ? '' : ` (${mime})`}`
      return typeof r.text === 'string' ? `${label}]\n${r.text}` : `${label}${size(r.blob)}]`
    }
    case 'resource_link':
      return `[resource link: ${str(block.name) ?? ''} ${str(block.uri) ?? '(no uri)'}]`
    default:
      return `[${type} content]`
  }
}

const encoder = new TextEncoder()

/** `text` cut to `max` UTF-8 bytes, note included, or undefined when it fits. */
function capBytes(text: string, max: number, server: string, tool: string): string | undefined {
  if (text.length * 3 <= max) return undefined
  const total = utf8Length(text)
  if (total <= max) return undefined
  const note = `\n[truncated: the MCP server ${server} returned ${total} bytes for ${tool}; ark keeps the first ${max}]`
  const room = Math.max(0, max - utf8Length(note))
  // encodeInto stops before a character that does not fit whole.
  const { read } = encoder.encodeInto(text, new Uint8Array(room))
  return text.slice(0, read) + note
}

/** One line of at most `max` characters. */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length <= max ? flat : `${flat.slice(0, max)}...`
}

/** A schema validation error (zod's): the answer was not what MCP says it is. */
export function isValidationError(err: unknown): err is { issues: unknown[] } {
  return isRecord(err) && Array.isArray(err.issues)
}

/**
 * An error as one short line: the system error code under a `fetch failed` (`ECONNREFUSED`), the first
 * issue of a schema validation, or the message.
 */
export function describe(err: unknown): string {
  if (isValidationError(err)) {
    const issue = err.issues[0]
    if (isRecord(issue)) {
      const path = Array.isArray(issue.path) ? issue.path.map(String).join('.') : ''
      const message = typeof issue.message === 'string' ? issue.message : 'invalid'
      return oneLine(
        path === ''
          ? `the answer is not a valid MCP message (${message})`
          : `the answer is not valid MCP at ${path}: ${message}`,
        MAX_ERROR_CHARS,
      )
    }
  }
  const messages: string[] = []
  let code: string | undefined
  let e: unknown = err
  for (let depth = 0; depth < 5 && isRecord(e); depth++) {
    if (typeof e.code === 'string') code = e.code
    if (typeof e.message === 'string' && e.message !== '' && e.message !== 'fetch failed') {
      messages.push(e.message)
    }
    e = e.cause
  }
  if (typeof err === 'string') messages.push(err)
  const last = messages.at(-1)
  // An error that quotes another as text (the SSE transport's `SSE error: TypeError: fetch failed: connect
  // ECONNREFUSED ...`): its system error code says it all.
  code ??= SYSTEM_ERROR.exec(last ?? '')?.[1]
  let text: string
  if (code !== undefined && (last === undefined || last.includes(code))) text = code
  else if (code !== undefined) text = `${last ?? ''} (${code})`
  else text = messages[0] ?? 'unknown error'
  return oneLine(text, MAX_ERROR_CHARS)
}
