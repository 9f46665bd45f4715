/**
 * Conversation memory: what an agent remembers of a conversation between requests. One interface with three
 * backends: in-process (`ark dev`, one process), Redis (gateway replicas that share conversations), and
 * HTTP (the memory service an ARK `Memory` resource points at). The runtime loads a conversation's history
 * before a run, fits it to the agent's token budget (trim.ts), and appends the exchange after the run.
 */
import type { ChatMessage } from '../messages.ts'

export interface ConversationMemory {
  /** The conversation's messages, oldest first (at most maxEntries, none older than the ttl). */
  load(conversation: string, signal: AbortSignal): Promise<ChatMessage[]>
  /**
   * Appends one exchange (the new user/tool messages and the answer) to the conversation. `query` names the
   * request or Query that produced it: ARK's memory service files messages under it (`query_id`); the
   * backends that do not group by query ignore it.
   */
  append(
    conversation: string,
    messages: readonly ChatMessage[],
    signal: AbortSignal,
    query?: string,
  ): Promise<void>
  close(): Promise<void>
}

export interface MemoryBounds {
  /** Messages kept per conversation, the newest; 0 = no limit of the resource's own (see HARD_MAX_ENTRIES). */
  readonly maxEntries: number
  /** A conversation nobody wrote to for this long is forgotten; 0 = never expires. */
  readonly ttlSeconds: number
}

/**
 * Messages ark keeps of one conversation whatever the resource says (`maxEntries: 0` included): a client
 * that keeps one conversation going forever must not grow a backend, or a load, without end.
 */
export const HARD_MAX_ENTRIES = 10_000

/** The entries a backend keeps and loads under `bounds`. */
export function entryLimit(bounds: MemoryBounds): number {
  return bounds.maxEntries > 0 ? Math.min(bounds.maxEntries, HARD_MAX_ENTRIES) : HARD_MAX_ENTRIES
}

/**
 * The backend is down, unreachable, too slow or answered nonsense: the run can go on without memory or
 * fail with a 503, the caller decides. The message names the memory and the reason, never a secret (header
 * values, credentials, a URL's query).
 */
export class MemoryUnavailableError extends Error {
  override readonly name = 'MemoryUnavailableError'
  /** The memory, as `namespace/name` or whatever label its owner gave it. */
  readonly memory: string

  constructor(memory: string, reason: string) {
    super(`memory ${memory} is unavailable: ${reason}`)
    this.memory = memory
  }
}

/** The conversation id a caller gave cannot be used (a 400 for the caller, not a backend problem). */
export class InvalidConversationError extends Error {
  override readonly name = 'InvalidConversationError'
}

export const MAX_CONVERSATION_ID_LENGTH = 256

// Control characters (C0, DEL, C1), format characters (bidi overrides that make a log line lie), lone
// surrogates, private-use and unassigned code points, and line/paragraph separators. An id ends up in
// Redis keys, URLs and logs; it has no reason to hold any of these.
const UNPRINTABLE = /[\p{C}\p{Zl}\p{Zp}]/u

/** What is wrong with a conversation id (user input), or undefined when it can be used. */
export function checkConversationId(id: string): string | undefined {
  if (id.length === 0) return 'the conversation id is empty'
  if (id.length > MAX_CONVERSATION_ID_LENGTH)
    return `the conversation id is ${String(id.length)} characters long; at most ${String(MAX_CONVERSATION_ID_LENGTH)} are allowed`
  if (id.trim().length === 0) return 'the conversation id is blank'
  const bad = UNPRINTABLE.exec(id)
  if (bad !== null) {
    const code = bad[0].codePointAt(0) ?? 0
    return `the conversation id holds an unprintable character (U+${code.toString(16).toUpperCase().padStart(4, '0')}) at position ${String(bad.index)}; use printable characters only`
  }
  return undefined
}

/** The id itself when it can be used; throws InvalidConversationError otherwise. */
export function conversationIdOrThrow(id: string): string {
  const problem = checkConversationId(id)
  if (problem !== undefined) throw new InvalidConversationError(problem)
  return id
}
