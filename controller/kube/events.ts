/**
 * Kubernetes Events for the controller, after client-go's `record` package: core/v1 Events with the legacy
 * fields (`source`, `firstTimestamp`, `lastTimestamp`, `count`; no `eventTime`), which is what `kubectl
 * describe` shows on 1.20 and on current clusters.
 *
 * - `record()` never blocks and never throws: it puts a write on a bounded queue and returns. A full queue
 *   drops the event (counted in `stats.dropped`, reported through `onDropped`).
 * - Writes leave at most `qps` a second after a `burst` (kubelet's --event-qps and --event-burst): Events are
 *   a courtesy to whoever runs `kubectl describe`, and an API server busy writing them for thousands of
 *   Queries a minute is slower at what matters, the status. Important events (Warnings, and what
 *   `important` names) go first and, when the queue is full, take the place of the newest other one.
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
  /** Writes started a second at most, after `burst` (default: no limit; `ark controller` uses 50). */
  readonly qps?: number
  /** Writes that may start at once before `qps` applies (default 2 x qps). */
  readonly burst?: number
  /** Which Normal events are important too (Warnings always are): they go first and are dropped last. */
  readonly important?: (reason: string) => boolean
  /** How long close() waits for what is left (default 5 s): shutdown must not outlast its grace period. */
  readonly closeTimeoutMs?: number
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
  readonly important: boolean
}

/** Jobs oldest first: an array with a moving head, so that taking the first costs no copy. */
class JobQueue {
  #items: Job[] = []
  #head = 0
  get length(): number {
    return this.#items.length - this.#head
  }
  push(job: Job): void {
    this.#items.push(job)
  }
  shift(): Job | undefined {
    const job = this.#items[this.#head]
    this.#head += 1
    if (this.#head === this.#items.length) {
      this.#items = []
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return job
  }
  /** The newest job. */
  pop(): Job | undefined {
    return this.length === 0 ? undefined : this.#items.pop()
  }
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
  readonly #closeTimeoutMs: number

  /** Recent Events by aggregation key, least recently used first. */
  readonly #cache = new Map<string, Entry>()
  /** Jobs ready to run: the important ones go first. */
  readonly #important = new JobQueue()
  readonly #rest = new JobQueue()
  readonly #qps: number
  readonly #burst: number
  readonly #isImportant: (reason: string) => boolean
  /** The token bucket: writes that may start now, as of `#tokensAt` (performance.now()). */
  #tokens: number
  #tokensAt = performance.now()
  #refill: NodeJS.Timeout | undefined
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
    this.#closeTimeoutMs = Math.max(0, options.closeTimeoutMs ?? 5000)
    this.#qps = options.qps !== undefined && options.qps > 0 ? options.qps : Infinity
    this.#burst = Math.max(1, options.burst ?? (Number.isFinite(this.#qps) ? this.#qps * 2 : Infinity))
    this.#tokens = this.#burst
    this.#isImportant = options.important ?? (() => false)
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
      if (!waiting && !this.#makeRoom(this.#mattersMore(type, why))) return this.#drop()
      entry.count += 1
      if (now > entry.lastTimestamp) entry.lastTimestamp = now
      this.#aggregated += 1
      if (!waiting) this.#enqueue(entry)
      return
    }
    if (!this.#makeRoom(this.#mattersMore(type, why))) return this.#drop()
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

  /**
   * Refuses new events from now on (they count as dropped), then waits for what was recorded before; except
   * that, under a rate limit, the waiting events that are not important and that the rate would not let go
   * now are dropped (at `qps` they could hold a shutdown for many seconds). Past `closeTimeoutMs`, what still
   * waits is dropped too, and close() returns (writes already sent finish on their own).
   */
  async close(): Promise<void> {
    this.#closed = true
    if (Number.isFinite(this.#qps)) {
      this.#pump()
      this.#dropNewest(this.#rest, Math.floor(this.#refreshTokens()))
    }
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#closeTimeoutMs)))
    await Promise.race([this.flush(), late])
    clearTimeout(timer)
    this.#dropNewest(this.#important)
    this.#dropNewest(this.#rest)
    clearTimeout(this.#refill)
  }

  /** Drops the newest waiting jobs of `queue` until at most `keep` are left. */
  #dropNewest(queue: JobQueue, keep = 0): void {
    while (queue.length > keep) {
      const job = queue.pop()
      if (job === undefined) break
      this.#evict(job)
    }
    this.#settleFlushes()
  }

  #mattersMore(type: string, reason: string): boolean {
    return type === 'Warning' || this.#isImportant(reason)
  }

  /** True when a new write may wait in the queue: there is room, or an important one displaces another. */
  #makeRoom(important: boolean): boolean {
    if (this.#waiting < this.#maxQueued) return true
    const victim = important ? this.#rest.pop() : undefined
    if (victim === undefined) return false
    this.#evict(victim)
    return true
  }

  /** Takes a waiting job off: its event is dropped (a repeat's count, or a new Event never written). */
  #evict(job: Job): void {
    const entry = job.entry
    entry.next = undefined
    this.#waiting -= 1
    this.#outstanding.delete(job)
    // Never written: a later repeat starts it afresh rather than patching an object that does not exist.
    if (!entry.created && entry.running === undefined) this.#cache.delete(entry.key)
    this.#drop()
  }

  #enqueue(entry: Entry): void {
    this.#seq += 1
    const job: Job = { entry, seq: this.#seq, important: this.#mattersMore(entry.type, entry.reason) }
    entry.next = job
    this.#waiting += 1
    this.#outstanding.add(job)
    if (entry.running === undefined) {
      ;(job.important ? this.#important : this.#rest).push(job)
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
    while (this.#inFlight < this.#concurrency && this.#important.length + this.#rest.length > 0) {
      if (!this.#takeToken()) return
      const job = this.#important.length > 0 ? this.#important.shift() : this.#rest.shift()
      if (job !== undefined) this.#start(job)
    }
  }

  #refreshTokens(): number {
    const now = performance.now()
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#tokensAt) * this.#qps) / 1000)
    this.#tokensAt = now
    return this.#tokens
  }

  /** One write's worth of the rate; without one, the pump runs again when the next is due. */
  #takeToken(): boolean {
    if (!Number.isFinite(this.#qps)) return true
    if (this.#refreshTokens() >= 1) {
      this.#tokens -= 1
      return true
    }
    if (this.#refill === undefined) {
      this.#refill = setTimeout(
        () => {
          this.#refill = undefined
          this.#pump()
        },
        Math.ceil(((1 - this.#tokens) * 1000) / this.#qps),
      )
    }
    return false
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
      // A repeat recorded while this write ran waited for it; now it queues like any write (and pays the rate).
      const held = entry.next
      if (held !== undefined) (held.important ? this.#important : this.#rest).push(held)
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
