/**
 * An upstream's server-sent events, passed on whole event by whole event. An event whose data is not JSON, or
 * a stream that ends or breaks before `data: [DONE]`, ends the client's stream with one last event (an
 * OpenAI error the SDKs raise) instead of bytes they cannot parse. A client that goes away cancels the
 * upstream read, which closes the upstream request.
 *
 * With a redactor, the Model's secrets are taken out of the bytes as they arrive, before anything else reads
 * them: events passed on, error events included, and what ark's own error quotes of a bad event.
 */
import { Redactor } from '../runtime/redactor.ts'

const encoder = new TextEncoder()

/**
 * The longest event passed on, in characters. A chat completion chunk is a few hundred bytes; an upstream
 * that never ends an event would otherwise grow the buffer without bound.
 */
export const MAX_EVENT_CHARS = 4 * 1024 * 1024

/** `failure(why)` returns the whole last event to send (`data: {...}\n\n`). */
export function guardEvents(
  upstream: ReadableStream<Uint8Array>,
  failure: (why: string) => string,
  redactor: Redactor = Redactor.none,
): ReadableStream<Uint8Array> {
  const reader = upstream.getReader()
  const decoder = new TextDecoder()
  // Holds back, at the end of a chunk, only bytes that could begin a secret: whole events still flow at once.
  const secrets = redactor.byteStream()
  let buffer = ''
  /** Where the search for the next event's end resumes: what was searched before holds no `\n\n`. */
  let searchFrom = 0
  let done = false
  let sawDone = false
  let sent = 0

  const fail = (out: ReadableStreamDefaultController<Uint8Array>, why: string) => {
    done = true
    out.enqueue(encoder.encode(failure(redactor.text(why))))
    out.close()
    reader.cancel().catch(() => {
      // The upstream is already gone.
    })
  }

  /** Sends every whole event in the buffer; false when one was not JSON (the stream has then failed). */
  const pass = (out: ReadableStreamDefaultController<Uint8Array>): boolean => {
    let start = 0
    let end = buffer.indexOf('\n\n', searchFrom)
    while (end >= 0) {
      const event = buffer.slice(start, end)
      // Lines starting with `:` are comments (keep-alives); multi-line data is joined with newlines.
      let data: string | undefined
      for (const line of event.split('\n')) {
        if (!line.startsWith('data:')) continue
        const piece = line.slice(line.startsWith('data: ') ? 6 : 5)
        data = data === undefined ? piece : `${data}\n${piece}`
      }
      if (data !== undefined && data.trim() !== '') {
        if (data.trim() === '[DONE]') sawDone = true
        else {
          try {
            JSON.parse(data)
          } catch {
            fail(out, `an event is not JSON (${JSON.stringify(data.slice(0, 80))})`)
            return false
          }
        }
      }
      // Blank lines between events (a third newline) are not events.
      if (event.trim() !== '') {
        out.enqueue(encoder.encode(`${event}\n\n`))
        sent++
      }
      start = end + 2
      end = buffer.indexOf('\n\n', start)
    }
    buffer = buffer.slice(start)
    // Two back: an event's end may straddle chunks, and a CR held back at the end may yet become part of it.
    searchFrom = Math.max(0, buffer.length - 2)
    if (buffer.length > MAX_EVENT_CHARS) {
      fail(out, `an event is longer than ${String(MAX_EVENT_CHARS)} characters`)
      return false
    }
    return true
  }

  /** Appends text with CRLF and bare CR line ends made LF; a CR at the end waits for what follows it. */
  const append = (text: string) => {
    buffer += text
    const carry = buffer.endsWith('\r') ? '\r' : ''
    if (carry !== '') buffer = buffer.slice(0, -1)
    if (buffer.includes('\r')) buffer = buffer.replaceAll('\r\n', '\n').replaceAll('\r', '\n')
    buffer += carry
  }

  return new ReadableStream<Uint8Array>({
    // Reads until at least one event went out (or the stream ended): a pull that enqueues nothing is not
    // called again, and the client would wait forever on an event split across network chunks.
    async pull(out) {
      const before = sent
      while (!done) {
        let read: Awaited<ReturnType<typeof reader.read>>
        try {
          read = await reader.read()
        } catch (err) {
          fail(out, err instanceof Error ? err.message : String(err))
          return
        }
        if (read.done) {
          append(decoder.decode(secrets.end()))
          if (buffer.endsWith('\r')) buffer = `${buffer.slice(0, -1)}\n`
          if (buffer.trim() !== '' && !buffer.endsWith('\n\n'))
            buffer += buffer.endsWith('\n') ? '\n' : '\n\n'
          if (!pass(out)) return
          done = true
          if (sawDone) out.close()
          else {
            done = false
            fail(out, 'it ended before data: [DONE]')
          }
          return
        }
        append(decoder.decode(secrets.push(read.value), { stream: true }))
        if (!pass(out)) return
        if (sent !== before) return
      }
    },
    cancel(reason) {
      done = true
      return reader.cancel(reason)
    },
  })
}
