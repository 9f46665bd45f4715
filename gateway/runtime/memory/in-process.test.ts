import { describe, expect, it } from 'vitest'
import type { ChatMessage } from '../messages.ts'
import { InProcessMemory } from './in-process.ts'
import { InvalidConversationError } from './memory.ts'

const live = new AbortController().signal
const user = (content: string): ChatMessage => ({ role: 'user', content })
const answer = (content: string): ChatMessage => ({ role: 'assistant', content })

function clock() {
  let t = 1_000_000
  return { now: () => t, advance: (seconds: number) => (t += seconds * 1000) }
}

describe('InProcessMemory', () => {
  it('remembers each conversation apart, oldest first', async () => {
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 0 } })
    await m.append('a', [user('1'), answer('2')], live)
    await m.append('b', [user('x')], live)
    await m.append('a', [user('3'), answer('4')], live)
    expect(await m.load('a', live)).toEqual([user('1'), answer('2'), user('3'), answer('4')])
    expect(await m.load('b', live)).toEqual([user('x')])
    expect(await m.load('never', live)).toEqual([])
  })

  it('keeps the newest maxEntries', async () => {
    const m = new InProcessMemory({ bounds: { maxEntries: 3, ttlSeconds: 0 } })
    await m.append('c', [user('1'), answer('2')], live)
    await m.append('c', [user('3'), answer('4')], live)
    expect(await m.load('c', live)).toEqual([answer('2'), user('3'), answer('4')])
    await m.append('c', [user('5'), answer('6'), user('7'), answer('8')], live)
    expect(await m.load('c', live)).toEqual([answer('6'), user('7'), answer('8')])
  })

  it('forgets a conversation ttlSeconds after its last write, not its first', async () => {
    const c = clock()
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 60 }, now: c.now })
    await m.append('c', [user('1')], live)
    c.advance(50)
    await m.append('c', [user('2')], live)
    c.advance(50)
    // 100 s after the first write, 50 s after the last: still there; reading does not extend it.
    expect(await m.load('c', live)).toEqual([user('1'), user('2')])
    c.advance(9)
    expect(await m.load('c', live)).toHaveLength(2)
    c.advance(1)
    expect(await m.load('c', live)).toEqual([])
    // An expired conversation written again starts afresh.
    await m.append('c', [user('3')], live)
    expect(await m.load('c', live)).toEqual([user('3')])
  })

  it('never expires with ttlSeconds 0', async () => {
    const c = clock()
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 0 }, now: c.now })
    await m.append('c', [user('1')], live)
    c.advance(10 * 365 * 86400)
    expect(await m.load('c', live)).toEqual([user('1')])
  })

  it('holds at most maxConversations, forgetting the least recently used', async () => {
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 0 }, maxConversations: 3 })
    for (const id of ['a', 'b', 'c']) await m.append(id, [user(id)], live)
    await m.load('a', live) // a is now the most recently used; b the least
    await m.append('d', [user('d')], live)
    expect(m.size).toBe(3)
    expect(await m.load('b', live)).toEqual([])
    expect(await m.load('a', live)).toEqual([user('a')])
    expect(await m.load('c', live)).toEqual([user('c')])
    expect(await m.load('d', live)).toEqual([user('d')])
  })

  it('bounds the bytes of one conversation, dropping the oldest messages', async () => {
    // {"role":"user","content":"xxxxxxxxxx"} is 39 bytes.
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 0 }, maxBytesPerConversation: 100 })
    const ten = (ch: string) => user(ch.repeat(10))
    await m.append('c', [ten('a'), ten('b')], live)
    expect(await m.load('c', live)).toEqual([ten('a'), ten('b')])
    await m.append('c', [ten('c')], live)
    expect(await m.load('c', live)).toEqual([ten('b'), ten('c')])
    // One message over the bound is not kept at all.
    await m.append('c', [user('z'.repeat(200))], live)
    expect(await m.load('c', live)).toEqual([])
  })

  it('a hostile client cannot grow it without end', async () => {
    const m = new InProcessMemory({
      bounds: { maxEntries: 0, ttlSeconds: 0 },
      maxConversations: 50,
      maxBytesPerConversation: 2000,
    })
    for (let i = 0; i < 500; i++) await m.append(`c${String(i % 100)}`, [user('x'.repeat(300))], live)
    expect(m.size).toBe(50)
    const kept = await m.load('c99', live)
    expect(kept.length).toBeGreaterThan(0)
    expect(JSON.stringify(kept).length).toBeLessThanOrEqual(2000)
  })

  it('bounds the bytes of all conversations, forgetting the least recently used first', async () => {
    const m = new InProcessMemory({
      bounds: { maxEntries: 0, ttlSeconds: 0 },
      maxBytesPerConversation: 10_000,
      maxTotalBytes: 5_000,
    })
    for (let i = 0; i < 40; i++) await m.append(`c${String(i)}`, [user('y'.repeat(500))], live)
    expect(m.bytes).toBeLessThanOrEqual(5_000)
    expect(m.size).toBeLessThan(40)
    expect(await m.load('c0', live)).toEqual([])
    expect(await m.load('c39', live)).toHaveLength(1)
    await m.close()
    expect(m.bytes).toBe(0)
  })

  it('keeps copies: a caller changing its messages afterwards changes nothing', async () => {
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 0 } })
    const mine = { role: 'user' as const, content: 'original' }
    await m.append('c', [mine], live)
    ;(mine as { content: string }).content = 'changed'
    const loaded = await m.load('c', live)
    ;(loaded[0] as { content: string }).content = 'changed too'
    expect(await m.load('c', live)).toEqual([user('original')])
  })

  it('refuses invalid conversation ids and aborted calls', async () => {
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 0 } })
    await expect(m.load('a\u0000', live)).rejects.toThrow(InvalidConversationError)
    await expect(m.append('', [user('x')], live)).rejects.toThrow(/empty/)
    const aborted = AbortSignal.abort()
    await expect(m.load('c', aborted)).rejects.toThrow(/abort/i)
  })

  it('close forgets everything', async () => {
    const m = new InProcessMemory({ bounds: { maxEntries: 0, ttlSeconds: 0 } })
    await m.append('c', [user('x')], live)
    await m.close()
    expect(m.size).toBe(0)
  })
})
