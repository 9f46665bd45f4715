import { describe, expect, it } from 'vitest'
import { Redactor } from '../runtime/redactor.ts'
import { MAX_EVENT_CHARS, guardEvents } from './sse-guard.ts'

const FAIL = (why: string) => `data: {"error":${JSON.stringify(why)}}\n\n`

/** An upstream that delivers exactly these pieces, then ends (or errors). */
function upstream(pieces: readonly string[], error?: Error): ReadableStream<Uint8Array> {
  const bytes = pieces.map((p) => new TextEncoder().encode(p))
  let i = 0
  return new ReadableStream<Uint8Array>({
    pull(out) {
      const next = bytes[i++]
      if (next !== undefined) out.enqueue(next)
      else if (error !== undefined) out.error(error)
      else out.close()
    },
  })
}

async function read(pieces: readonly string[], error?: Error): Promise<string> {
  return new Response(guardEvents(upstream(pieces, error), FAIL)).text()
}

describe('guardEvents', () => {
  it('ends a stream whose event never ends, instead of holding all of it', async () => {
    // In 64 KiB pieces, no blank line: the buffer would grow for as long as the upstream sends.
    const piece = `data: {"x":"${'a'.repeat(64 * 1024)}`
    const pieces = Array.from({ length: Math.ceil(MAX_EVENT_CHARS / piece.length) + 2 }, () => piece)
    const out = await read(pieces)
    expect(out).toBe(FAIL(`an event is longer than ${String(MAX_EVENT_CHARS)} characters`))
  })

  it('finds an event end split across pieces, CRLF ends and a held-back CR included', async () => {
    expect(await read(['data: {"a":1}\r', '\n\r', '\ndata: [DONE]\n', '\n'])).toBe(
      'data: {"a":1}\n\ndata: [DONE]\n\n',
    )
    expect(await read(['data: {"a":1}\n', '\n', 'data: [DONE]\n\n'])).toBe(
      'data: {"a":1}\n\ndata: [DONE]\n\n',
    )
  })

  it('passes whole events on, however the network split them', async () => {
    const text = 'data: {"a":1}\n\ndata: {"b":2}\n\n: keep-alive\n\ndata: [DONE]\n\n'
    const whole = await read([text])
    expect(whole).toBe(text)
    // Every split point, including inside "\n\n" and inside a multi-byte character.
    const withUtf8 = 'data: {"s":"café"}\n\ndata: [DONE]\n\n'
    const bytes = new TextEncoder().encode(withUtf8)
    for (let cut = 1; cut < bytes.length; cut++) {
      const stream = new ReadableStream<Uint8Array>({
        start(out) {
          out.enqueue(bytes.slice(0, cut))
          out.enqueue(bytes.slice(cut))
          out.close()
        },
      })
      expect(await new Response(guardEvents(stream, FAIL)).text()).toBe(withUtf8)
    }
  })

  it('reads CRLF and bare CR line ends, also split between chunks', async () => {
    expect(await read(['data: {"a":1}\r', '\n\r\ndata: [DONE]\r\n\r\n'])).toBe(
      'data: {"a":1}\n\ndata: [DONE]\n\n',
    )
    expect(await read(['data: {"a":1}\r\rdata: [DONE]\r\r'])).toBe('data: {"a":1}\n\ndata: [DONE]\n\n')
  })

  it('joins multi-line data before checking it, and skips empty data', async () => {
    expect(await read(['data: {"a":\ndata: 1}\n\ndata:\n\ndata: [DONE]\n\n'])).toBe(
      'data: {"a":\ndata: 1}\n\ndata:\n\ndata: [DONE]\n\n',
    )
  })

  it('takes a last event without its blank line', async () => {
    expect(await read(['data: {"a":1}\n\ndata: [DONE]'])).toBe('data: {"a":1}\n\ndata: [DONE]\n\n')
  })

  it('ends with the failure event on data that is not JSON, without passing it on', async () => {
    const text = await read(['data: {"a":1}\n\ndata: {not json\n\ndata: {"b":2}\n\n'])
    expect(text).toBe(`data: {"a":1}\n\n${FAIL('an event is not JSON ("{not json")')}`)
  })

  it('ends with the failure event when the upstream ends before [DONE] or breaks', async () => {
    expect(await read(['data: {"a":1}\n\n'])).toBe(`data: {"a":1}\n\n${FAIL('it ended before data: [DONE]')}`)
    expect(await read(['data: {"a":1}\n\n'], new Error('socket hang up'))).toBe(
      `data: {"a":1}\n\n${FAIL('socket hang up')}`,
    )
  })

  it('cancels the upstream when the client goes away', async () => {
    let cancelled: unknown
    const source = new ReadableStream<Uint8Array>({
      pull(out) {
        out.enqueue(new TextEncoder().encode('data: {"a":1}\n\n'))
      },
      cancel(reason) {
        cancelled = reason
      },
    })
    const reader = guardEvents(source, FAIL).getReader()
    await reader.read()
    await reader.cancel('gone')
    expect(cancelled).toBe('gone')
  })

  describe('with a redactor', () => {
    const KEY = 'sk-guard-canary-0123456789'
    const secrets = Redactor.of([KEY])
    const guarded = (pieces: readonly string[], error?: Error) =>
      new Response(guardEvents(upstream(pieces, error), FAIL, secrets)).text()

    it('takes the key out of events, error events included, wherever the network split them', async () => {
      const text = `data: {"a":"${KEY}"}\n\ndata: {"error":{"message":"bad key ${KEY}"}}\n\ndata: [DONE]\n\n`
      const want = text.replaceAll(KEY, '[REDACTED]')
      expect(await guarded([text])).toBe(want)
      for (let cut = 1; cut < text.length; cut++) {
        expect(await guarded([text.slice(0, cut), text.slice(cut)])).toBe(want)
      }
    })

    it('does not quote the key when an event is not JSON, nor when the upstream breaks', async () => {
      const bad = await guarded([`data: {"a":1}\n\ndata: Bearer ${KEY}\n\n`])
      expect(bad).toBe(`data: {"a":1}\n\n${FAIL('an event is not JSON ("Bearer [REDACTED]")')}`)
      const broke = await guarded(['data: {"a":1}\n\n'], new Error(`reset by ${KEY}`))
      expect(broke).toBe(`data: {"a":1}\n\n${FAIL('reset by [REDACTED]')}`)
    })
  })
})
