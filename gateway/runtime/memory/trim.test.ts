import { describe, expect, it } from 'vitest'
import type { ChatMessage } from '../messages.ts'
import { fitHistory, messageChars } from './trim.ts'

const user = (content: string): ChatMessage => ({ role: 'user', content })
const answer = (content: string): ChatMessage => ({ role: 'assistant', content })
const calls = (...ids: string[]): ChatMessage => ({
  role: 'assistant',
  content: null,
  tool_calls: ids.map((id) => ({ id, type: 'function', function: { name: 'f', arguments: '{}' } })),
})
const result = (id: string, content = 'r'): ChatMessage => ({ role: 'tool', content, tool_call_id: id })

/** Tokens whose INPUT_SHARE is exactly `chars` characters. */
const budgetFor = (chars: number) => (chars / 4) * (4 / 3)

describe('fitHistory', () => {
  it('keeps everything that fits, and measures as the loop does', () => {
    const history = [user('aaaa'), answer('bbbb'), user('cccc'), answer('dddd')]
    expect(fitHistory(history, [user('new?')], 1000)).toEqual(history)
    expect(messageChars(calls('x', 'y'))).toBe(4) // the arguments, `{}` twice
    expect(
      messageChars({ role: 'user', content: [{ type: 'text', text: 'ab' }, { type: 'image_url' }] }),
    ).toBe(2)
  })

  it('drops the oldest exchanges first, whole', () => {
    const history = [user('aaaa'), answer('bbbb'), user('cccc'), answer('dddd')]
    // The new message (8 characters) and both exchanges (8 each) take 24 characters; with less, the older
    // exchange goes; with less than 16, both.
    expect(fitHistory(history, [user('12345678')], budgetFor(24))).toEqual(history)
    expect(fitHistory(history, [user('12345678')], budgetFor(23))).toEqual([user('cccc'), answer('dddd')])
    expect(fitHistory(history, [user('12345678')], budgetFor(15))).toEqual([])
    expect(fitHistory(history, [user('12345678')], budgetFor(16))).toEqual([user('cccc'), answer('dddd')])
  })

  it('leaves a quarter of the budget for the reply', () => {
    const history = [user('x'.repeat(40)), answer('y'.repeat(40))]
    // 80 characters are 20 tokens; with a budget of 26 tokens the input may only take 19 of them.
    expect(fitHistory(history, [], 26)).toEqual([])
    expect(fitHistory(history, [], 27)).toEqual(history)
  })

  it('keeps a tool result with the call it answers, or drops both', () => {
    const history = [
      user('q1'),
      calls('c1', 'c2'),
      result('c1', 'x'.repeat(20)),
      result('c2', 'y'.repeat(20)),
      answer('a1'),
      user('q2'),
      answer('a2'),
    ]
    const kept = fitHistory(history, [], budgetFor(30))
    expect(kept).toEqual([user('q2'), answer('a2')])
    expect(fitHistory(history, [], budgetFor(60))).toEqual(history)
  })

  it('never starts with an orphan: the tail of an exchange whose user message was trimmed away', () => {
    const history = [result('c0'), answer('old'), user('q'), calls('c1'), result('c1'), answer('a')]
    expect(fitHistory(history, [], 1e6)).toEqual(history.slice(2))
    expect(fitHistory([result('c0'), answer('a')], [], 1e6)).toEqual([])
    expect(fitHistory(history, [], Infinity)).toEqual(history.slice(2))
  })

  it('stops at a broken exchange: a result without its call, or a call without its results', () => {
    const unanswered = [
      user('q0'),
      answer('a0'),
      user('q1'),
      calls('c1'),
      answer('a1'),
      user('q2'),
      answer('a2'),
    ]
    expect(fitHistory(unanswered, [], 1e6)).toEqual([user('q2'), answer('a2')])
    const stray = [user('q0'), answer('a0'), user('q1'), result('zz'), answer('a1'), user('q2'), answer('a2')]
    expect(fitHistory(stray, [], 1e6)).toEqual([user('q2'), answer('a2')])
    const interrupted = [user('q1'), calls('c1'), user('q2'), answer('a2')]
    expect(fitHistory(interrupted, [], 1e6)).toEqual([user('q2'), answer('a2')])
  })

  it('gives nothing when the incoming messages alone fill the budget, or the budget is none', () => {
    const history = [user('a'), answer('b')]
    expect(fitHistory(history, [user('x'.repeat(100))], 10)).toEqual([])
    expect(fitHistory(history, [], 0)).toEqual([])
    expect(fitHistory(history, [], Number.NaN)).toEqual([])
    expect(fitHistory([], [user('q')], 100)).toEqual([])
  })
})
