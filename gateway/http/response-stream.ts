/**
 * A streamed response body with backpressure, a bound and a deadline, for every protocol that streams (OpenAI
 * chunks, A2A events): the runtime adapter pulls from it as the client's socket drains (Node's adapter waits
 * for `drain`; Deno's pulls as it writes), so bytes wait here only while the client is slow.
 *
 * - `write` returns a promise while more than `highWaterBytes` wait: a producer that awaits it (the tool
 *   loop, through the provider's stream) pauses, and so does its upstream, until the client reads again.
 * - A producer that cannot pause (a run on another process, whose events arrive over Redis) fills the buffer
 *   up to `maxBufferedBytes`; beyond that the stream ends, because the alternative is unbounded memory.
 * - A client that reads nothing for `writeTimeoutMs` while bytes wait has stalled: the stream ends.
 * Either way, and when the client goes away, `onAbort` gets the reason once, so the run behind the stream is
 * cancelled rather than left to work for nobody. A stream cut for being stalled or too full drops its
 * connection where the runtime lets the app do that (`drop`, Node); elsewhere (Deno.serve offers no way) what
 * waited is discarded and the stream ends with the protocol's last word, `onAbort`'s return, which a client
 * that reads again will find.
 *
 * A fast client never makes the producer wait, and a producer that makes its text without I/O (the mock
 * model) would then write and the adapter read in one chain of microtasks, starving every other request of
 * the event loop for the whole answer. So every `YIELD_BYTES` a write also returns a promise, settled on the
 * next turn of the event loop.
 */

export interface StreamLimits {
  /** Bytes that may wait for the client before a producer is asked to pause. */
  readonly highWaterBytes: number
  /** Bytes that may wait at all; past it the stream ends. */
  readonly maxBufferedBytes: number
  /** How long bytes may wait without the client reading any, in ms. */
  readonly writeTimeoutMs: number
}

export const STREAM_DEFAULTS: StreamLimits = {
  highWaterBytes: 64 * 1024,
  maxBufferedBytes: 8 * 1024 * 1024,
  writeTimeoutMs: 30_000,
}

/** Why a stream ended before its producer finished. */
export class StreamAbort extends Error {
  override readonly name = 'AbortError'
  /** `client_gone`, `stalled` (nothing read for writeTimeoutMs) or `overflow` (maxBufferedBytes). */
  readonly reason: 'client_gone' | 'stalled' | 'overflow'
  constructor(reason: StreamAbort['reason'], message: string) {
    super(message)
    this.reason = reason
  }
}

const encoder = new TextEncoder()

const noop = () => {}

/** Bytes a producer may write before it is asked to let the event loop turn once. */
const YIELD_BYTES = 64 * 1024
const nextTurn: (resume: () => void) => void =
  typeof setImmediate === 'function' ? (f) => setImmediate(f) : (f) => setTimeout(f, 0)

export class ResponseStream {
  readonly body: ReadableStream<Uint8Array>
  readonly #limits: StreamLimits
  readonly #onAbort: (reason: StreamAbort) => string | undefined
  readonly #drop: (() => void) | undefined
  #out: ReadableStreamDefaultController<Uint8Array> | undefined
  #open = true
  /**
   * Bytes written and not yet handed to the runtime adapter. The stream's own queue is kept empty
   * (highWaterMark 0) so that every read by the adapter is a `pull` here: that is how progress is seen.
   */
  readonly #queue: Uint8Array[] = []
  #queuedBytes = 0
  /** The adapter asked for bytes and got none yet: the next write goes straight to it. */
  #wanted = false
  #lastRead = 0
  /**
   * The adapter has started reading. Before that the response has not been handed over (a refusal may still
   * replace it), so nothing can have stalled.
   */
  #reading = false
  #stallTimer: ReturnType<typeof setTimeout> | undefined
  /** Resolves the producer's pending write once the client has read enough. */
  #resume: (() => void) | undefined
  #paused: Promise<void> | undefined
  /** Bytes written since the producer last let the event loop turn. */
  #sinceTurn = 0
  /** The stream `pipeFrom` reads, cancelled as soon as this one ends early. */
  #source: ReadableStreamDefaultReader<Uint8Array> | undefined

  /**
   * `onAbort` may return the last bytes to send after a cut (an error event in the protocol's shape); `drop`
   * closes the client's connection at once, where the runtime adapter provides it.
   */
  constructor(limits: StreamLimits, onAbort: (reason: StreamAbort) => string | undefined, drop?: () => void) {
    this.#limits = limits
    this.#onAbort = onAbort
    this.#drop = drop
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#out = controller
        },
        pull: (controller) => {
          this.#lastRead = Date.now()
          this.#reading = true
          const next = this.#queue.shift()
          if (next === undefined) {
            this.#wanted = true
            if (!this.#open) this.#finish()
            return
          }
          this.#queuedBytes -= next.byteLength
          controller.enqueue(next)
          if (this.#queuedBytes <= this.#limits.highWaterBytes) this.#release()
          if (this.#queue.length === 0) {
            if (!this.#open) this.#finish()
          } else if (this.#stallTimer === undefined) this.#armStall(this.#limits.writeTimeoutMs)
        },
        cancel: () => {
          this.#queue.length = 0
          this.#queuedBytes = 0
          this.#end(new StreamAbort('client_gone', 'the client disconnected'))
        },
      },
      { highWaterMark: 0 },
    )
  }

  /** False once the stream has ended (closed by its producer, cut, or left by the client). */
  get open(): boolean {
    return this.#open
  }

  /**
   * Queues bytes for the client. Returns a promise while the client is behind (await it to pause), nothing
   * otherwise. Writes after the end are dropped.
   */
  write(data: string | Uint8Array): Promise<void> | undefined {
    const out = this.#out
    if (!this.#open || out === undefined) return undefined
    const bytes = typeof data === 'string' ? encoder.encode(data) : data
    this.#sinceTurn += bytes.byteLength
    if (this.#wanted) {
      this.#wanted = false
      out.enqueue(bytes)
      return this.#turn()
    }
    this.#queue.push(bytes)
    this.#queuedBytes += bytes.byteLength
    if (this.#queuedBytes > this.#limits.maxBufferedBytes) {
      this.#fail(
        new StreamAbort(
          'overflow',
          `the client reads slower than the answer is produced: more than ${String(this.#limits.maxBufferedBytes)} bytes waited for it`,
        ),
      )
      return undefined
    }
    if (this.#reading && this.#stallTimer === undefined) {
      this.#lastRead = Date.now()
      this.#armStall(this.#limits.writeTimeoutMs)
    }
    if (this.#queuedBytes <= this.#limits.highWaterBytes) return this.#turn()
    this.#paused ??= new Promise<void>((resolve) => {
      this.#resume = resolve
    })
    // Resuming happens in the adapter's read, a microtask: the turn is still owed.
    const turn = this.#turn()
    return turn === undefined ? this.#paused : Promise.all([this.#paused, turn]).then(noop)
  }

  /** A promise for the next turn of the event loop once the producer has written YIELD_BYTES; else nothing. */
  #turn(): Promise<void> | undefined {
    if (this.#sinceTurn < YIELD_BYTES) return undefined
    this.#sinceTurn = 0
    return new Promise<void>((resolve) => nextTurn(resolve))
  }

  /**
   * Passes another stream's bytes on, at the client's pace: the source is read only as fast as the client
   * reads (and its bytes count against the same bounds and write timeout), and cancelled when this stream
   * ends early. Closes this stream when the source ends; never rejects.
   */
  async pipeFrom(source: ReadableStream<Uint8Array>): Promise<void> {
    const reader = source.getReader()
    this.#source = reader
    try {
      while (this.#open) {
        const { done, value } = await reader.read()
        if (done) break
        const paused = this.write(value)
        if (paused !== undefined) await paused
      }
    } catch {
      // A source that breaks ends the answer where it broke; a source that needs a last word writes it
      // itself (gateway/openai/sse-guard.ts does).
    } finally {
      this.#source = undefined
      if (this.#open) this.close()
      else await reader.cancel().catch(noop)
    }
  }

  /** Ends the stream normally once the client has read what was written. */
  close(): void {
    if (!this.#open) return
    this.#open = false
    this.#release()
    if (this.#queue.length === 0) this.#finish()
  }

  #finish(): void {
    this.#clearStall()
    try {
      this.#out?.close()
    } catch {
      // Already errored or cancelled.
    }
  }

  /** Cuts a stalled or overfull stream: what waited is dropped, and with it the connection if possible. */
  #fail(reason: StreamAbort): void {
    if (!this.#open && this.#queue.length === 0) return
    this.#queue.length = 0
    this.#queuedBytes = 0
    const last = this.#end(reason)
    if (this.#drop !== undefined) {
      this.#drop()
      this.#finish()
    } else if (last !== undefined) {
      // Delivered if the client ever reads again; the stream ends after it.
      this.#queue.push(encoder.encode(last))
      if (this.#wanted) {
        this.#wanted = false
        this.#out?.enqueue(this.#queue.shift() as Uint8Array)
      }
      if (this.#queue.length === 0) this.#finish()
    } else this.#finish()
  }

  /** Ends the stream's life for its producer: it is let go, and told why once. */
  #end(reason: StreamAbort): string | undefined {
    this.#clearStall()
    this.#release()
    if (!this.#open) return undefined
    this.#open = false
    // A source waiting on its upstream is let go now, not when its next bytes arrive.
    this.#source?.cancel(reason).catch(noop)
    return this.#onAbort(reason)
  }

  /**
   * One timer per stall, not per write: when it fires it looks at when the client last read, and waits for
   * the rest of the timeout if that was recent.
   */
  #armStall(ms: number): void {
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = undefined
      if (this.#queue.length === 0) return
      const idle = Date.now() - this.#lastRead
      if (idle < this.#limits.writeTimeoutMs) {
        this.#armStall(this.#limits.writeTimeoutMs - idle)
        return
      }
      this.#fail(
        new StreamAbort(
          'stalled',
          `the client read nothing for ${String(this.#limits.writeTimeoutMs / 1000)} s while the answer waited`,
        ),
      )
    }, ms)
  }

  #release(): void {
    const resume = this.#resume
    this.#resume = undefined
    this.#paused = undefined
    resume?.()
  }

  #clearStall(): void {
    if (this.#stallTimer !== undefined) {
      clearTimeout(this.#stallTimer)
      this.#stallTimer = undefined
    }
  }
}
