/**
 * Which memory a run uses, and the backend behind each Memory resource. A run remembers when its caller
 * names a conversation and a Memory applies, looked up as ARK does and then as ark-operator does:
 *
 * 1. the Memory the request names (a Query's `spec.memory`);
 * 2. the agent's own (ArkAgent `memoryRef`);
 * 3. the Memory named `default` in the target's namespace (ARK);
 * 4. none: the conversation id is ignored, the run sees only what the caller sent.
 *
 * Backends, by the resource's kind:
 * - ARK `Memory`: the HTTP memory service at its address (http.ts), with its headers;
 * - ArkMemory `in-context`: this process's memory (InProcessMemory) in `ark dev`; where pools are on Redis,
 *   a list per conversation on that Redis, so that every gateway replica sees the same conversation;
 * - ArkMemory `redis`: the Redis its Secret's REDIS_URL names, with the resource's ttlSeconds and maxEntries;
 * - ArkMemory `vector-store`: not served (the Memory is not Available and says so; a run that would use it is
 *   refused with that reason).
 *
 * A backend is made on first use and kept while the values it resolves (address, headers, Redis URL, bounds)
 * stay the same, whatever else of its resource changes.
 */
import type { Redis } from 'ioredis'
import type { ObjectRef, ResourceOf } from '../../../controller/api/index.ts'
import type { Catalog } from '../../../controller/store/index.ts'
import type { Logger } from '../../log.ts'
import type { Fetch } from '../provider.ts'
import { HttpMemory } from './http.ts'
import { InProcessMemory } from './in-process.ts'
import type { ConversationMemory, MemoryBounds } from './memory.ts'
import { MemoryUnavailableError } from './memory.ts'
import { RedisMemory } from './redis.ts'

/**
 * ArkMemory `in-context` has no bounds of its own: the newest 200 messages are kept (more than any budget
 * sends back), and a day of quiet ends a conversation.
 */
const IN_CONTEXT_BOUNDS: MemoryBounds = { maxEntries: 200, ttlSeconds: 24 * 3600 }

/** Pages of ARK's memory service one load reads at most (1,000 messages each): past them it fails. */
const HTTP_MAX_PAGES = 5

export interface MemoriesOptions {
  readonly catalog: Catalog
  /** The pools' Redis: in-context memories live there, shared by replicas. Absent: in this process. */
  readonly redis?: { readonly url: string; readonly prefix?: string }
  readonly fetch: Fetch
  readonly log: Logger
}

interface Held {
  /** The values the backend was made with (address, headers, Redis URL): a change makes a new one. */
  readonly fingerprint: string
  readonly backend: ConversationMemory
}

export class Memories {
  readonly #options: MemoriesOptions
  readonly #held = new Map<string, Held>()
  #shared: Redis | undefined

  constructor(options: MemoriesOptions) {
    this.#options = options
  }

  /** The Memory a run in `namespace` uses (see the file's comment), or undefined for none. */
  resolve(
    namespace: string,
    explicit: ObjectRef | undefined,
    agent: ResourceOf<'Agent'> | undefined,
  ): ResourceOf<'Memory'> | { readonly missing: ObjectRef } | undefined {
    const { catalog } = this.#options
    const named = explicit ?? agent?.spec.memory
    if (named !== undefined) return catalog.get('Memory', named) ?? { missing: named }
    return catalog.get('Memory', { namespace, name: 'default' })
  }

  /** The backend of a Memory; throws MemoryUnavailableError when it cannot have one (what is wrong, no secret). */
  backend(memory: ResourceOf<'Memory'>): ConversationMemory {
    const name = `${memory.ref.namespace}/${memory.ref.name}`
    const config = this.#config(memory, name)
    const held = this.#held.get(memory.key)
    // Same values, same backend: a change elsewhere in the resource (its description) keeps what it holds.
    if (held !== undefined && held.fingerprint === config.fingerprint) return held.backend
    if (held !== undefined) void held.backend.close().catch(() => undefined)
    const backend = config.make()
    this.#held.set(memory.key, { fingerprint: config.fingerprint, backend })
    return backend
  }

  async close(): Promise<void> {
    const all = [...this.#held.values()]
    this.#held.clear()
    await Promise.allSettled(all.map((h) => h.backend.close()))
    this.#shared?.disconnect()
    this.#shared = undefined
  }

  #config(
    memory: ResourceOf<'Memory'>,
    name: string,
  ): { fingerprint: string; make: () => ConversationMemory } {
    const { catalog, fetch, log } = this.#options
    const ns = memory.ref.namespace
    const spec = memory.spec
    const read = (what: string, source: Parameters<Catalog['resolveValue']>[1]): string | undefined => {
      const v = catalog.resolveValue(ns, source)
      if (!v.ok) throw new MemoryUnavailableError(name, `${what}: ${v.message}`)
      return v.value
    }
    switch (spec.backend) {
      case 'http': {
        const address = spec.address === undefined ? undefined : read('address', spec.address)
        if (address === undefined || address === '')
          throw new MemoryUnavailableError(name, 'it has no address')
        const headers: Record<string, string> = {}
        for (const h of spec.headers) {
          const value = read(`header ${h.name}`, h.source)
          if (value !== undefined) headers[h.name] = value
        }
        return {
          fingerprint: JSON.stringify([address, headers]),
          make: () => new HttpMemory({ name, address, headers, fetch, maxPages: HTTP_MAX_PAGES }),
        }
      }
      case 'in-context': {
        const redis = this.#options.redis
        if (redis === undefined)
          return { fingerprint: 'in-process', make: () => new InProcessMemory({ bounds: IN_CONTEXT_BOUNDS }) }
        return {
          fingerprint: 'shared-redis',
          make: () =>
            new RedisMemory({
              redis: this.#sharedRedis(redis.url),
              scope: name,
              bounds: IN_CONTEXT_BOUNDS,
              name,
              log,
              ...(redis.prefix === undefined ? {} : { prefix: redis.prefix }),
            }),
        }
      }
      case 'redis': {
        const r = spec.redis
        if (r === undefined) throw new MemoryUnavailableError(name, 'it has no redis settings')
        const url = read('REDIS_URL', { secretKeyRef: { name: r.secretName, key: 'REDIS_URL' } })
        if (url === undefined || url === '')
          throw new MemoryUnavailableError(name, `Secret ${r.secretName} has no REDIS_URL`)
        const bounds: MemoryBounds = { maxEntries: r.maxEntries ?? 0, ttlSeconds: r.ttlSeconds }
        return {
          fingerprint: JSON.stringify([url, bounds]),
          make: () => new RedisMemory({ redis: url, scope: name, bounds, name, log }),
        }
      }
      case 'vector-store':
        throw new MemoryUnavailableError(
          name,
          'the vector-store backend is not supported by this version of ark; use in-context or redis',
        )
    }
  }

  /** One connection for every in-context memory on the pools' Redis, made on first use. */
  #sharedRedis(url: string): Redis {
    if (this.#shared === undefined) this.#shared = RedisMemory.connect(url)
    return this.#shared
  }
}
