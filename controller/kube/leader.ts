/**
 * Leader election on a coordination.k8s.io/v1 Lease, the way client-go's `leaderelection` package does it:
 *
 * - A candidate takes the Lease when it is absent, held by nobody (`holderIdentity: ''`), or has not changed
 *   for `leaseDurationSeconds` as measured by THIS process's monotonic clock since it last saw the record
 *   change. The timestamps inside the Lease are written but never trusted, so clock skew between
 *   replicas does not matter.
 * - Every write is a replace carrying the `resourceVersion` last read: when two candidates race, the API
 *   server lets one win and answers the other 409.
 * - The leader renews every `retryPeriod`. It believes it leads only until `renewDeadline` after the last
 *   renewal it SENT that succeeded; since a follower waits `leaseDuration` (> renewDeadline) after it
 *   RECEIVED that record, a leader cut off from the API server steps down before anyone else can take over.
 * - `stop()` releases the Lease (holder '', duration 1 s, as client-go's ReleaseOnCancel does), so a
 *   successor takes over at its next poll instead of waiting for the Lease to expire.
 *
 * Beyond client-go: a leader that reads the Lease and finds someone else holding it steps down at once
 * (client-go keeps retrying until its renew deadline), and after losing leadership the elector goes back
 * to campaigning instead of returning.
 */
import type { KubeClient } from './client.ts'
import { KubeError } from './client.ts'

export interface LeaderElectionLog {
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
}

export interface LeaderElectionOptions {
  /** The client every Lease call goes through (its credentials, TLS and keep-alive connections). */
  readonly client: KubeClient
  readonly namespace: string
  /** Lease name, e.g. 'ark-controller'. */
  readonly name: string
  /** Unique per process: hostname + random. */
  readonly identity: string
  /** How long followers wait after the last change they saw before taking over. Whole seconds; default 15. */
  readonly leaseDurationSeconds?: number
  /** How long the leader keeps leading without a successful renewal. Default 10; must be < leaseDuration. */
  readonly renewDeadlineSeconds?: number
  /** Pause between attempts to acquire or renew. Default 2; 1.2 x retryPeriod must be < renewDeadline. */
  readonly retryPeriodSeconds?: number
  /** Called on becoming leader; `signal` aborts when leadership is lost or stop() is called. */
  readonly onStartedLeading: (signal: AbortSignal) => void
  readonly onStoppedLeading?: () => void
  /** Called whenever the observed holder changes to a new (non-empty) identity, this process's included. */
  readonly onNewLeader?: (identity: string) => void
  readonly log?: LeaderElectionLog
  /** Clock for the timestamps written into the Lease (acquireTime, renewTime). Intervals use a monotonic clock. */
  readonly now?: () => Date
}

/** A coordination.k8s.io/v1 Lease as JSON on the wire: the fields the elector reads or writes. */
interface Lease {
  readonly apiVersion?: string
  readonly kind?: string
  readonly metadata?: {
    readonly name?: string
    readonly namespace?: string
    readonly resourceVersion?: string
    readonly [field: string]: unknown
  }
  readonly spec?: LeaseSpec
}

/** MicroTime fields are strings: RFC3339 with exactly six fractional digits (see microTime). */
interface LeaseSpec {
  readonly holderIdentity?: string
  readonly leaseDurationSeconds?: number
  readonly acquireTime?: string
  readonly renewTime?: string
  readonly leaseTransitions?: number
}

/** client-go's JitterFactor for the acquire loop: wait retryPeriod * (1 + rand * 1.2). */
const JITTER = 1.2

/** The fields of a LeaseSpec that client-go's LeaderElectionRecord carries; times as sent on the wire. */
interface LeaderRecord {
  readonly holderIdentity: string
  readonly leaseDurationSeconds: number
  readonly acquireTime: string | undefined
  readonly renewTime: string | undefined
  readonly leaseTransitions: number
}

/** One attempt's result: we hold the Lease, someone else validly holds it, or the attempt failed. */
type Attempt = 'held' | 'held-by-other' | 'failed'

const silent: LeaderElectionLog = { info: () => undefined, warn: () => undefined }

export class LeaderElector {
  private readonly client: KubeClient
  /** The Leases collection of the namespace, and the Lease itself. */
  private readonly leasesPath: string
  private readonly leasePath: string
  private readonly namespace: string
  private readonly name: string
  private readonly identity: string
  private readonly leaseSeconds: number
  private readonly renewDeadlineMs: number
  private readonly retryMs: number
  private readonly options: LeaderElectionOptions
  private readonly log: LeaderElectionLog
  private readonly now: () => Date
  private readonly fields: Record<string, unknown>

  /** The Lease as last read or written (its resourceVersion guards the next replace). */
  private lease: Lease | undefined
  private observed: LeaderRecord | undefined
  private observedKey = ''
  /** Monotonic ms at which `observed` was seen to change (or was written by us). */
  private observedAt = 0
  private reportedLeader = ''

  private leading = false
  /** Monotonic ms until which the current leadership is trusted (last successful renewal sent + renewDeadline). */
  private validUntil = 0
  private leadership: AbortController | undefined
  private deadlineTimer: NodeJS.Timeout | undefined

  private loop: Promise<void> | undefined
  private stopped = false
  private stopping: Promise<void> | undefined
  private wake: (() => void) | undefined

  constructor(options: LeaderElectionOptions) {
    const lease = options.leaseDurationSeconds ?? 15
    const renew = options.renewDeadlineSeconds ?? 10
    const retry = options.retryPeriodSeconds ?? 2
    const where = `leader election for Lease ${options.namespace}/${options.name}`
    if (!options.identity) throw new Error(`${where}: identity must not be empty (use hostname + random)`)
    if (!options.namespace || !options.name) throw new Error(`${where}: namespace and name are required`)
    if (!Number.isInteger(lease) || lease < 1)
      throw new Error(`${where}: leaseDurationSeconds must be a whole number >= 1, got ${lease}`)
    if (!(renew > 0) || renew >= lease)
      throw new Error(
        `${where}: renewDeadlineSeconds (${renew}) must be > 0 and < leaseDurationSeconds (${lease})`,
      )
    if (!(retry > 0) || JITTER * retry >= renew)
      throw new Error(
        `${where}: retryPeriodSeconds (${retry}) must be > 0 and 1.2 x it < renewDeadlineSeconds (${renew})`,
      )
    this.options = options
    this.client = options.client
    this.leasesPath = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases`
    this.leasePath = `${this.leasesPath}/${encodeURIComponent(options.name)}`
    this.namespace = options.namespace
    this.name = options.name
    this.identity = options.identity
    this.leaseSeconds = lease
    this.renewDeadlineMs = renew * 1000
    this.retryMs = retry * 1000
    this.log = options.log ?? silent
    this.now = options.now ?? (() => new Date())
    this.fields = { lease: `${options.namespace}/${options.name}`, identity: options.identity }
  }

  /** Begins campaigning in the background. Never throws; API errors are retried every retryPeriod. */
  start(): void {
    if (this.loop || this.stopped) return
    this.loop = this.run()
  }

  /** True while this process holds the Lease and its last renewal is younger than renewDeadline. */
  get isLeader(): boolean {
    return this.leading && performance.now() < this.validUntil
  }

  /** holderIdentity last observed; undefined when nobody holds the Lease or it has not been read yet. */
  get leader(): string | undefined {
    return this.observed?.holderIdentity || undefined
  }

  /**
   * Stops campaigning. If leading: aborts the leadership signal, waits for an in-flight request (bounded by
   * renewDeadline), releases the Lease and calls onStoppedLeading. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown()
    return this.stopping
  }

  private async shutdown(): Promise<void> {
    this.stopped = true
    const wasLeading = this.leading
    this.endLeadership('elector stopped')
    this.wake?.()
    await this.loop
    await this.release()
    if (wasLeading) this.callback('onStoppedLeading', () => this.options.onStoppedLeading?.())
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const sentAt = performance.now()
      const attempt = await this.tryAcquireOrRenew()
      // stop() may have run while the request was in flight; it releases what this attempt acquired.
      if (this.hasStopped()) return
      if (attempt === 'held' && sentAt + this.renewDeadlineMs > performance.now()) {
        this.validUntil = sentAt + this.renewDeadlineMs
        if (!this.leading) this.startLeading()
        if (this.leading) this.armDeadline() // onStartedLeading may have called stop()
        await this.sleep(this.retryMs)
        continue
      }
      if (this.leading) {
        if (attempt === 'held-by-other') {
          this.stepDown('the Lease is held by another candidate', { holder: this.observed?.holderIdentity })
        } else if (performance.now() >= this.validUntil) {
          this.stepDown('renewal did not succeed within renewDeadline')
        }
        await this.sleep(this.retryMs)
      } else {
        await this.sleep(this.retryMs * (1 + Math.random() * JITTER))
      }
    }
  }

  private hasStopped(): boolean {
    return this.stopped
  }

  /** client-go's tryAcquireOrRenew: one attempt to create, take over or renew the Lease. */
  private async tryAcquireOrRenew(): Promise<Attempt> {
    const now = microTime(this.now())
    const desired: LeaderRecord = {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseSeconds,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    }

    // 1. Fast path: we hold it and nothing has told us otherwise; renew on top of the version we last saw.
    const previous = this.observed
    if (previous?.holderIdentity === this.identity && this.lease && this.observedValid()) {
      const renewed = {
        ...desired,
        acquireTime: previous.acquireTime,
        leaseTransitions: previous.leaseTransitions,
      }
      if (await this.write('renew', renewed)) return 'held'
    }

    // 2. Read the Lease; create it when absent.
    let current: Lease
    try {
      current = await this.request('GET', this.leasePath)
    } catch (err) {
      if (statusCode(err) !== 404) {
        this.log.warn('leader election: reading the Lease failed', { ...this.fields, ...describe(err) })
        return 'failed'
      }
      return (await this.create(desired)) ? 'held' : 'failed'
    }
    this.observe(current)
    const record = this.observed
    if (!record) return 'failed'

    // 3. Someone else holds it and, by our clock, has renewed within their lease duration: leave it.
    if (record.holderIdentity && record.holderIdentity !== this.identity && this.observedValid()) {
      return 'held-by-other'
    }

    // 4. Ours to renew, or free / expired to take over.
    const next: LeaderRecord =
      record.holderIdentity === this.identity
        ? { ...desired, acquireTime: record.acquireTime, leaseTransitions: record.leaseTransitions }
        : { ...desired, leaseTransitions: record.leaseTransitions + 1 }
    if (record.holderIdentity !== this.identity) {
      this.log.info('leader election: taking over the Lease', {
        ...this.fields,
        previousHolder: record.holderIdentity || undefined,
      })
    }
    return (await this.write(record.holderIdentity === this.identity ? 'renew' : 'acquire', next))
      ? 'held'
      : 'failed'
  }

  /** Replaces the Lease with `record` on top of the last seen resourceVersion; false on any failure. */
  private async write(action: 'renew' | 'acquire' | 'release', record: LeaderRecord): Promise<boolean> {
    const base = this.lease
    if (!base) return false
    try {
      const body: Lease = {
        apiVersion: base.apiVersion,
        kind: base.kind,
        metadata: base.metadata,
        spec: toSpec(record),
      }
      const written = await this.request('PUT', this.leasePath, body)
      this.recordWritten(written)
      return true
    } catch (err) {
      const code = statusCode(err)
      const msg =
        code === 409
          ? `leader election: ${action} lost a race (the Lease changed since it was read)`
          : `leader election: ${action} failed`
      this.log.warn(msg, { ...this.fields, ...describe(err) })
      return false
    }
  }

  private async create(record: LeaderRecord): Promise<boolean> {
    try {
      const body: Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.name, namespace: this.namespace },
        spec: toSpec(record),
      }
      const created = await this.request('POST', this.leasesPath, body)
      this.log.info('leader election: created the Lease', this.fields)
      this.recordWritten(created)
      return true
    } catch (err) {
      this.log.warn('leader election: creating the Lease failed', { ...this.fields, ...describe(err) })
      return false
    }
  }

  /** client-go's release(): hand the Lease back so a successor need not wait for it to expire. */
  private async release(): Promise<void> {
    if (this.observed?.holderIdentity !== this.identity || !this.lease) return
    const now = microTime(this.now())
    const released = await this.write('release', {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: this.observed.leaseTransitions,
    })
    if (released) this.log.info('leader election: released the Lease', this.fields)
  }

  /** A record read from the server: its observation time moves only when its content changed. */
  private observe(lease: Lease): void {
    this.lease = lease
    const record = fromSpec(lease.spec)
    const key = JSON.stringify(record)
    if (key !== this.observedKey) {
      this.observed = record
      this.observedKey = key
      this.observedAt = performance.now()
    }
    this.reportLeader()
  }

  /** A record we wrote: observed now (client-go's setObservedRecord). */
  private recordWritten(lease: Lease): void {
    this.lease = lease
    this.observed = fromSpec(lease.spec)
    this.observedKey = JSON.stringify(this.observed)
    this.observedAt = performance.now()
    this.reportLeader()
  }

  private observedValid(): boolean {
    const seconds = this.observed?.leaseDurationSeconds ?? 0
    return this.observedAt + seconds * 1000 > performance.now()
  }

  private reportLeader(): void {
    const holder = this.observed?.holderIdentity ?? ''
    if (!holder || holder === this.reportedLeader) return
    this.reportedLeader = holder
    this.log.info('leader election: new leader observed', { ...this.fields, holder })
    this.callback('onNewLeader', () => this.options.onNewLeader?.(holder))
  }

  private startLeading(): void {
    this.leading = true
    const leadership = new AbortController()
    this.leadership = leadership
    this.log.info('leader election: started leading', this.fields)
    this.callback('onStartedLeading', () => this.options.onStartedLeading(leadership.signal))
  }

  private stepDown(reason: string, extra: Record<string, unknown> = {}): void {
    if (!this.leading) return
    this.log.warn('leader election: stopped leading', { ...this.fields, reason, ...extra })
    this.endLeadership(reason)
    this.callback('onStoppedLeading', () => this.options.onStoppedLeading?.())
  }

  private endLeadership(reason: string): void {
    if (!this.leading) return
    this.leading = false
    clearTimeout(this.deadlineTimer)
    this.deadlineTimer = undefined
    this.leadership?.abort(new Error(`leadership of Lease ${this.namespace}/${this.name} ended: ${reason}`))
    this.leadership = undefined
  }

  /** Steps down at validUntil even if the loop is stuck in a request. */
  private armDeadline(): void {
    clearTimeout(this.deadlineTimer)
    this.deadlineTimer = setTimeout(
      () => {
        this.deadlineTimer = undefined
        if (performance.now() >= this.validUntil)
          this.stepDown('renewal did not succeed within renewDeadline')
        else this.armDeadline()
      },
      Math.max(0, this.validUntil - performance.now()),
    )
    this.deadlineTimer.unref()
  }

  /** The loop's pause; stop() cuts it short. Kept referenced while running: the elector is live work. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) {
        resolve()
        return
      }
      const done = (): void => {
        clearTimeout(timer)
        this.wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.wake = done
    })
  }

  /** Runs one API call with a renewDeadline timeout (KubeClient's default is 30 s, longer than any lease). */
  private request(method: 'GET' | 'POST' | 'PUT', path: string, body?: Lease): Promise<Lease> {
    return this.client.request<Lease>(method, path, { body, timeoutMs: this.renewDeadlineMs })
  }

  private callback(name: string, fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.log.warn(`leader election: ${name} threw`, { ...this.fields, error: errorMessage(err) })
    }
  }
}

/**
 * A metav1.MicroTime as the API server requires it: RFC3339 in UTC with exactly six fractional digits
 * (2026-12-06T04:05:06.123000Z). A Date has milliseconds only, so the last three digits are zeros; times read
 * from the server are kept as the strings they were read as and sent back unchanged.
 */
function microTime(date: Date): string {
  return `${date.toISOString().slice(0, -1)}000Z`
}

/** A spec as written: every field, holderIdentity '' included (a release writes it; Lease accepts it). */
function toSpec(record: LeaderRecord): LeaseSpec {
  return {
    holderIdentity: record.holderIdentity,
    leaseDurationSeconds: record.leaseDurationSeconds,
    leaseTransitions: record.leaseTransitions,
    ...(record.acquireTime === undefined ? {} : { acquireTime: record.acquireTime }),
    ...(record.renewTime === undefined ? {} : { renewTime: record.renewTime }),
  }
}

function fromSpec(spec: LeaseSpec | undefined): LeaderRecord {
  return {
    holderIdentity: spec?.holderIdentity ?? '',
    leaseDurationSeconds: spec?.leaseDurationSeconds ?? 0,
    acquireTime: spec?.acquireTime,
    renewTime: spec?.renewTime,
    leaseTransitions: spec?.leaseTransitions ?? 0,
  }
}

function statusCode(err: unknown): number | undefined {
  return err instanceof KubeError ? err.status : undefined
}

/**
 * Loggable facts about a failed call: the HTTP status and the API server's Status message (a KubeError's
 * message carries it with the method and path), never headers. A transport failure has no status.
 */
function describe(err: unknown): Record<string, unknown> {
  if (err instanceof KubeError) {
    return err.status === 0 ? { error: err.message } : { status: err.status, error: err.message }
  }
  return { error: errorMessage(err) }
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
    return `${err.message}${cause}`
  }
  return String(err)
}
