/**
 * Conversation memory in Redis, shared by every gateway replica: one list per conversation, one JSON message
 * per entry, under `<prefix>:memory:<scope>:<conversation>` (the scope, e.g. `namespace/memory-name`, is
 * URI-encoded so that it holds no `:` and two scopes never share a key).
 *
 * append: MULTI RPUSH (the messages) + LTRIM (keep the newest maxEntries) + EXPIRE (ttlSeconds, counted from
 * the last write; PERSIST when there is none), so that replicas appending to one conversation at once each
 * add their exchange whole and the bounds hold after every write. load: LRANGE of the newest maxEntries; an
 * entry that is not a message (corrupt, written by hand) is skipped.
 */
import { Redis } from 'ioredis'
import type { Logger } from '../../log.ts'
import type { ChatMessage } from '../messages.ts'
import { parseMessage } from './decode.ts'
import type { ConversationMemory, MemoryBounds } from './memory.ts'
import { MemoryUnavailableError, conversationIdOrThrow, entryLimit } from './memory.ts'
import { redactedUrl } from '../../log.ts'

/** A command Redis does not answer in this time fails (without it ioredis waits forever on a hung Redis). */
const COMMAND_TIMEOUT_MS = 2000
/** How long a call waits for the very first connection before it answers that Redis is down. */
const FIRST_CONNECT_WAIT_MS = 1000

export interface RedisMemoryOptions {
  /**
   * A Redis URL (the memory opens and closes its own connection, with a command timeout), or a connection
   * its owner shares and closes. A shared connection should have `commandTimeout` set: it is what keeps a
   * Redis that stops answering from holding a run.
   */
  readonly redis: string | Redis
  /** Whose conversations these are, e.g. `namespace/memory-name`; part of every key. */
  readonly scope: string
  readonly bounds: MemoryBounds
  /** Key prefix (default `ark`). */
  readonly prefix?: string
  /** How errors and logs name this memory (default the scope). */
  readonly name?: string
  readonly log?: Logger
}

export class RedisMemory implements ConversationMemory {
  readonly #redis: Redis
  readonly #owned: boolean
  readonly #keyPrefix: string
  readonly #name: string
  readonly #limit: number
  readonly #ttlSeconds: number
  readonly #log: Logger | undefined
  #everReady: boolean
  /** One promise for every call that waits for the first connection (not a listener each). */
  readonly #firstReady: Promise<void>

  constructor(options: RedisMemoryOptions) {
    this.#name = options.name ?? options.scope
    this.#keyPrefix = `${options.prefix ?? 'ark'}:memory:${encodeURIComponent(options.scope)}:`
    this.#limit = entryLimit(options.bounds)
    this.#ttlSeconds = Math.max(0, Math.floor(options.bounds.ttlSeconds))
    this.#log = options.log
    if (typeof options.redis === 'string') {
      this.#redis = RedisMemory.connect(options.redis, this.#name, options.log)
      this.#owned = true
    } else {
      this.#redis = options.redis
      this.#owned = false
    }
    this.#everReady = this.#redis.status === 'ready'
    this.#firstReady = new Promise((resolve) =>
      this.#redis.once('ready', () => {
        this.#everReady = true
        resolve()
      }),
    )
  }

  /**
   * A connection as memories use one: a call fails at once while Redis is away (no offline queue) and within
   * COMMAND_TIMEOUT_MS when it stops answering; one warning per kind of failure, without the password.
   * Shared by several memories (they do not close it), or owned by one made from a URL.
   */
  static connect(url: string, name = 'memory', log?: Logger): Redis {
    const redis = new Redis(url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: COMMAND_TIMEOUT_MS,
    })
    let reported = ''
    // ioredis's messages name the host and the failure (ECONNREFUSED, WRONGPASS), never the password.
    redis.on('error', (err: Error) => {
      if (err.message === reported) return
      reported = err.message
      log?.warn('memory unreachable', { memory: name, redis: redactedUrl(url), error: err.message })
    })
    redis.on('ready', () => (reported = ''))
    return redis
  }

  /** The Redis key of a conversation. */
  key(conversation: string): string {
    return this.#keyPrefix + conversation
  }

  async load(conversation: string, signal: AbortSignal): Promise<ChatMessage[]> {
    const key = this.key(conversationIdOrThrow(conversation))
    await this.#ready(signal)
    let entries: string[]
    try {
      entries = await this.#redis.lrange(key, -this.#limit, -1)
    } catch (err) {
      throw this.#unavailable(err)
    }
    const out: ChatMessage[] = []
    let skipped = 0
    for (const e of entries) {
      const m = parseMessage(e)
      if (m === undefined) skipped++
      else out.push(m)
    }
    if (skipped > 0)
      this.#log?.warn('memory entries skipped: not chat messages', { memory: this.#name, skipped })
    return out
  }

  async append(conversation: string, messages: readonly ChatMessage[], signal: AbortSignal): Promise<void> {
    const key = this.key(conversationIdOrThrow(conversation))
    if (messages.length === 0) return
    await this.#ready(signal)
    const tx = this.#redis
      .multi()
      .rpush(key, ...messages.map((m) => JSON.stringify(m)))
      .ltrim(key, -this.#limit, -1)
    if (this.#ttlSeconds > 0) tx.expire(key, this.#ttlSeconds)
    else tx.persist(key)
    let replies: [error: Error | null, result: unknown][] | null
    try {
      replies = await tx.exec()
    } catch (err) {
      throw this.#unavailable(err)
    }
    // exec answers null when the transaction was discarded, and an error per command that failed (WRONGTYPE).
    if (replies === null) throw new MemoryUnavailableError(this.#name, 'Redis discarded the write')
    for (const [err] of replies) if (err !== null) throw this.#unavailable(err)
  }

  async close(): Promise<void> {
    if (!this.#owned) return
    try {
      await this.#redis.quit()
    } catch {
      this.#redis.disconnect()
    }
  }

  async #ready(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted()
    if (this.#redis.status === 'ready') return
    const down = new MemoryUnavailableError(this.#name, 'Redis is not reachable; retry shortly')
    // It was up and went away: answer now. Only the very first connection is worth a short wait.
    if (this.#everReady || this.#redis.status === 'end') throw down
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<'late'>(
      (resolve) => (timer = setTimeout(() => resolve('late'), FIRST_CONNECT_WAIT_MS)),
    )
    const outcome = await Promise.race([this.#firstReady, late])
    clearTimeout(timer)
    if (outcome === 'late') throw down
    signal.throwIfAborted()
  }

  /**
   * What a caller is told of a failed command: the kind of failure, not ioredis's words, which can name
   * internal hosts and addresses; those go to the log.
   */
  #unavailable(err: unknown): MemoryUnavailableError {
    const detail = err instanceof Error ? err.message : String(err)
    this.#log?.warn('memory command failed', { memory: this.#name, error: detail })
    const reason = /timed? ?out/i.test(detail)
      ? 'Redis did not answer in time'
      : detail.startsWith('WRONGTYPE')
        ? 'Redis holds something else under the conversation key (WRONGTYPE)'
        : 'Redis refused the command'
    return new MemoryUnavailableError(this.#name, reason)
  }
}
