import { describe, expect, it } from 'vitest'
import { Redactor } from '../redactor.ts'
import { utf8Length } from '../messages.ts'
import { describe as describeError, toToolResult } from './content.ts'

describe('toToolResult', () => {
  const none = Redactor.none

  it('counts the cap in UTF-8 bytes and never cuts a character in two', () => {
    const text = '😀'.repeat(1000) // 4000 bytes
    const r = toToolResult({ content: [{ type: 'text', text }] }, 's', 't', 1000, none)
    expect(r.outcome).toBe('too_large')
    expect(utf8Length(r.content)).toBeLessThanOrEqual(1000)
    expect(r.content).toMatch(
      /^(😀)+\n\[truncated: the MCP server s returned 4000 bytes for t; ark keeps the first 1000\]$/,
    )
  })

  it('leaves a result within the cap alone, and keeps a truncated error an error', () => {
    expect(
      toToolResult({ content: [{ type: 'text', text: 'é'.repeat(500) }] }, 's', 't', 1000, none),
    ).toEqual({
      content: 'é'.repeat(500),
    })
    const r = toToolResult(
      { content: [{ type: 'text', text: 'x'.repeat(2000) }], isError: true },
      's',
      't',
      1000,
      none,
    )
    expect(r).toMatchObject({ isError: true, outcome: 'too_large' })
  })

  it('reads what it can of a result that is not what MCP says', () => {
    expect(toToolResult({ content: 'not a list' }, 's', 't', 1000, none)).toEqual({ content: '' })
    expect(
      toToolResult(
        { content: [null, 7, { type: 'text' }, { type: 'text', text: 'kept' }] },
        's',
        't',
        1000,
        none,
      ),
    ).toEqual({
      content: 'kept',
    })
  })

  it('redacts secrets a server echoes into a result', () => {
    const redactor = Redactor.of(['tok-1234567890abcdef'])
    expect(
      toToolResult(
        { content: [{ type: 'text', text: 'key tok-1234567890abcdef' }] },
        's',
        't',
        1000,
        redactor,
      ),
    ).toEqual({
      content: 'key [REDACTED]',
    })
  })
})

describe('describe', () => {
  it('names the system error under a fetch failure', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })
    expect(describeError(new TypeError('fetch failed', { cause }))).toBe('ECONNREFUSED')
    const socket = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })
    expect(describeError(new TypeError('terminated', { cause: socket }))).toBe(
      'other side closed (UND_ERR_SOCKET)',
    )
    expect(
      describeError(new Error('SSE error: TypeError: fetch failed: connect ECONNREFUSED 127.0.0.1:9')),
    ).toBe('ECONNREFUSED')
  })

  it('keeps one short line', () => {
    const text = describeError(new Error(`line one\nline two ${'z'.repeat(1000)}`))
    expect(text).toMatch(/^line one line two z+\.\.\.$/)
    expect(text.length).toBe(303)
    expect(describeError('plain')).toBe('plain')
    expect(describeError(undefined)).toBe('unknown error')
  })

  it('says where an answer broke the MCP schema', () => {
    expect(describeError({ issues: [{ path: ['result', 'tools'], message: 'Expected array' }] })).toBe(
      'the answer is not valid MCP at result.tools: Expected array',
    )
    expect(describeError({ issues: [{ path: [], message: 'Invalid input' }] })).toBe(
      'the answer is not a valid MCP message (Invalid input)',
    )
  })
})
