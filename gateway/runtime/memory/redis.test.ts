import type { AddressInfo, Server, Socket } from 'node:net'
import { connect, createServer } from 'node:net'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { RedisServer } from '../../../test/redis-server.ts'
import { startRedis } from '../../../test/redis-server.ts'
import type { ChatMessage } from '../messages.ts'
import { InvalidConversationError, MemoryUnavailableError } from './memory.ts'
import type { RedisMemoryOptions } from './redis.ts'
import { RedisMemory } from './redis.ts'

const live = new AbortController().signal
const user = (content: string): ChatMessage => ({ role: 'user', content })
const answer = (content: string): ChatMessage => ({ role: 'assistant', content })
const unbounded = { maxEntries: 0, ttlSeconds: 0 }

/** Rejects when `p` has not settled in `ms`: "fails quickly" is asserted as "does not hang", not as a time. */
function settlesWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${String(ms)} ms`)), ms)
  })
  return Promise.race([p, hang]).finally(() => clearTimeout(timer))
}

let server: RedisServer
let admin: Redis
const opened: RedisMemory[] = []
let scopes = 0

function memory(options: Partial<RedisMemoryOptions> = {}): RedisMemory {
  const m = new RedisMemory({
    redis: server.url,
    scope: `ns/mem-${String(++scopes)}`,
    bounds: unbounded,
    ...options,
  })
  opened.push(m)
  return m
}

beforeAll(async () => {
  server = await startRedis()
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
})

afterEach(async () => {
  await Promise.all(opened.splice(0).map((m) => m.close()))
})

afterAll(async () => {
  admin.disconnect()
  await server.stop()
})

describe('RedisMemory', () => {
  it('two instances on one Redis (two gateway replicas) see each other’s writes', async () => {
    const a = memory({ scope: 'team/shared' })
    const b = memory({ scope: 'team/shared' })
    await a.append('conv', [user('from a'), answer('a says')], live)
    await b.append('conv', [user('from b'), answer('b says')], live)
    const want = [user('from a'), answer('a says'), user('from b'), answer('b says')]
    expect(await b.load('conv', live)).toEqual(want)
    expect(await a.load('conv', live)).toEqual(want)
    expect(await a.load('other', live)).toEqual([])
  })

  it('keeps scopes apart, even when a conversation id holds the separator', async () => {
    const one = memory({ scope: 'a' })
    const two = memory({ scope: 'a:b' })
    await one.append('b:c', [user('scope a')], live)
    await two.append('c', [user('scope a:b')], live)
    expect(await one.load('b:c', live)).toEqual([user('scope a')])
    expect(await two.load('c', live)).toEqual([user('scope a:b')])
    expect(one.key('b:c')).toBe('ark:memory:a:b:c')
    expect(two.key('c')).toBe('ark:memory:a%3Ab:c')
  })

  it('stores one JSON message per list entry under the prefix', async () => {
    const m = memory({ scope: 'ns/plain', prefix: 'test' })
    await m.append('c1', [user('hi'), answer('hello')], live)
    expect(await admin.lrange('test:memory:ns%2Fplain:c1', 0, -1)).toEqual([
      JSON.stringify(user('hi')),
      JSON.stringify(answer('hello')),
    ])
  })

  it('keeps the newest maxEntries', async () => {
    const m = memory({ bounds: { maxEntries: 3, ttlSeconds: 0 } })
    await m.append('c', [user('1'), answer('2')], live)
    await m.append('c', [user('3'), answer('4')], live)
    expect(await m.load('c', live)).toEqual([answer('2'), user('3'), answer('4')])
    expect(await admin.llen(m.key('c'))).toBe(3)
  })

  it('loads only the newest maxEntries of a longer list (written by a replica with other bounds)', async () => {
    const wide = memory({ scope: 'ns/bounds' })
    const narrow = memory({ scope: 'ns/bounds', bounds: { maxEntries: 2, ttlSeconds: 0 } })
    await wide.append('c', [user('1'), answer('2'), user('3')], live)
    expect(await narrow.load('c', live)).toEqual([answer('2'), user('3')])
  })

  it('sets the TTL on every write, and clears it when there is none', async () => {
    const m = memory({ scope: 'ns/ttl', bounds: { maxEntries: 0, ttlSeconds: 120 } })
    await m.append('c', [user('1')], live)
    const ttl = await admin.ttl(m.key('c'))
    expect(ttl).toBeGreaterThan(100)
    expect(ttl).toBeLessThanOrEqual(120)
    await admin.expire(m.key('c'), 5)
    await m.append('c', [user('2')], live)
    expect(await admin.ttl(m.key('c'))).toBeGreaterThan(100)
    const forever = memory({ scope: 'ns/ttl', bounds: unbounded })
    await forever.append('c', [user('3')], live)
    expect(await admin.ttl(m.key('c'))).toBe(-1)
  })

  it('a conversation Redis expired loads as empty', async () => {
    const m = memory({ bounds: { maxEntries: 0, ttlSeconds: 1 } })
    await m.append('c', [user('1')], live)
    await admin.pexpire(m.key('c'), 1)
    await new Promise((r) => setTimeout(r, 20))
    expect(await m.load('c', live)).toEqual([])
  })

  it('skips a corrupt entry instead of failing the load', async () => {
    const warnings: Record<string, unknown>[] = []
    const log = {
      debug() {},
      info() {},
      error() {},
      warn: (_: string, f?: Record<string, unknown>) => warnings.push(f ?? {}),
    }
    const m = memory({ log })
    await m.append('c', [user('before')], live)
    await admin.rpush(m.key('c'), '{"role":"user","content":', '42', '{"role":"tool","content":"x"}')
    await m.append('c', [answer('after')], live)
    expect(await m.load('c', live)).toEqual([user('before'), answer('after')])
    expect(warnings).toContainEqual(expect.objectContaining({ skipped: 3 }))
  })

  it('a key of another type is a MemoryUnavailableError, not a crash', async () => {
    const m = memory({ name: 'ns/broken' })
    await admin.set(m.key('c'), 'a string')
    await expect(m.load('c', live)).rejects.toThrow(MemoryUnavailableError)
    await expect(m.append('c', [user('x')], live)).rejects.toThrow(
      'memory ns/broken is unavailable: Redis holds something else under the conversation key (WRONGTYPE)',
    )
  })

  it('refuses invalid conversation ids before touching Redis', async () => {
    const m = memory()
    await expect(m.load('bad\nid', live)).rejects.toThrow(InvalidConversationError)
    await expect(m.append('x'.repeat(300), [user('x')], live)).rejects.toThrow(InvalidConversationError)
  })

  it('works on a connection its owner shares, and leaves it open', async () => {
    const shared = new Redis(server.url, { commandTimeout: 2000 })
    const m = new RedisMemory({ redis: shared, scope: 'ns/shared-conn', bounds: unbounded })
    await m.append('c', [user('x')], live)
    expect(await m.load('c', live)).toEqual([user('x')])
    await m.close()
    expect(await shared.ping()).toBe('PONG')
    shared.disconnect()
  })
})

describe('RedisMemory when Redis is gone', () => {
  it('answers MemoryUnavailableError at once, and works again when Redis is back', async () => {
    const m = memory({ name: 'ns/flaky' })
    await m.append('c', [user('x')], live)
    await server.stop()
    try {
      const load = settlesWithin(m.load('c', live), 5000)
      await expect(load).rejects.toThrow(MemoryUnavailableError)
      await expect(load).rejects.toThrow(/memory ns\/flaky is unavailable/)
      await expect(settlesWithin(m.append('c', [user('y')], live), 5000)).rejects.toThrow(
        MemoryUnavailableError,
      )
    } finally {
      await server.restart()
    }
    // The server restarted empty; the client reconnected by itself.
    await expect
      .poll(
        async () =>
          m.load('c', live).then(
            () => 'ok',
            () => 'down',
          ),
        { timeout: 10_000 },
      )
      .toBe('ok')
  })

  it('a Redis that never answered: MemoryUnavailableError after the first-connection wait', async () => {
    const m = new RedisMemory({ redis: 'redis://127.0.0.1:1', scope: 'ns/none', bounds: unbounded })
    try {
      await expect(settlesWithin(m.load('c', live), 5000)).rejects.toThrow(/Redis is not reachable/)
    } finally {
      await m.close()
    }
  })

  describe('a Redis that accepts connections and never answers', () => {
    let mute: Server
    const sockets: Socket[] = []
    beforeAll(async () => {
      mute = createServer((s) => sockets.push(s))
      await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve))
    })
    afterAll(async () => {
      for (const s of sockets) s.destroy()
      await new Promise((r) => mute.close(r))
    })

    it('does not hold a call: MemoryUnavailableError, not a hang', async () => {
      const { port } = mute.address() as AddressInfo
      const m = new RedisMemory({
        redis: `redis://127.0.0.1:${String(port)}`,
        scope: 'ns/mute',
        bounds: unbounded,
      })
      try {
        await expect(settlesWithin(m.load('c', live), 5000)).rejects.toThrow(MemoryUnavailableError)
      } finally {
        await m.close()
      }
    })

    it('a shared connection that was ready and then hung: its commandTimeout ends the call', async () => {
      // A proxy that forwards to the real Redis until it is told to swallow everything.
      let swallowing = false
      const proxy = createServer((client) => {
        const upstream = connect(server.port, '127.0.0.1')
        client.on('data', (d: Buffer) => {
          if (!swallowing) upstream.write(d)
        })
        upstream.on('data', (d: Buffer) => client.write(d))
        client.on('error', () => upstream.destroy())
        upstream.on('error', () => client.destroy())
        client.on('close', () => upstream.destroy())
        sockets.push(client, upstream)
      })
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
      const { port } = proxy.address() as AddressInfo
      const shared = new Redis({ port, host: '127.0.0.1', commandTimeout: 300, maxRetriesPerRequest: 0 })
      shared.on('error', () => {})
      const m = new RedisMemory({ redis: shared, scope: 'ns/hung', bounds: unbounded })
      try {
        await m.append('c', [user('x')], live)
        swallowing = true
        const load = settlesWithin(m.load('c', live), 5000)
        await expect(load).rejects.toThrow(MemoryUnavailableError)
        await expect(load).rejects.toThrow('memory ns/hung is unavailable: Redis did not answer in time')
      } finally {
        shared.disconnect()
        await new Promise((r) => proxy.close(r))
      }
    })
  })
})
