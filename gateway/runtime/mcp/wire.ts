/**
 * What the MCP client does at the HTTP level, below the SDK: reading an endpoint's url (credentials and query
 * values are secrets, and never shown), and bounding what a server sends. The SDK reads a JSON body whole and
 * buffers an event of an event stream whole, however large; `bounded` holds each message to a size, so that
 * a hostile or broken server costs at most that much memory per message.
 */

/** An endpoint url, read once when its connection is created. */
export interface ParsedUrl {
  /** Without credentials or fragment; undefined when the url is not one ark can call. */
  readonly url: URL | undefined
  /** Origin and path only: how errors and logs show the url (a query may carry a key). */
  readonly display: string
  /** Why the url cannot be used (never quoting it). */
  readonly error: string | undefined
  /** `Basic ...` from credentials in the url (fetch refuses urls that carry them). */
  readonly authorization: string | undefined
  /** Values in the url that must not show anywhere: its user name and password, and its query values. */
  readonly secrets: readonly string[]
}

export function parseUrl(raw: string): ParsedUrl {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return {
      url: undefined,
      display: '(invalid url)',
      error: 'the url is not a valid absolute URL',
      authorization: undefined,
      secrets: [],
    }
  }
  const secrets = [...url.searchParams.values()]
  let authorization: string | undefined
  if (url.username !== '' || url.password !== '') {
    const user = safeDecode(url.username)
    const password = safeDecode(url.password)
    secrets.push(user, password, url.username, url.password)
    authorization = `Basic ${base64(`${user}:${password}`)}`
    url.username = ''
    url.password = ''
  }
  url.hash = ''
  const error =
    url.protocol === 'http:' || url.protocol === 'https:'
      ? undefined
      : `the url must be http or https, not ${url.protocol.slice(0, -1)}`
  return { url, display: `${url.origin}${url.pathname}`, error, authorization, secrets }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

function base64(text: string): string {
  let binary = ''
  for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b)
  return btoa(binary)
}

/** `text/event-stream` of `text/event-stream; charset=utf-8`. */
export function mediaType(contentType: string | null): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
}

export type JsonRpcId = string | number

function parseId(text: string | undefined): JsonRpcId | undefined {
  if (text === undefined) return undefined
  try {
    const id: unknown = JSON.parse(text)
    return typeof id === 'string' || typeof id === 'number' ? id : undefined
  } catch {
    return undefined
  }
}

const ID = String.raw`(-?\d+|"(?:[^"\\]|\\.){0,200}")`
const ID_LAST = new RegExp(String.raw`"id"\s*:\s*${ID}\s*\}\s*$`)
const ID_FIRST = new RegExp(String.raw`data:\s?\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*${ID}`)

/** The id of a JSON-RPC request body as the SDK sends it (`{...,"jsonrpc":"2.0","id":7}`), or undefined. */
export function requestIdOf(body: unknown): JsonRpcId | undefined {
  if (typeof body !== 'string') return undefined
  const last = ID_LAST.exec(body.slice(-256))
  if (last !== null) return parseId(last[1])
  if (body.length > 1024 * 1024) return undefined
  try {
    const parsed: unknown = JSON.parse(body)
    const id = typeof parsed === 'object' && parsed !== null ? (parsed as { id?: unknown }).id : undefined
    return typeof id === 'string' || typeof id === 'number' ? id : undefined
  } catch {
    return undefined
  }
}

/**
 * The id of the response in an event, from the start of its data (`data: {"jsonrpc":"2.0","id":5,...`, as
 * Python servers write it) or the end of the event (`...,"id":5}`, as the TypeScript SDK writes it).
 */
export function responseIdOf(head: string, tail: string): JsonRpcId | undefined {
  const first = ID_FIRST.exec(head)
  if (first !== null) return parseId(first[1])
  const last = ID_LAST.exec(tail)
  return last === null ? undefined : parseId(last[1])
}

export interface Bounds {
  /** The most bytes one message may take. */
  readonly max: number
  /** An event stream: the bound holds per event (between blank lines), not for the whole body. */
  readonly events: boolean
  /** Past the bound, end the body there, quietly (an error status's body), instead of dropping the message. */
  readonly truncate: boolean
  /** The JSON-RPC id of the request this body answers (a POST's), when known. */
  readonly id?: JsonRpcId | undefined
  /** A message passed the bound: its size so far, and the id of the request it answered when known. */
  readonly onOversize?: (bytes: number, id: JsonRpcId | undefined) => void
  /** The body ended (error undefined) or failed; not called when its reader cancelled it. */
  readonly onEnd?: ((error: unknown) => void) | undefined
}

const CR = 0x0d
const LF = 0x0a
const BLANK_LINE = new Uint8Array([LF, LF])
/** How much of an oversized event's start and end is kept, to find the response id in it. */
const ID_WINDOW = 256

/**
 * `body` with every message held to `bounds.max` bytes. A JSON body past the bound fails (the SDK's read of
 * it rejects). An event past it is cut off with a blank line, which the SDK's parser reads as the end of a
 * broken event and drops, and the rest of that event is skipped: the stream goes on with the next event.
 */
export function bounded(body: ReadableStream<Uint8Array>, bounds: Bounds): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  /** Bytes of the current message (the body, or the current event). */
  let count = 0
  let atLineStart = true
  let afterCR = false
  let skipping = false
  let reported = false
  const head = new Uint8Array(ID_WINDOW)
  let headLength = 0
  let tail: Uint8Array = new Uint8Array(0)
  let ended = false
  /** Whether the current pull has passed anything on. */
  let gave = false
  /** Read through a call: `gave` changes inside the calls a pull makes, which narrowing does not see. */
  const passedOn = () => gave
  const give = (controller: ReadableStreamDefaultController<Uint8Array>, chunk: Uint8Array) => {
    gave = true
    controller.enqueue(chunk)
  }
  const end = (error: unknown) => {
    if (ended) return
    ended = true
    bounds.onEnd?.(error)
  }
  const keepTail = (bytes: Uint8Array) => {
    const joined = new Uint8Array(tail.length + bytes.length)
    joined.set(tail)
    joined.set(bytes, tail.length)
    tail = joined.length > ID_WINDOW ? joined.slice(-ID_WINDOW) : joined
  }
  const report = (id: JsonRpcId | undefined) => {
    reported = true
    bounds.onOversize?.(count, id)
  }

  const whole = (chunk: Uint8Array, controller: ReadableStreamDefaultController<Uint8Array>): void => {
    count += chunk.length
    if (count <= bounds.max) {
      give(controller, chunk)
      return
    }
    if (bounds.truncate) {
      const room = bounds.max - (count - chunk.length)
      if (room > 0) give(controller, chunk.subarray(0, room))
      controller.close()
      ended = true
      void reader.cancel().catch(() => {})
      return
    }
    report(bounds.id)
    const error = new Error(`a message larger than ${bounds.max} bytes (maxMessageBytes)`)
    controller.error(error)
    void reader.cancel(error).catch(() => {})
    end(error)
  }

  const events = (chunk: Uint8Array, controller: ReadableStreamDefaultController<Uint8Array>): void => {
    /** Where the bytes that go on start in this chunk (-1: none, while skipping). */
    let from = skipping ? -1 : 0
    /** Where the skipped bytes start in this chunk. */
    let skipFrom = 0
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] ?? 0
      if (b === LF && afterCR) {
        // The LF of a CRLF: the line ended at the CR.
        afterCR = false
        if (!skipping) count++
        continue
      }
      afterCR = b === CR
      if (b === CR || b === LF) {
        if (atLineStart) {
          // A blank line: the event ends here.
          if (skipping) {
            keepTail(chunk.subarray(skipFrom, i))
            if (!reported)
              report(responseIdOf(decoder.decode(head.subarray(0, headLength)), decoder.decode(tail)))
            skipping = false
            from = i + 1
          }
          count = 0
          headLength = 0
          tail = new Uint8Array(0)
          reported = false
          continue
        }
        atLineStart = true
      } else atLineStart = false
      if (skipping) continue
      count++
      if (headLength < ID_WINDOW) head[headLength++] = b
      if (count > bounds.max) {
        // Cut the event off: what went on of it becomes a broken event that the parser drops.
        if (i > from) give(controller, chunk.subarray(from, i))
        give(controller, BLANK_LINE)
        skipping = true
        from = -1
        skipFrom = i
        const id = bounds.id ?? responseIdOf(decoder.decode(head.subarray(0, headLength)), '')
        if (id !== undefined) report(id)
      }
    }
    if (skipping) keepTail(chunk.subarray(skipFrom))
    else if (from === 0) give(controller, chunk)
    else if (from < chunk.length) give(controller, chunk.subarray(from))
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // A pull must enqueue something (or end the stream): a pull that returns empty-handed is not called
      // again, and the reader waits forever. Chunks of a skipped event give nothing, so read on.
      gave = false
      for (;;) {
        let result: Awaited<ReturnType<typeof reader.read>>
        try {
          result = await reader.read()
        } catch (err) {
          end(err)
          controller.error(err)
          return
        }
        if (result.done) {
          end(undefined)
          controller.close()
          return
        }
        if (bounds.events) events(result.value, controller)
        else whole(result.value, controller)
        if (passedOn() || ended) return
      }
    },
    cancel(reason) {
      ended = true
      return reader.cancel(reason)
    },
  })
}
