/**
 * Conversation memory held in this process (`ark dev`, one gateway): a Map of conversations. Everything in it
 * is bounded, because conversation ids come from clients: messages per conversation (maxEntries), bytes per
 * conversation, conversations held and bytes held in all (least recently used go first). Expiry costs no timer: a
 * conversation not written to for ttlSeconds is dropped when it is next read, or evicted as the least
 * recently used.
 */
import type { ChatMessage } from '../messages.ts'
import { utf8Length } from '../messages.ts'
import type { ConversationMemory, MemoryBounds } from './memory.ts'
import { conversationIdOrThrow, entryLimit } from './memory.ts'

export const DEFAULT_MAX_CONVERSATIONS = 10_000
export const DEFAULT_MAX_BYTES_PER_CONVERSATION = 1024 * 1024
export const DEFAULT_MAX_TOTAL_BYTES = 64 * 1024 * 1024

export interface InProcessMemoryOptions {
  readonly bounds: MemoryBounds
  /** Conversations held; past it the least recently used is forgotten (default 10,000). */
  readonly maxConversations?: number
  /** Bytes (UTF-8 JSON) one conversation may hold; past it its oldest messages go (default 1 MiB). */
  readonly maxBytesPerConversation?: number
  /** Bytes all conversations may hold; past it the least recently used are forgotten (default 64 MiB). */
  readonly maxTotalBytes?: number
  /** Milliseconds since the epoch (tests move it). */
  readonly now?: () => number
}

interface Conversation {
  /** Each message as JSON: a caller that changes its objects afterwards cannot change the memory. */
  readonly entries: string[]
  readonly sizes: number[]
  bytes: number
  written: number
}

export class InProcessMemory implements ConversationMemory {
  /** In least-recently-used order: a touched conversation is moved to the end. */
  readonly #conversations = new Map<string, Conversation>()
  readonly #limit: number
  readonly #ttlMs: number
  readonly #maxConversations: number
  readonly #maxBytes: number
  readonly #maxTotalBytes: number
  /** Bytes of every conversation held. */
  #totalBytes = 0
  readonly #now: () => number

  constructor(options: InProcessMemoryOptions) {
    this.#limit = entryLimit(options.bounds)
    this.#ttlMs = Math.max(0, options.bounds.ttlSeconds) * 1000
    this.#maxConversations = Math.max(1, options.maxConversations ?? DEFAULT_MAX_CONVERSATIONS)
    this.#maxBytes = Math.max(1, options.maxBytesPerConversation ?? DEFAULT_MAX_BYTES_PER_CONVERSATION)
    this.#maxTotalBytes = Math.max(1, options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES)
    this.#now = options.now ?? Date.now
  }

  /** Conversations held now (expired ones included until they are read or evicted). */
  get size(): number {
    return this.#conversations.size
  }

  // The work is synchronous; a Promise's executor turns what it throws (a bad id, an abort) into a rejection.
  load(conversation: string, signal: AbortSignal): Promise<ChatMessage[]> {
    return new Promise((resolve) => resolve(this.#load(conversation, signal)))
  }

  append(conversation: string, messages: readonly ChatMessage[], signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      this.#append(conversation, messages, signal)
      resolve()
    })
  }

  /** Bytes held in all (for tests). */
  get bytes(): number {
    return this.#totalBytes
  }

  close(): Promise<void> {
    this.#conversations.clear()
    this.#totalBytes = 0
    return Promise.resolve()
  }

  #load(conversation: string, signal: AbortSignal): ChatMessage[] {
    signal.throwIfAborted()
    const c = this.#live(conversationIdOrThrow(conversation))
    return c === undefined ? [] : c.entries.map((e) => JSON.parse(e) as ChatMessage)
  }

  #append(conversation: string, messages: readonly ChatMessage[], signal: AbortSignal): void {
    signal.throwIfAborted()
    const id = conversationIdOrThrow(conversation)
    if (messages.length === 0) return
    const c = this.#live(id) ?? { entries: [], sizes: [], bytes: 0, written: 0 }
    const before = c.bytes
    for (const m of messages) {
      const entry = JSON.stringify(m)
      const size = utf8Length(entry)
      c.entries.push(entry)
      c.sizes.push(size)
      c.bytes += size
    }
    // Oldest first, until both bounds hold; a single message over the byte bound is not kept either.
    let drop = 0
    let bytes = c.bytes
    while (drop < c.entries.length && (c.entries.length - drop > this.#limit || bytes > this.#maxBytes)) {
      bytes -= c.sizes[drop] ?? 0
      drop++
    }
    if (drop > 0) {
      c.entries.splice(0, drop)
      c.sizes.splice(0, drop)
      c.bytes = bytes
    }
    c.written = this.#now()
    this.#totalBytes += c.bytes - before
    this.#conversations.delete(id)
    this.#conversations.set(id, c)
    for (const [oldest, o] of this.#conversations) {
      if (this.#conversations.size <= this.#maxConversations && this.#totalBytes <= this.#maxTotalBytes) break
      if (oldest === id) break
      this.#conversations.delete(oldest)
      this.#totalBytes -= o.bytes
    }
  }

  /** The conversation if it is held and has not expired, marked as the most recently used. */
  #live(id: string): Conversation | undefined {
    const c = this.#conversations.get(id)
    if (c === undefined) return undefined
    this.#conversations.delete(id)
    if (this.#ttlMs > 0 && this.#now() - c.written >= this.#ttlMs) {
      this.#totalBytes -= c.bytes
      return undefined
    }
    this.#conversations.set(id, c)
    return c
  }
}
