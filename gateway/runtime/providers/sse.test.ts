import { describe, expect, it } from 'vitest'
import { sseData } from './sse.ts'

/** A body that delivers `text` in pieces of `size` bytes, and records whether it was cancelled. */
function body(
  text: string,
  size = Infinity,
): { stream: ReadableStream<Uint8Array>; cancelled: () => boolean } {
  const bytes = new TextEncoder().encode(text)
  let at = 0
  let cancelled = false
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) {
        controller.close()
        return
      }
      const end = Math.min(bytes.length, at + size)
      controller.enqueue(bytes.slice(at, end))
      at = end
    },
    cancel() {
      cancelled = true
    },
  })
  return { stream, cancelled: () => cancelled }
}

async function all(text: string, size?: number): Promise<string[]> {
  const out: string[] = []
  for await (const d of sseData(body(text, size).stream, new AbortController().signal)) out.push(d)
  return out
}

describe('sseData: the data of each server-sent event', () => {
  const stream =
    ': a comment\n\ndata: {"a":1}\n\nevent: ping\n\ndata: first\ndata: second\nid: 7\n\ndata:no-space\n\ndata\n\ndata: [DONE]\n\n'
  const expected = ['{"a":1}', 'first\nsecond', 'no-space', '', '[DONE]']

  it('reads data lines, joins them, skips events without data, whatever the chunking', async () => {
    expect(await all(stream)).toEqual(expected)
    // Split anywhere, even inside a multi-byte character.
    expect(await all(stream, 1)).toEqual(expected)
    expect(await all('data: café ☕\n\n', 1)).toEqual(['café ☕'])
  })

  it('takes CRLF and CR line ends, and a last event without its blank line', async () => {
    expect(await all('data: a\r\n\r\ndata: b\r\rdata: c')).toEqual(['a', 'b', 'c'])
    expect(await all('data: a\r\n\r', 1)).toEqual(['a'])
    expect(await all('')).toEqual([])
  })

  it('refuses an event that never ends rather than holding it all', async () => {
    const huge = `data: ${'x'.repeat(5 * 1024 * 1024)}`
    const b = body(huge, 64 * 1024)
    const read = async () => {
      for await (const d of sseData(b.stream, new AbortController().signal)) expect(d).toBeUndefined()
    }
    await expect(read()).rejects.toThrow(/over 4194304 characters/)
    expect(b.cancelled()).toBe(true)
  })

  it('cancels the body when its caller gives up, or stops reading', async () => {
    const abort = new AbortController()
    const b = body('data: 1\n\ndata: 2\n\ndata: 3\n\n', 10)
    const seen: string[] = []
    const read = async () => {
      for await (const d of sseData(b.stream, abort.signal)) {
        seen.push(d)
        abort.abort(new DOMException('the task was cancelled', 'AbortError'))
      }
    }
    await expect(read()).rejects.toThrow(/cancelled/)
    expect(seen).toEqual(['1'])
    expect(b.cancelled()).toBe(true)

    // Stopped while the body still had more to give.
    const early = body('data: 1\n\ndata: 2\n\n', 10)
    for await (const d of sseData(early.stream, new AbortController().signal)) if (d === '1') break
    expect(early.cancelled()).toBe(true)
  })
})
