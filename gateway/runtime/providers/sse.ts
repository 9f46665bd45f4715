/**
 * The `data` of each event of a server-sent event stream (the WHATWG event stream format, as OpenAI-compatible
 * servers and Anthropic send completions), read straight off a response body: what a provider's stream needs,
 * without an SDK's stream machinery per call. A caller that gives up (its signal) cancels the body, and with
 * it the upstream request.
 */
import { abortReason } from '../provider.ts'

/** The most an event may hold before the stream is refused: a completion chunk is a few hundred bytes. */
const MAX_EVENT_CHARS = 4 * 1024 * 1024

export class SseError extends Error {
  override readonly name = 'SseError'
}

/**
 * Each event's data (its `data:` lines joined by newlines), in order; events without data (comments, `event:`
 * or `id:` alone) are skipped. Ends with the body.
 */
export async function* sseData(
  body: ReadableStream<Uint8Array>,
  signal: AbortSignal,
): AsyncGenerator<string> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  const onAbort = () => void reader.cancel(abortReason(signal)).catch(() => undefined)
  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, { once: true })
  let buffer = ''
  let done = false
  try {
    while (!done) {
      let chunk: Awaited<ReturnType<typeof reader.read>>
      try {
        chunk = await reader.read()
      } catch (err) {
        if (signal.aborted) throw abortReason(signal)
        throw err
      }
      if (signal.aborted) throw abortReason(signal)
      if (chunk.done) {
        done = true
        buffer += decoder.decode()
        // A last event without its blank line still counts, as EventSource dispatches it at the end.
        if (buffer.trim() === '') return
        buffer += '\n\n'
      } else buffer += decoder.decode(chunk.value, { stream: true })
      if (buffer.includes('\r')) buffer = buffer.replace(/\r\n?/g, '\n')
      let end: number
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const data = dataOf(event)
        if (data !== undefined) yield data
      }
      if (buffer.length > MAX_EVENT_CHARS)
        throw new SseError(`an event of the stream is over ${String(MAX_EVENT_CHARS)} characters`)
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
    // Left early (the consumer stopped, or failed): the rest of the body is not wanted.
    if (!done) await reader.cancel().catch(() => undefined)
    reader.releaseLock()
  }
}

/**
 * Each event's data of a response's stream, as the JSON object it must be; a data of exactly `end` ends the
 * stream (OpenAI's `[DONE]`). Anything else is an Error that says which rule the stream broke.
 */
export async function* sseObjects(res: Response, signal: AbortSignal, end?: string): AsyncGenerator<object> {
  if (res.body === null) throw new Error('the stream has no body')
  for await (const data of sseData(res.body, signal)) {
    if (data === end) return
    let event: unknown
    try {
      event = JSON.parse(data)
    } catch {
      throw new Error('an event of the stream is not JSON')
    }
    if (typeof event !== 'object' || event === null)
      throw new Error('an event of the stream is not an object')
    yield event
  }
}

function dataOf(event: string): string | undefined {
  let data: string | undefined
  for (const line of event.split('\n')) {
    if (!line.startsWith('data')) continue
    const colon = line.indexOf(':')
    // `data` alone is an empty data line; `datum: x` is another field.
    const field = colon < 0 ? line : line.slice(0, colon)
    if (field !== 'data') continue
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    data = data === undefined ? value : `${data}\n${value}`
  }
  return data
}
