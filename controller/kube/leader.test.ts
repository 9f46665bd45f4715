/**
 * Leader election against a real kube-apiserver (1.20.2, test/kube.ts). Short durations (lease 3 s,
 * renew 2 s, retry 0.5 s) keep it quick; assertions are relations (who holds the Lease, what the Lease's
 * own timestamps say, what happened before what), never wall-clock limits tighter than a lease duration.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startKube } from '../../test/kube.ts'
import type { KubeServer } from '../../test/kube.ts'
import { KubeClient } from './client.ts'
import { LeaderElector } from './leader.ts'
import type { LeaderElectionOptions } from './leader.ts'

const LEASE = 'ark-controller'
const FAST = { leaseDurationSeconds: 3, renewDeadlineSeconds: 2, retryPeriodSeconds: 0.5 } as const
const helper = fileURLToPath(new URL('./leader-child.test-helper.ts', import.meta.url))

let kube: KubeServer
let client: KubeClient
beforeAll(async () => {
  kube = await startKube()
  client = await KubeClient.fromKubeConfig(kube.config())
}, 120_000)
afterAll(async () => {
  client.close()
  await kube.stop()
})

/** An elector plus what its callbacks saw. */
interface Candidate {
  readonly id: string
  readonly elector: LeaderElector
  readonly signals: AbortSignal[]
  readonly newLeaders: string[]
  stoppedLeading: number
  readonly warnings: string[]
}

const running: LeaderElector[] = []
const children: ChildProcess[] = []
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
  await Promise.all(running.splice(0).map((e) => e.stop()))
})

function candidate(
  namespace: string,
  id: string,
  overrides: Partial<LeaderElectionOptions> = {},
  start = true,
): Candidate {
  const c: Candidate = {
    id,
    elector: undefined as never,
    signals: [],
    newLeaders: [],
    stoppedLeading: 0,
    warnings: [],
  }
  const elector = new LeaderElector({
    client,
    namespace,
    name: LEASE,
    identity: id,
    ...FAST,
    onStartedLeading: (signal) => c.signals.push(signal),
    onStoppedLeading: () => (c.stoppedLeading += 1),
    onNewLeader: (holder) => c.newLeaders.push(holder),
    log: {
      info: () => undefined,
      warn: (msg, fields) => c.warnings.push(`${msg} ${JSON.stringify(fields)}`),
    },
    ...overrides,
  })
  Object.assign(c, { elector })
  running.push(elector)
  if (start) elector.start()
  return c
}

async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  ms = 15_000,
): Promise<void> {
  const until = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for: ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

interface LeaseSpec {
  holderIdentity?: string
  leaseDurationSeconds?: number
  acquireTime?: string
  renewTime?: string
  leaseTransitions?: number
}

async function leaseSpec(namespace: string): Promise<LeaseSpec> {
  const out = await kube.kubectl(['get', 'lease', LEASE, '-n', namespace, '-o', 'json'])
  return (JSON.parse(out) as { spec?: LeaseSpec }).spec ?? {}
}

/**
 * Writes the Lease as another party would: an unconditional replace. The API server can still answer
 * Conflict when the write races the holder's renewal (it renews every few hundred ms), so retry then.
 */
async function replaceLease(lease: object): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await kube.kubectl(['replace', '-f', '-'], { input: JSON.stringify(lease) })
      return
    } catch (error) {
      if (attempt >= 5 || !String(error).includes('(Conflict)')) throw error
    }
  }
}

/** Samples isLeader of every candidate every 50 ms; records any moment at which two believed they led. */
function sampleLeaders(candidates: readonly Candidate[]): {
  stop(): { samples: number; overlaps: string[] }
} {
  let samples = 0
  const overlaps: string[] = []
  const timer = setInterval(() => {
    samples += 1
    const leaders = candidates.filter((c) => c.elector.isLeader).map((c) => c.id)
    if (leaders.length > 1) overlaps.push(leaders.join('+'))
  }, 50)
  return {
    stop() {
      clearInterval(timer)
      return { samples, overlaps }
    },
  }
}

function child(
  namespace: string,
  identity: string,
  timing: Record<string, number> = FAST,
): {
  process: ChildProcess
  events: string[]
  exited: Promise<number | null>
} {
  const proc = spawn(process.execPath, [helper], {
    env: {
      ...process.env,
      LEADER_CHILD: JSON.stringify({
        kubeconfig: kube.kubeconfig,
        namespace,
        name: LEASE,
        identity,
        ...timing,
      }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(proc)
  const events: string[] = []
  let buffered = ''
  proc.stdout.setEncoding('utf8')
  proc.stdout.on('data', (chunk: string) => {
    buffered += chunk
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      try {
        events.push((JSON.parse(line) as { event: string }).event)
      } catch {
        events.push(line)
      }
    }
  })
  let stderr = ''
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (chunk: string) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  void exited.then((code) => {
    if (code !== 0 && code !== null) events.push(`exit ${String(code)}: ${stderr}`)
  })
  return { process: proc, events, exited }
}

describe('LeaderElector on a coordination.k8s.io/v1 Lease', () => {
  it('rejects timings with which a stale leader could overlap its successor', () => {
    const base = {
      client,
      namespace: 'x',
      name: LEASE,
      identity: 'a',
      onStartedLeading: () => {},
    }
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 3, renewDeadlineSeconds: 3 })).toThrow(
      /renewDeadlineSeconds \(3\) must be > 0 and < leaseDurationSeconds \(3\)/,
    )
    expect(() => new LeaderElector({ ...base, renewDeadlineSeconds: 2, retryPeriodSeconds: 2 })).toThrow(
      /retryPeriodSeconds/,
    )
    expect(() => new LeaderElector({ ...base, identity: '' })).toThrow(/identity must not be empty/)
    expect(() => new LeaderElector({ ...base, leaseDurationSeconds: 2.5 })).toThrow(/whole number/)
  })

  it('one of two electors leads, the other follows, and kubectl shows the holder', async () => {
    const ns = await kube.namespace('leader')
    const a = candidate(ns, 'a')
    const b = candidate(ns, 'b')
    await waitFor('one elector to lead', () => a.elector.isLeader || b.elector.isLeader)
    const [leader, follower] = a.elector.isLeader ? [a, b] : [b, a]
    // Several renewals later nothing has changed: still one leader, the same one.
    await sleep(2_000)
    expect(leader.elector.isLeader).toBe(true)
    expect(follower.elector.isLeader).toBe(false)
    expect(leader.signals).toHaveLength(1)
    expect(leader.signals[0]!.aborted).toBe(false)
    expect(follower.signals).toHaveLength(0)

    const spec = await leaseSpec(ns)
    expect(spec.holderIdentity).toBe(leader.id)
    expect(spec.leaseDurationSeconds).toBe(3)
    expect(spec.leaseTransitions).toBe(0)
    // MicroTime on the wire: RFC3339 with six fractional digits.
    expect(spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    expect(spec.acquireTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
    expect(Date.parse(spec.renewTime!)).toBeGreaterThan(Date.parse(spec.acquireTime!))
    const table = await kube.kubectl(['get', 'lease', LEASE, '-n', ns])
    expect(table).toMatch(new RegExp(`${LEASE}\\s+${leader.id}\\s`))

    await waitFor('the follower to read the Lease', () => follower.elector.leader === leader.id)
    expect(leader.elector.leader).toBe(leader.id)
    expect(leader.newLeaders).toEqual([leader.id])
    expect(follower.newLeaders).toEqual([leader.id])
  }, 30_000)

  it('writes MicroTimes the API server keeps as written, and sends back the ones it read unchanged', async () => {
    const ns = await kube.namespace('leader')
    // A clock with known milliseconds: 2026-12-06T04:05:06.123Z, then one second later at every reading.
    let readings = 0
    const start = Date.UTC(2026, 11, 6, 4, 5, 6, 123)
    const a = candidate(ns, 'a', { now: () => new Date(start + 1_000 * readings++) })
    await waitFor('a to lead', () => a.elector.isLeader)
    const created = await leaseSpec(ns)
    // The first reading created the Lease; the server returns the string as written, six fractional digits.
    expect(created.acquireTime).toBe('2026-12-06T04:05:06.123000Z')
    await waitFor('a to renew', async () => (await leaseSpec(ns)).renewTime !== created.renewTime)
    const renewed = await leaseSpec(ns)
    expect(renewed.renewTime).toMatch(/^2026-12-06T04:0\d:\d\d\.123000Z$/)
    expect(renewed.acquireTime).toBe(created.acquireTime)

    // A Lease written by someone else with microseconds a Date cannot hold, still naming a as holder (an
    // unconditional replace: a's next renewal on its old resourceVersion gets 409, it reads and renews).
    const precise = '2026-12-06T03:00:00.654321Z'
    await replaceLease({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: LEASE, namespace: ns },
      spec: {
        holderIdentity: 'a',
        leaseDurationSeconds: 3,
        acquireTime: precise,
        renewTime: precise,
        leaseTransitions: 4,
      },
    })
    await waitFor('a to renew the replaced Lease', async () => (await leaseSpec(ns)).renewTime !== precise)
    const after = await leaseSpec(ns)
    expect(after.holderIdentity).toBe('a')
    expect(after.acquireTime).toBe(precise)
    expect(after.leaseTransitions).toBe(4)
    expect(after.renewTime).toMatch(/^2026-12-06T04:\d\d:\d\d\.123000Z$/)
    expect(a.warnings.some((w) => w.includes('renew lost a race') && w.includes('"status":409'))).toBe(true)
    expect(a.elector.isLeader).toBe(true)
    expect(a.signals).toHaveLength(1)
    expect(a.stoppedLeading).toBe(0)
  }, 30_000)

  it('stop() releases the Lease and the follower takes over without waiting for it to expire', async () => {
    const ns = await kube.namespace('leader')
    // A long lease: a takeover sooner than 10 s after stop() can only come from the release.
    const slow = { leaseDurationSeconds: 10, renewDeadlineSeconds: 6, retryPeriodSeconds: 0.5 }
    const a = candidate(ns, 'a', slow)
    await waitFor('a to lead', () => a.elector.isLeader)
    const b = candidate(ns, 'b', slow)
    await waitFor('b to see a as leader', () => b.elector.leader === 'a')
    const sampler = sampleLeaders([a, b])

    const stoppedAt = Date.now()
    await a.elector.stop()
    expect(a.elector.isLeader).toBe(false)
    expect(a.signals[0]!.aborted).toBe(true)
    expect(a.stoppedLeading).toBe(1)
    const released = await leaseSpec(ns)
    // Either still released (holder '') or b has already taken it.
    expect(['', 'b']).toContain(released.holderIdentity ?? '')

    await waitFor('b to lead', () => b.elector.isLeader, 9_000)
    const tookOver = Date.now() - stoppedAt
    const { samples, overlaps } = sampler.stop()
    expect(tookOver).toBeLessThan(10_000)
    expect(overlaps).toEqual([])
    expect(samples).toBeGreaterThan(0)

    const spec = await leaseSpec(ns)
    expect(spec.holderIdentity).toBe('b')
    expect(spec.leaseTransitions).toBe(1)
    expect(spec.leaseDurationSeconds).toBe(10)
    expect(b.newLeaders).toEqual(['a', 'b'])
  }, 40_000)

  it('two electors never both believe they lead while leadership changes hands', async () => {
    const ns = await kube.namespace('leader')
    const all = [candidate(ns, 'a'), candidate(ns, 'b'), candidate(ns, 'c')]
    const sampler = sampleLeaders(all)
    const leaders: string[] = []
    const remaining = [...all]
    // Hand over twice: stop whoever leads, and each time someone else must take over.
    for (let round = 0; round < 2; round++) {
      await waitFor(`someone to lead (round ${round + 1})`, () => remaining.some((c) => c.elector.isLeader))
      const leader = remaining.find((c) => c.elector.isLeader)!
      leaders.push(leader.id)
      await sleep(1_000)
      await leader.elector.stop()
      remaining.splice(remaining.indexOf(leader), 1)
    }
    await waitFor('the last elector to lead', () => remaining[0]!.elector.isLeader)
    leaders.push(remaining[0]!.id)
    await sleep(1_000)
    const { samples, overlaps } = sampler.stop()
    expect(new Set(leaders).size).toBe(3)
    expect(overlaps).toEqual([])
    expect(samples).toBeGreaterThan(20)
    expect((await leaseSpec(ns)).leaseTransitions).toBe(2)
  }, 60_000)

  it('a leader killed with SIGKILL is replaced once its lease has expired, not before', async () => {
    const ns = await kube.namespace('leader')
    const timing = { leaseDurationSeconds: 4, renewDeadlineSeconds: 3, retryPeriodSeconds: 0.5 }
    const doomed = child(ns, 'doomed', timing)
    await waitFor('the child to lead', () => doomed.events.includes('leading'), 20_000)
    const b = candidate(ns, 'b', timing)
    await waitFor('b to see the child as leader', () => b.elector.leader === 'doomed')
    await sleep(1_000)

    doomed.process.kill('SIGKILL')
    await doomed.exited
    const killedAt = Date.now()
    // The child is dead: this is the last record it wrote.
    const last = await leaseSpec(ns)
    expect(last.holderIdentity).toBe('doomed')
    expect(b.elector.isLeader).toBe(false)

    await waitFor('b to take over', () => b.elector.isLeader, 20_000)
    const tookOver = Date.now() - killedAt
    const spec = await leaseSpec(ns)
    expect(spec.holderIdentity).toBe('b')
    expect(spec.leaseTransitions).toBe((last.leaseTransitions ?? 0) + 1)
    // b waited a full lease duration after the last renewal it saw (both clocks are this machine's)...
    expect(Date.parse(spec.acquireTime!) - Date.parse(last.renewTime!)).toBeGreaterThanOrEqual(4_000)
    // ...and not much more: about one lease duration.
    expect(tookOver).toBeLessThan(2 * 4_000)
  }, 60_000)

  it('a child stopped with SIGTERM releases the Lease and then exits on its own', async () => {
    const ns = await kube.namespace('leader')
    const slow = { leaseDurationSeconds: 15, renewDeadlineSeconds: 10, retryPeriodSeconds: 0.5 }
    const leader = child(ns, 'child', slow)
    await waitFor('the child to lead', () => leader.events.includes('leading'), 20_000)
    const b = candidate(ns, 'b', slow)
    await waitFor('b to see the child as leader', () => b.elector.leader === 'child')

    leader.process.kill('SIGTERM')
    // Nothing calls process.exit(): the child ends only if stop() left no timer or socket keeping it alive.
    const code = await Promise.race([leader.exited, sleep(14_000).then(() => 'still running' as const)])
    expect(code).toBe(0)
    expect(leader.events).toEqual(['started', 'leading', 'stopped-leading', 'stopped'])
    // The release, not the 15 s expiry, is what lets b in.
    await waitFor('b to lead', () => b.elector.isLeader, 14_000)
    expect((await leaseSpec(ns)).holderIdentity).toBe('b')
  }, 60_000)

  it('a leader whose Lease is taken by someone else steps down and its signal aborts', async () => {
    const ns = await kube.namespace('leader')
    const a = candidate(ns, 'a')
    await waitFor('a to lead', () => a.elector.isLeader)
    const signal = a.signals[0]!
    let abortedWhileLeader: boolean | undefined
    signal.addEventListener('abort', () => (abortedWhileLeader = a.elector.isLeader))

    // Another party overwrites the Lease (no resourceVersion: an unconditional replace).
    const now = new Date().toISOString().replace('Z', '000Z')
    const intruder = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: LEASE, namespace: ns },
      spec: {
        holderIdentity: 'intruder',
        leaseDurationSeconds: 60,
        acquireTime: now,
        renewTime: now,
        leaseTransitions: 7,
      },
    }
    await replaceLease(intruder)

    await waitFor('a to step down', () => signal.aborted)
    expect(abortedWhileLeader).toBe(false)
    expect(a.elector.isLeader).toBe(false)
    expect(a.stoppedLeading).toBe(1)
    expect(a.elector.leader).toBe('intruder')
    expect(signal.reason).toBeInstanceOf(Error)
    // It keeps campaigning but respects the intruder's 60 s lease.
    await sleep(2_000)
    expect(a.elector.isLeader).toBe(false)
    expect((await leaseSpec(ns)).holderIdentity).toBe('intruder')
    expect(a.newLeaders).toEqual(['a', 'intruder'])
  }, 30_000)

  it('stop() called from inside onStartedLeading ends leadership and releases the Lease', async () => {
    const ns = await kube.namespace('leader')
    let stopping: Promise<void> | undefined
    let signal: AbortSignal | undefined
    const a = candidate(ns, 'a', {
      onStartedLeading: (s) => {
        signal = s
        stopping = a.elector.stop()
      },
    })
    await waitFor('a to lead and stop itself', () => stopping !== undefined)
    await stopping
    expect(signal!.aborted).toBe(true)
    expect(a.elector.isLeader).toBe(false)
    expect(a.stoppedLeading).toBe(1)
    const spec = await leaseSpec(ns)
    expect(spec.holderIdentity ?? '').toBe('')
    expect(spec.leaseDurationSeconds).toBe(1)
  }, 30_000)

  it('a leader whose Lease is deleted recreates it and keeps leading', async () => {
    const ns = await kube.namespace('leader')
    const a = candidate(ns, 'a')
    await waitFor('a to lead', () => a.elector.isLeader)
    await kube.kubectl(['delete', 'lease', LEASE, '-n', ns])
    await waitFor('the Lease to exist again, held by a', async () => {
      const out = await kube.kubectl(['get', 'lease', '-n', ns, '-o', 'json'])
      const items = (JSON.parse(out) as { items: { spec?: LeaseSpec }[] }).items
      return items[0]?.spec?.holderIdentity === 'a'
    })
    expect(a.elector.isLeader).toBe(true)
  }, 30_000)

  it('a leader cut off from the API server steps down within its renew deadline and leads again after', async () => {
    const ns = await kube.namespace('leader')
    const a = candidate(ns, 'a')
    await waitFor('a to lead', () => a.elector.isLeader)
    const before = await leaseSpec(ns)
    const signal = a.signals[0]!

    // Freeze the API server: requests hang rather than fail, the worst case for a renewal.
    process.kill(kube.apiserverPid, 'SIGSTOP')
    let steppedDownWhileFrozen: boolean
    try {
      await waitFor('a to step down', () => signal.aborted, 15_000)
      steppedDownWhileFrozen = true
      expect(a.elector.isLeader).toBe(false)
      expect(a.stoppedLeading).toBe(1)
    } finally {
      process.kill(kube.apiserverPid, 'SIGCONT')
    }
    expect(steppedDownWhileFrozen).toBe(true)
    expect(a.warnings.some((w) => w.includes('stopped leading') && w.includes('renewDeadline'))).toBe(true)

    await waitFor('a to lead again', () => a.elector.isLeader, 20_000)
    expect(a.signals).toHaveLength(2)
    expect(a.signals[1]!.aborted).toBe(false)
    const after = await leaseSpec(ns)
    // Nobody else held it in between: same holder, same acquisition count.
    expect(after.holderIdentity).toBe('a')
    expect(after.leaseTransitions).toBe(before.leaseTransitions)
  }, 60_000)

  it('trusts its own clock, not the Lease timestamps: a leader with a skewed clock keeps the Lease', async () => {
    const ns = await kube.namespace('leader')
    const hour = 3_600_000
    const a = candidate(ns, 'a', { now: () => new Date(Date.now() - hour) })
    await waitFor('a to lead', () => a.elector.isLeader)
    const b = candidate(ns, 'b')
    const sampler = sampleLeaders([a, b])
    // By the Lease's own timestamps a's lease expired an hour ago; b must still wait for it to stop renewing.
    await sleep(3 * 3_000)
    const { overlaps } = sampler.stop()
    expect(overlaps).toEqual([])
    expect(a.elector.isLeader).toBe(true)
    expect(b.elector.isLeader).toBe(false)
    expect(b.elector.leader).toBe('a')
    const spec = await leaseSpec(ns)
    expect(Date.now() - Date.parse(spec.renewTime!)).toBeGreaterThan(hour - 60_000)
    expect(spec.holderIdentity).toBe('a')
  }, 30_000)
})
