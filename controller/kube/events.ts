/**
 * Kubernetes Events for the controller, after client-go's `record` package: core/v1 Events with the legacy
 * fields (`source`, `firstTimestamp`, `lastTimestamp`, `count`; no `eventTime`), which is what `kubectl
 * describe` shows on 1.20 and on current clusters.
 *
 * - `record()` never blocks and never throws: it puts a write on a bounded queue and returns. A full queue
 *   drops the event (counted in `stats.dropped`, reported through `onDropped`).
 * - Aggregation: a repeat of the same (object, type, reason, message) within ten minutes of the last one
 *   raises the existing Event's `count` and `lastTimestamp` (a merge PATCH) instead of creating another
 *   Event. A repeat that arrives while the previous write of that Event is still waiting in the queue folds
 *   into it and costs no request at all. A PATCH answered 404 (the Event expired or was deleted) creates
 *   the Event again.
 * - Writes of one Event never run concurrently, so a PATCH of its count cannot overtake its CREATE. Writes
 *   of different Events run `concurrency` at a time.
 * - A write that fails on the network, on a timeout, on 429 or on a 5xx is retried with backoff, then
 *   counted in `stats.failed` and reported through `onError`; other refusals are not retried.
 * - Messages go through `redact`, then are cut to 1024 bytes of UTF-8 (never inside a character); reasons
 *   are cut to 128 characters. An event whose `redact` throws is dropped: nothing unredacted leaves.
 * - Event names are `<object name>.<16 hex digits>` from a nanosecond clock that only moves forward (as
 *   client-go's), so the API server lists one object's Events in the order they were recorded even when
 *   they share a `lastTimestamp` second (kubectl describe sorts by that second, keeping the listed order).
 */
import type { KubeClient } from './client.ts'
import { KubeError } from './client.ts'

export interface InvolvedObject {
  readonly apiVersion: string
  readonly kind: string
  readonly namespace: string
  readonly name: string
  readonly uid?: string
  readonly resourceVersion?: string
}

export interface EventRecorderOptions {
  /** The controller's client: one keep-alive connection pool for every write (client.ts says why). */
  readonly client: KubeClient
  /** `source.component` and `reportingComponent`; default 'ark-controller'. */
  readonly component?: string
  /** `source.host` and `reportingInstance`. */
  readonly host?: string
  /** Writes waiting at most (default 1000); past it, events are dropped and counted. */
  readonly maxQueued?: number
  /** Writes in flight at most (default 8). */
  readonly concurrency?: number
  /** Applied to every message before it leaves the process. */
  readonly redact?: (text: string) => string
  /** Told how many events were dropped since it was last told (at most once per tick). */
  readonly onDropped?: (count: number) => void
  /** Told of each write that failed for good (and of a `redact` that threw). */
  readonly onError?: (err: unknown) => void
  readonly now?: () => Date
  /** Retries of a failed write (default 2), after `retryDelayMs` (default 200), doubling. */
  readonly retries?: number
  readonly retryDelayMs?: number
  /** One request's time limit (default 10 s): a server that accepts but never answers cannot pin a slot. */
  readonly requestTimeoutMs?: number
}

export interface EventRecorderStats {
  /** Successful writes: creates and patches. */
  readonly written: number
  /** record() calls folded into an Event that already existed or was already on its way. */
  readonly aggregated: number
  /** record() calls refused: queue full, recorder closed, or `redact` threw. */
  readonly dropped: number
  /** Writes given up on after their retries. */
  readonly failed: number
}

/** Kubernetes' limit on an Event's note, in bytes. */
export const MAX_MESSAGE_BYTES = 1024
export const MAX_REASON_LENGTH = 128
/** A repeat later than this after the last one starts a new Event (client-go's aggregation window). */
export const AGGREGATION_WINDOW_MS = 10 * 60 * 1000
const CACHE_ENTRIES = 4096
const MAX_NAME = 253

/** One Event object as this process knows it. */
interface Entry {
  readonly key: string
  readonly name: string
  readonly namespace: string
  readonly object: InvolvedObject
  readonly type: string
  readonly reason: string
  readonly message: string
  readonly firstTimestamp: Date
  lastTimestamp: Date
  count: number
  /** The API server has (or had) this object: the next write is a PATCH. */
  created: boolean
  /** The write being sent now, if any. */
  running: Job | undefined
  /** The next write: waiting in the queue, or held behind `running` until it finishes. */
  next: Job | undefined
}

interface Job {
  readonly entry: Entry
  /** Accepted in this order. */
  readonly seq: number
}

interface Flush {
  readonly through: number
  readonly done: () => void
}

export class EventRecorder {
  readonly #client: KubeClient
  readonly #component: string
  readonly #host: string | undefined
  readonly #maxQueued: number
  readonly #concurrency: number
  readonly #redact: ((text: string) => string) | undefined
  readonly #onDropped: ((count: number) => void) | undefined
  readonly #onError: ((err: unknown) => void) | undefined
  readonly #now: () => Date
  readonly #retries: number
  readonly #retryDelayMs: number
  readonly #timeoutMs: number

  /** Recent Events by aggregation key, least recently used first. */
  readonly #cache = new Map<string, Entry>()
  /** Jobs ready to run, oldest first (an array with a moving head). */
  #queue: Job[] = []
  #head = 0
  /** Jobs not yet started (in the queue or held behind a running write of the same Event). */
  #waiting = 0
  #inFlight = 0
  /** Every job not yet finished, in the order it was accepted: the first one is the oldest (lowest seq). */
  readonly #outstanding = new Set<Job>()
  #seq = 0
  /** flush() calls waiting until no job accepted at or before `through` is outstanding. */
  #flushes: Flush[] = []
  #lastNameNs = 0n
  #closed = false
  #pumpScheduled = false
  #pendingDrops = 0

  #written = 0
  #aggregated = 0
  #dropped = 0
  #failed = 0

  constructor(options: EventRecorderOptions) {
    this.#client = options.client
    this.#component = options.component ?? 'ark-controller'
    this.#host = options.host === undefined ? undefined : options.host.slice(0, 128)
    this.#maxQueued = Math.max(1, options.maxQueued ?? 1000)
    this.#concurrency = Math.max(1, options.concurrency ?? 8)
    this.#redact = options.redact
    this.#onDropped = options.onDropped
    this.#onError = options.onError
    this.#now = options.now ?? (() => new Date())
    this.#retries = Math.max(0, options.retries ?? 2)
    this.#retryDelayMs = Math.max(0, options.retryDelayMs ?? 200)
    this.#timeoutMs = Math.max(1, options.requestTimeoutMs ?? 10_000)
  }

  get stats(): EventRecorderStats {
    return {
      written: this.#written,
      aggregated: this.#aggregated,
      dropped: this.#dropped,
      failed: this.#failed,
    }
  }

  record(object: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (this.#closed) return this.#drop()
    let text: string
    try {
      text = truncateUtf8(this.#redact === undefined ? message : this.#redact(message), MAX_MESSAGE_BYTES)
    } catch (err) {
      this.#report(err)
      return this.#drop()
    }
    const why = reason.slice(0, MAX_REASON_LENGTH)
    const now = this.#now()
    const key = aggregationKey(object, type, why, text)
    let entry = this.#cache.get(key)
    if (entry !== undefined && now.getTime() - entry.lastTimestamp.getTime() > AGGREGATION_WINDOW_MS) {
      this.#cache.delete(key)
      entry = undefined
    }
    if (entry !== undefined) {
      // Most recently used goes last.
      this.#cache.delete(key)
      this.#cache.set(key, entry)
      // Folds into the write already waiting, if there is one; otherwise needs a place in the queue.
      const waiting = entry.next !== undefined
      if (!waiting && this.#waiting >= this.#maxQueued) return this.#drop()
      entry.count += 1
      if (now > entry.lastTimestamp) entry.lastTimestamp = now
      this.#aggregated += 1
      if (!waiting) this.#enqueue(entry)
      return
    }
    if (this.#waiting >= this.#maxQueued) return this.#drop()
    entry = {
      key,
      name: this.#eventName(object.name, now),
      namespace: object.namespace === '' ? 'default' : object.namespace,
      object,
      type,
      reason: why,
      message: text,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      created: false,
      running: undefined,
      next: undefined,
    }
    this.#cache.set(key, entry)
    if (this.#cache.size > CACHE_ENTRIES) {
      const oldest = this.#cache.keys().next()
      if (oldest.done !== true) this.#cache.delete(oldest.value)
    }
    this.#enqueue(entry)
  }

  /** Resolves when every event recorded before the call was written or given up on. */
  flush(): Promise<void> {
    if (this.#outstanding.size === 0) return Promise.resolve()
    const through = this.#seq
    return new Promise((done) => {
      this.#flushes.push({ through, done })
    })
  }

  /** Refuses new events from now on (they count as dropped), then waits for what was recorded before. */
  async close(): Promise<void> {
    this.#closed = true
    await this.flush()
  }

  #enqueue(entry: Entry): void {
    this.#seq += 1
    const job: Job = { entry, seq: this.#seq }
    entry.next = job
    this.#waiting += 1
    this.#outstanding.add(job)
    if (entry.running === undefined) {
      this.#queue.push(job)
      this.#schedulePump()
    }
  }

  /**
   * Writes start from a microtask, never inside record(): record() does no request work at all, and the
   * repeats of a burst fold into one write before it goes.
   */
  #schedulePump(): void {
    if (this.#pumpScheduled) return
    this.#pumpScheduled = true
    queueMicrotask(() => {
      this.#pumpScheduled = false
      this.#pump()
    })
  }

  #pump(): void {
    while (this.#inFlight < this.#concurrency && this.#head < this.#queue.length) {
      const job = this.#queue[this.#head]
      this.#head += 1
      if (job !== undefined) this.#start(job)
    }
    if (this.#head === this.#queue.length) {
      this.#queue = []
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head)
      this.#head = 0
    }
  }

  #start(job: Job): void {
    const entry = job.entry
    entry.next = undefined
    entry.running = job
    this.#waiting -= 1
    this.#inFlight += 1
    void this.#write(entry).then(() => {
      this.#inFlight -= 1
      entry.running = undefined
      this.#outstanding.delete(job)
      // A repeat recorded while this write ran waited for it; it goes now, ahead of the queue.
      if (entry.next !== undefined) this.#start(entry.next)
      this.#settleFlushes()
      this.#pump()
    })
  }

  /** Writes the entry's current state; resolves whatever happens. */
  async #write(entry: Entry): Promise<void> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        if (!entry.created) {
          await this.#create(entry)
        } else {
          try {
            await this.#patch(entry)
          } catch (err) {
            if (!(err instanceof KubeError) || err.status !== 404) throw err
            await this.#create(entry)
          }
        }
        entry.created = true
        this.#written += 1
        return
      } catch (err) {
        if (attempt >= this.#retries || !retryable(err)) {
          this.#failed += 1
          this.#report(err)
          return
        }
        await sleep(this.#retryDelayMs * 2 ** attempt * (0.75 + Math.random() / 2))
      }
    }
  }

  async #create(entry: Entry): Promise<void> {
    const body = {
      metadata: { name: entry.name, namespace: entry.namespace },
      involvedObject: {
        apiVersion: entry.object.apiVersion,
        kind: entry.object.kind,
        namespace: entry.object.namespace,
        name: entry.object.name,
        ...(entry.object.uid === undefined ? {} : { uid: entry.object.uid }),
        ...(entry.object.resourceVersion === undefined
          ? {}
          : { resourceVersion: entry.object.resourceVersion }),
      },
      type: entry.type,
      reason: entry.reason,
      message: entry.message,
      source:
        this.#host === undefined
          ? { component: this.#component }
          : { component: this.#component, host: this.#host },
      reportingComponent: this.#component,
      reportingInstance: this.#host ?? '',
      firstTimestamp: entry.firstTimestamp,
      lastTimestamp: entry.lastTimestamp,
      count: entry.count,
    }
    try {
      await this.#client.request('POST', `/api/v1/namespaces/${entry.namespace}/events`, {
        body,
        timeoutMs: this.#timeoutMs,
      })
    } catch (err) {
      // An earlier attempt got through although its answer was lost: the object is there, bring it up to date.
      if (err instanceof KubeError && err.status === 409) {
        await this.#patch(entry)
        return
      }
      throw err
    }
  }

  async #patch(entry: Entry): Promise<void> {
    const body = { count: entry.count, lastTimestamp: entry.lastTimestamp.toISOString() }
    await this.#client.request('PATCH', `/api/v1/namespaces/${entry.namespace}/events/${entry.name}`, {
      body,
      contentType: 'application/merge-patch+json',
      timeoutMs: this.#timeoutMs,
    })
  }

  /** `<object name>.<16 hex digits of a nanosecond clock that never repeats>`, a valid DNS subdomain. */
  #eventName(objectName: string, now: Date): string {
    let ns = BigInt(now.getTime()) * 1_000_000n
    if (ns <= this.#lastNameNs) ns = this.#lastNameNs + 1n
    this.#lastNameNs = ns
    const prefix = objectName.slice(0, MAX_NAME - 17).replace(/[.-]+$/, '')
    return `${prefix === '' ? 'event' : prefix}.${ns.toString(16).padStart(16, '0')}`
  }

  #drop(): void {
    this.#dropped += 1
    if (this.#onDropped === undefined) return
    this.#pendingDrops += 1
    if (this.#pendingDrops > 1) return
    queueMicrotask(() => {
      const count = this.#pendingDrops
      this.#pendingDrops = 0
      try {
        this.#onDropped?.(count)
      } catch {
        // A reporting hook must not break recording.
      }
    })
  }

  #report(err: unknown): void {
    try {
      this.#onError?.(err)
    } catch {
      // A reporting hook must not break recording.
    }
  }

  #settleFlushes(): void {
    if (this.#flushes.length === 0) return
    const oldest = this.#outstanding.values().next()
    const floor = oldest.done === true ? Infinity : oldest.value.seq
    const remaining: Flush[] = []
    for (const flush of this.#flushes) {
      if (floor > flush.through) flush.done()
      else remaining.push(flush)
    }
    this.#flushes = remaining
  }
}

function aggregationKey(object: InvolvedObject, type: string, reason: string, message: string): string {
  const who =
    object.uid !== undefined && object.uid !== ''
      ? object.uid
      : `${object.apiVersion}/${object.kind}/${object.namespace}/${object.name}`
  return `${who}\u0000${type}\u0000${reason}\u0000${message}`
}

/** Network errors, timeouts, 429 and 5xx are worth another try; any other answer will not change. */
function retryable(err: unknown): boolean {
  if (err instanceof KubeError) return err.status === 0 || err.status === 429 || err.status >= 500
  return true
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** `text` cut to at most `limit` bytes of UTF-8 on a character boundary, marked with '...' when cut. */
export function truncateUtf8(text: string, limit: number): string {
  // Every UTF-16 unit is at most 3 bytes of UTF-8: short strings need no encoding.
  if (text.length * 3 <= limit) return text
  const bytes = encoder.encode(text)
  if (bytes.length <= limit) return text
  const marker = '...'
  let end = Math.max(0, limit - marker.length)
  // Back off continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end -= 1
  return decoder.decode(bytes.subarray(0, end)) + marker
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms))
}
