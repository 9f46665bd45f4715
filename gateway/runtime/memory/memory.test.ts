import { describe, expect, it } from 'vitest'
import { utf8Length } from '../messages.ts'
import { decodeMessage, parseMessage } from './decode.ts'
import {
  InvalidConversationError,
  MemoryUnavailableError,
  checkConversationId,
  conversationIdOrThrow,
  entryLimit,
} from './memory.ts'

describe('checkConversationId', () => {
  it('accepts ordinary ids, unicode included', () => {
    for (const id of ['conv-1', 'a', 'user:42/thread 7', 'Ünïcødé 会話 🚀', 'x'.repeat(256)])
      expect(checkConversationId(id), id).toBeUndefined()
  })

  it('says what is wrong with an empty, blank, long or unprintable id', () => {
    expect(checkConversationId('')).toMatch(/empty/)
    expect(checkConversationId('   ')).toMatch(/blank/)
    expect(checkConversationId('x'.repeat(257))).toMatch(/257 characters long; at most 256/)
    expect(checkConversationId('a\nb')).toMatch(/U\+000A\) at position 1/)
    expect(checkConversationId('a\u0000')).toMatch(/U\+0000/)
    expect(checkConversationId('\u007f')).toMatch(/U\+007F/)
    expect(checkConversationId('a\u0085')).toMatch(/U\+0085/) // C1
    expect(checkConversationId('evil\u202Etxt')).toMatch(/U\+202E/) // bidi override
    expect(checkConversationId('a\u2028b')).toMatch(/U\+2028/)
    expect(checkConversationId('lone \uD800')).toMatch(/U\+D800/)
  })

  it('conversationIdOrThrow throws InvalidConversationError with that message', () => {
    expect(conversationIdOrThrow('ok')).toBe('ok')
    expect(() => conversationIdOrThrow('bad\r')).toThrow(InvalidConversationError)
    expect(() => conversationIdOrThrow('bad\r')).toThrow(/unprintable/)
  })
})

describe('bounds and errors', () => {
  it('entryLimit caps unlimited and huge maxEntries at the hard bound', () => {
    expect(entryLimit({ maxEntries: 5, ttlSeconds: 0 })).toBe(5)
    expect(entryLimit({ maxEntries: 0, ttlSeconds: 0 })).toBe(10_000)
    expect(entryLimit({ maxEntries: 1e9, ttlSeconds: 0 })).toBe(10_000)
  })

  it('MemoryUnavailableError names the memory', () => {
    const e = new MemoryUnavailableError('ns/chat', 'Redis: Connection is closed.')
    expect(e.message).toBe('memory ns/chat is unavailable: Redis: Connection is closed.')
    expect(e.memory).toBe('ns/chat')
    expect(e.name).toBe('MemoryUnavailableError')
  })
})

describe('decodeMessage', () => {
  it('keeps the chat message shapes ark sends', () => {
    const call = { id: 'c1', type: 'function', function: { name: 'add', arguments: '{"a":1}' } }
    expect(decodeMessage({ role: 'user', content: 'hi', name: 'ann' })).toEqual({
      role: 'user',
      content: 'hi',
      name: 'ann',
    })
    expect(decodeMessage({ role: 'system', content: 'be brief' })).toEqual({
      role: 'system',
      content: 'be brief',
    })
    expect(decodeMessage({ role: 'assistant', content: null, tool_calls: [call] })).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: [call],
    })
    expect(decodeMessage({ role: 'tool', content: '2', tool_call_id: 'c1' })).toEqual({
      role: 'tool',
      content: '2',
      tool_call_id: 'c1',
    })
    const parts = [{ type: 'text', text: 'look' }, { type: 'image_url' }]
    expect(decodeMessage({ role: 'user', content: parts })).toEqual({ role: 'user', content: parts })
  })

  it('drops fields ark does not know (ARK names assistant messages)', () => {
    expect(decodeMessage({ role: 'assistant', content: 'x', name: 'agent-a', refusal: null })).toEqual({
      role: 'assistant',
      content: 'x',
    })
  })

  it('reads A2A messages and unknown roles as ARK does', () => {
    expect(decodeMessage({ role: 'agent', parts: [{ kind: 'text', text: 'hello' }] })).toEqual({
      role: 'assistant',
      content: 'hello',
    })
    expect(decodeMessage({ role: 'user', parts: [{ kind: 'text', text: 'q' }] })).toEqual({
      role: 'user',
      content: 'q',
    })
    expect(decodeMessage({ role: 'moderator', content: 'note' })).toEqual({ role: 'user', content: 'note' })
  })

  it('refuses what cannot be a message', () => {
    for (const bad of [
      null,
      42,
      'text',
      [],
      {},
      { role: 1, content: 'x' },
      { role: 'user' },
      { role: 'user', content: 5 },
      { role: 'user', content: [{ type: 'text' }] },
      { role: 'tool', content: 'x' },
      { role: 'assistant', content: null },
      { role: 'assistant', content: 'x', tool_calls: 'no' },
      { role: 'assistant', content: 'x', tool_calls: [{ id: 'c', function: { name: 'f' } }] },
      { role: 'function', content: 'x', name: 'f' },
    ])
      expect(decodeMessage(bad), JSON.stringify(bad)).toBeUndefined()
    expect(parseMessage('{not json')).toBeUndefined()
    expect(parseMessage('{"role":"user","content":"ok"}')).toEqual({ role: 'user', content: 'ok' })
  })
})

describe('utf8Length', () => {
  it('counts the bytes TextEncoder would write', () => {
    for (const s of ['', 'abc', 'é', '会話', '🚀x', 'a\uD800b', '\uDC00'])
      expect(utf8Length(s), JSON.stringify(s)).toBe(new TextEncoder().encode(s).length)
  })
})
