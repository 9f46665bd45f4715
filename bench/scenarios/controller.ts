/**
 * controller: ARK's own scale test on ark. 5,100 Queries across 51 namespaces (100 each), every one targeting
 * an agent on the mock model, created as fast as the API server takes them, against the real `ark controller`
 * (a child process) on a real kube-apiserver 1.20 + etcd (test/kube.ts). Measured from the first create to the
 * moment the last Query shows status.phase done (seen on a watch of queries across namespaces): Queries/s
 * drained, create-to-done latency, the controller's peak RSS, the CPU seconds of the controller, the API
 * server and etcd, the API requests each Query cost (the API server's apiserver_request_total), the Events
 * written against those recorded, and that every Query ran exactly once (pending -> (running, for runs past a second) -> done, one
 * response, never error).
 *
 * ARK (McKinsey) drained about 12 Queries/s in that test and its controller was OOM-killed at 128 MiB. The
 * targets: at least 300 Queries/s, at most 128 MiB, nothing lost.
 *
 * The baseline of the same run: before the controller starts, what each kind of write (create, finalizer,
 * claim (annotation and finalizer), status done, Event) costs the API server and etcd in CPU, alone. create + claim + done is the
 * floor of a Query that runs exactly once; the ratio of what a Query really cost them to that floor says
 * how much ark adds, and the floor says what any controller could drain on this machine.
 *
 * Knobs (environment): ARK_BENCH_QUERIES (default 5100), ARK_BENCH_NAMESPACES (51), ARK_BENCH_RUNS (1; the
 * measures are medians of the runs, each on a fresh API server), ARK_BENCH_CREATE_CONCURRENCY (32 creates in
 * flight), ARK_BENCH_CONTROLLER_ARGS (more `ark controller` flags, e.g. "--max-concurrent-queries 256"),
 * ARK_BENCH_NODE_FLAGS (node flags for the controller, e.g. "--max-old-space-size=80" as a 128 MiB container
 * would size its heap), ARK_BENCH_MEMORY_LIMIT=<MiB> (the controller runs in a cgroup v1 memory group of that
 * size, as a container limit holds it: the kernel OOM-kills past it and Node sizes its heap from it; default 128
 * where this process may make memory groups (root), 0 for none), ARK_BENCH_ARK_ENTRY=<file> (the ark entry point;
 * default the compiled build that containers run, made by build.ts for the run: bin/ark.ts runs the TypeScript
 * sources, whose type stripping costs about 27 MiB of RSS), ARK_BENCH_CPU_PROF=<dir> (`node --cpu-prof` on the
 * controller; the profile is written when it stops and summarised by owner: package or ark file),
 * ARK_BENCH_HEAP_SNAPSHOT=<dir> (a heap snapshot
 * of the controller once every Query is done).
 *
 * Not gated in CI: ARK_BENCH_QUERIES=510 takes about 36 s with the API server's start, but its Queries/s
 * moved between 41 and 84 from run to run on the shared 2-core machine (every process of the test competes
 * for the same cores as whatever else runs there).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { KubeList, KubeObject, WatchEvent } from '../../controller/kube/client.ts'
import { KubeClient, KubeError } from '../../controller/kube/client.ts'
import type { KubeServer } from '../../test/kube.ts'
import { startKube } from '../../test/kube.ts'
import { profileByOwner } from '../lib/cpuprofile.ts'
import type { ApiRequests, ControllerProcess } from '../lib/kube-bench.ts'
import {
  apiRequests,
  buildArk,
  countsSince,
  memoryCgroupsAvailable,
  promSamples,
  startController,
} from '../lib/kube-bench.ts'
import { cpuSeconds } from '../lib/processes.ts'
import { sampleRss, statusBytes } from '../lib/procstat.ts'
import type { Measure, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median, percentile } from '../lib/stats.ts'
import { SEED_000_EVENTS } from '../../test/seed-000.ts'

const GROUP = '/apis/ark.mckinsey.com/v1alpha1'
const AGENT = 'support-agent'
/** The Events seed 000 shows for one Query that ran an agent on a model once. */
const EVENTS_PER_QUERY = SEED_000_EVENTS
/** No Query finishing for this long ends the run: whatever is not done by then is lost. */
const STALL_MS = 60_000

function intEnv(name: string, fallback: number, min = 1): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${String(min)}`)
  return n
}

interface Settings {
  readonly queries: number
  readonly namespaces: number
  readonly runs: number
  readonly createConcurrency: number
  readonly controllerArgs: readonly string[]
  readonly nodeFlags: readonly string[]
  readonly cpuProfDir: string | undefined
  readonly heapDir: string | undefined
  /** ARK_BENCH_MEMORY_LIMIT: the controller runs in a memory cgroup of this many MiB, as in a container. */
  readonly memoryLimitMiB: number | undefined
  /** ARK_BENCH_ARK_ENTRY: the ark entry point to run; undefined: the compiled build, made for the run. */
  readonly entry: string | undefined
}

const words = (s: string | undefined) => (s ?? '').split(/\s+/).filter((w) => w !== '')

function settings(): Settings {
  const queries = intEnv('ARK_BENCH_QUERIES', 5100)
  const prof = process.env.ARK_BENCH_CPU_PROF
  const heap = process.env.ARK_BENCH_HEAP_SNAPSHOT
  return {
    queries,
    namespaces: Math.min(queries, intEnv('ARK_BENCH_NAMESPACES', 51)),
    runs: intEnv('ARK_BENCH_RUNS', 1),
    createConcurrency: intEnv('ARK_BENCH_CREATE_CONCURRENCY', 32),
    controllerArgs: words(process.env.ARK_BENCH_CONTROLLER_ARGS),
    nodeFlags: words(process.env.ARK_BENCH_NODE_FLAGS),
    cpuProfDir: prof === undefined || prof === '' ? undefined : resolve(prof),
    heapDir: heap === undefined || heap === '' ? undefined : resolve(heap),
    memoryLimitMiB: memoryLimit(),
    entry: process.env.ARK_BENCH_ARK_ENTRY ? resolve(process.env.ARK_BENCH_ARK_ENTRY) : undefined,
  }
}

/** ARK_BENCH_MEMORY_LIMIT, or a container's 128 MiB where memory groups can be made here. */
function memoryLimit(): number | undefined {
  const raw = process.env.ARK_BENCH_MEMORY_LIMIT
  if (raw === undefined || raw === '') return memoryCgroupsAvailable() ? 128 : undefined
  const mib = intEnv('ARK_BENCH_MEMORY_LIMIT', 128, 0)
  return mib === 0 ? undefined : mib
}

/** One Query as the bench saw it. */
interface Tracked {
  readonly namespace: string
  readonly name: string
  /** performance.now() when its create was sent. */
  sentAt: number
  doneAt: number | undefined
  /** The phases it went through, in order, each change once (pending, running, done). */
  readonly phases: string[]
}

interface RunFigures {
  readonly queries: number
  readonly createSeconds: number
  readonly createFailures: number
  readonly drainSeconds: number
  readonly perSecond: number
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number }
  readonly peakRssMiB: number
  /** The peak of RssAnon: VmRSS without the pages of mapped files (the node binary's code, shared). */
  readonly peakAnonMiB: number
  /** VmRSS once synced, leading and every agent available, before the first Query. */
  readonly idleRssMiB: number
  /** In a memory cgroup (ARK_BENCH_MEMORY_LIMIT): its peak usage, what a container limit counts. */
  readonly cgroupPeakMiB: number | undefined
  readonly cpu: {
    readonly controller: number
    readonly apiserver: number
    readonly etcd: number
    readonly bench: number
  }
  readonly done: number
  readonly lost: number
  /** Queries whose history was not pending -> running -> done, or whose status is not one done response. */
  readonly notOnce: number
  readonly oddities: readonly string[]
  readonly eventsExpected: number
  readonly eventsWritten: number
  /** Seconds the controller took to stop after the last Query was done (its Event backlog flushing). */
  readonly eventFlushSeconds: number
  readonly requests: ReadonlyMap<string, number>
  /** API server + etcd CPU ms per write of each kind (calibrate). */
  readonly writeCost: ReadonlyMap<Calibrated, number>
  /** Mean milliseconds the API server took per request kind (`PATCH queries/status`), over the drain. */
  readonly requestMs: ReadonlyMap<string, number>
  readonly controllerMetrics: ReadonlyMap<string, number>
  readonly controllerLog: ReadonlyMap<string, number>
}

const body = (kind: string, namespace: string, name: string, spec: unknown): KubeObject => ({
  apiVersion: 'ark.mckinsey.com/v1alpha1',
  kind,
  metadata: { name, namespace },
  spec,
})

/** Namespaces, each with Model `default` (the mock) and the agent the Queries target. */
async function seed(client: KubeClient, namespaces: readonly string[]): Promise<void> {
  await Promise.all(
    namespaces.map(async (ns) => {
      await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } })
      await client.request('POST', `${GROUP}/namespaces/${ns}/models`, {
        body: body('Model', ns, 'default', { provider: 'mock', model: { value: 'mock' } }),
      })
      await client.request('POST', `${GROUP}/namespaces/${ns}/agents`, {
        body: body('Agent', ns, AGENT, {
          prompt: 'You are a helpful customer support agent. Answer briefly.',
          modelRef: { name: 'default' },
        }),
      })
    }),
  )
}

/** Every object of a collection, paged. */
async function listAll(
  client: KubeClient,
  path: string,
  query: Record<string, string> = {},
): Promise<{ items: KubeObject[]; resourceVersion: string }> {
  const items: KubeObject[] = []
  let cont: string | undefined
  let resourceVersion = ''
  do {
    const page = await client.request<KubeList>('GET', path, {
      query: { ...query, limit: 500, ...(cont === undefined ? {} : { continue: cont }) },
      timeoutMs: 120_000,
    })
    items.push(...(page.items ?? []))
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion
    cont = page.metadata?.continue === '' ? undefined : page.metadata?.continue
  } while (cont !== undefined)
  return { items, resourceVersion }
}

interface Condition {
  readonly type?: string
  readonly status?: string
}

/** Waits until the controller reports every agent available (so no Query meets an agent still being checked). */
async function agentsAvailable(client: KubeClient, count: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let seen = 0
  while (Date.now() < deadline) {
    const { items } = await listAll(client, `${GROUP}/agents`)
    seen = items.filter((a) =>
      ((a.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).some(
        (c) => c.type === 'Available' && c.status === 'True',
      ),
    ).length
    if (seen >= count) return
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`only ${String(seen)} of ${String(count)} agents became available`)
}

type QueryStatus = {
  phase?: string
  responses?: { phase?: string; content?: string }[]
}

const statusOf = (o: KubeObject) => (o.status ?? {}) as QueryStatus

/** Follows every Query's phase on a watch across namespaces, resuming (or relisting) when it is cut. */
class Tracker {
  readonly #byKey = new Map<string, Tracked>()
  readonly #client: KubeClient
  readonly #stop = new AbortController()
  #terminal = 0
  #lastProgress = performance.now()
  #waiter: (() => void) | undefined
  #running: Promise<void> | undefined

  constructor(client: KubeClient, queries: readonly Tracked[]) {
    this.#client = client
    for (const q of queries) this.#byKey.set(`${q.namespace}/${q.name}`, q)
  }

  get terminal(): number {
    return this.#terminal
  }

  start(resourceVersion: string): void {
    this.#running = this.#run(resourceVersion)
  }

  async stop(): Promise<void> {
    this.#stop.abort()
    await this.#running
  }

  /** Resolves when every Query is done, errored or canceled, or when none has been for STALL_MS. */
  async settled(): Promise<void> {
    while (this.#terminal < this.#byKey.size && performance.now() - this.#lastProgress < STALL_MS) {
      await new Promise<void>((resolve) => {
        this.#waiter = resolve
        setTimeout(resolve, 1000)
      })
    }
  }

  #see(object: KubeObject): void {
    const key = `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`
    const q = this.#byKey.get(key)
    if (q === undefined) return
    const phase = statusOf(object).phase ?? 'pending'
    if (q.phases.at(-1) === phase) return
    q.phases.push(phase)
    if (phase === 'done' || phase === 'error' || phase === 'canceled') {
      const first = !q.phases.slice(0, -1).some((p) => p === 'done' || p === 'error' || p === 'canceled')
      if (!first) return
      if (phase === 'done') q.doneAt = performance.now()
      this.#terminal += 1
      this.#lastProgress = performance.now()
      if (this.#terminal === this.#byKey.size) this.#waiter?.()
    }
  }

  async #run(resourceVersion: string): Promise<void> {
    let rv = resourceVersion
    const signal = this.#stop.signal
    // A function, not a narrowed property: the signal aborts while the awaits below wait.
    const stopped = () => signal.aborted
    while (!stopped()) {
      const cut = { gone: false }
      try {
        await this.#client.watch(
          `${GROUP}/queries`,
          { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 3600 },
          (e: WatchEvent) => {
            if (e.type === 'ERROR') {
              cut.gone = true
              return
            }
            rv = e.object.metadata?.resourceVersion ?? rv
            if (e.type === 'ADDED' || e.type === 'MODIFIED') this.#see(e.object)
          },
          signal,
        )
      } catch {
        if (stopped()) return
        await new Promise((r) => setTimeout(r, 200))
      }
      if (cut.gone && !stopped()) {
        // Too old to resume: what the list shows now is the latest phase of each (steps between are lost).
        const listed = await listAll(this.#client, `${GROUP}/queries`).catch(() => undefined)
        if (listed === undefined) continue
        for (const o of listed.items) this.#see(o)
        rv = listed.resourceVersion
      }
    }
  }
}

/** Asks the controller for a heap snapshot (what it holds once every Query is done) and waits for the file. */
async function heapSnapshot(controller: ControllerProcess, dir: string, context: RunContext): Promise<void> {
  const before = new Set(readdirSync(dir))
  controller.signal('SIGUSR2')
  const deadline = Date.now() + 120_000
  let size = -1
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000))
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
    if (file === undefined) continue
    // Written in one go by the controller's main thread; done when its size stops moving.
    const now = statSync(join(dir, file)).size
    if (now > 0 && now === size) {
      context.log(`controller: heap snapshot ${join(dir, file)}`)
      return
    }
    size = now
  }
  context.log('controller: no heap snapshot within 120 s')
}

/** Creates every Query, `concurrency` POSTs in flight on the client's keep-alive connections. */
async function createAll(
  client: KubeClient,
  queries: readonly Tracked[],
  concurrency: number,
): Promise<number> {
  let next = 0
  let failures = 0
  const worker = async () => {
    while (next < queries.length) {
      const q = queries[next++]
      if (q === undefined) break
      q.sentAt = performance.now()
      for (let attempt = 0; ; attempt++) {
        try {
          await client.request('POST', `${GROUP}/namespaces/${q.namespace}/queries`, {
            body: body('Query', q.namespace, q.name, {
              input: 'How do I reset my password?',
              targets: [{ type: 'agent', name: AGENT }],
            }),
          })
          break
        } catch (err) {
          // An earlier attempt got through although its answer was lost.
          if (err instanceof KubeError && err.status === 409) break
          if (attempt >= 5) {
            failures += 1
            break
          }
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt))
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return failures
}

/** The write kinds a Query can cost, as `calibrate` measures them. */
const CALIBRATED = ['create', 'finalizer', 'claim', 'done', 'event'] as const
type Calibrated = (typeof CALIBRATED)[number]
const CALIBRATION_OPS = 500

/**
 * What each kind of write costs the API server and etcd (CPU ms per request, both together) on this machine
 * now: CALIBRATION_OPS of each, 32 in flight, in a namespace of their own, before the controller starts (so
 * no watcher but the API server's own cache). The floor of a Query that runs exactly once is create + claim
 * + done; the rest is what ark adds. Everything it made is deleted before the controller starts.
 */
async function calibrate(kube: KubeServer, client: KubeClient): Promise<Map<Calibrated, number>> {
  const ns = 'bench-calibration'
  await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } })
  const queries = `${GROUP}/namespaces/${ns}/queries`
  const at = () => new Date().toISOString()
  const merge = { contentType: 'application/merge-patch+json' }
  const writes: Record<Calibrated, (i: number) => Promise<unknown>> = {
    create: (i) =>
      client.request('POST', queries, {
        body: body('Query', ns, `q-${String(i)}`, {
          input: 'How do I reset my password?',
          targets: [{ type: 'agent', name: AGENT }],
        }),
      }),
    finalizer: (i) =>
      client.request('PATCH', `${queries}/q-${String(i)}`, {
        ...merge,
        body: { metadata: { finalizers: ['ark.mckinsey.com/finalizer'] } },
      }),
    claim: (i) =>
      client.request('PATCH', `${queries}/q-${String(i)}`, {
        ...merge,
        body: {
          metadata: {
            annotations: { 'ark.mckinsey.com/claimed-by': `bench since ${at()}` },
            finalizers: ['ark.mckinsey.com/finalizer'],
          },
        },
      }),
    done: (i) =>
      client.request('PATCH', `${queries}/q-${String(i)}/status`, {
        ...merge,
        body: {
          status: {
            phase: 'done',
            conditions: [
              {
                type: 'Completed',
                status: 'True',
                reason: 'QuerySucceeded',
                message: 'Query completed successfully',
                lastTransitionTime: at(),
              },
            ],
            responses: [
              {
                target: { type: 'agent', name: AGENT },
                content: 'You said: How do I reset my password?',
                raw: JSON.stringify([
                  { name: AGENT, content: 'You said: How do I reset my password?', role: 'assistant' },
                ]),
                phase: 'done',
              },
            ],
            tokenUsage: { promptTokens: 20, completionTokens: 10, totalTokens: 30 },
            duration: '0.002s',
          },
        },
      }),
    event: (i) =>
      client.request('POST', `/api/v1/namespaces/${ns}/events`, {
        body: {
          metadata: { name: `q-${String(i)}.${i.toString(16).padStart(16, '0')}` },
          involvedObject: { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: `q-${String(i)}` },
          type: 'Normal',
          reason: 'LLMCallStart',
          message: `Calling model default (timestamp: ${at()})`,
          source: { component: 'ark-bench' },
          firstTimestamp: at(),
          lastTimestamp: at(),
          count: 1,
        },
      }),
  }
  const cost = new Map<Calibrated, number>()
  for (const kind of CALIBRATED) {
    const before = cpuSeconds(kube.apiserverPid) + cpuSeconds(kube.etcdPid)
    let next = 0
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < CALIBRATION_OPS) await writes[kind](next++)
      }),
    )
    const after = cpuSeconds(kube.apiserverPid) + cpuSeconds(kube.etcdPid)
    cost.set(kind, ((after - before) / CALIBRATION_OPS) * 1000)
  }
  // Gone before the controller lists anything (no finalizer was honoured by anyone yet: the bench removes it).
  await Promise.all(
    Array.from({ length: CALIBRATION_OPS }, (_, i) =>
      client.request('PATCH', `${queries}/q-${String(i)}`, {
        ...merge,
        body: { metadata: { finalizers: null } },
      }),
    ),
  )
  await client.request('DELETE', queries)
  await client.request('DELETE', `/api/v1/namespaces/${ns}/events`)
  return cost
}

const cpuOf = (kube: KubeServer, controller: ControllerProcess) => ({
  controller: cpuSeconds(controller.pid),
  apiserver: cpuSeconds(kube.apiserverPid),
  etcd: cpuSeconds(kube.etcdPid),
  bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
})

async function once(s: Settings, entry: string, context: RunContext, run: number): Promise<RunFigures> {
  context.log(`controller: run ${String(run + 1)}: starting kube-apiserver + etcd`)
  const kube = await startKube()
  let client: KubeClient | undefined
  let controller: ControllerProcess | undefined
  let tracker: Tracker | undefined
  try {
    await kube.installCrds()
    client = await KubeClient.fromKubeConfig(kube.config())
    const namespaces = Array.from({ length: s.namespaces }, (_, i) => `bench-${String(i)}`)
    await seed(client, namespaces)
    context.log(
      `controller: what each kind of write costs the API server and etcd (${String(CALIBRATION_OPS)} each)`,
    )
    const writeCost = await calibrate(kube, client)
    const nodeFlags: string[] = [...s.nodeFlags]
    if (s.cpuProfDir !== undefined) {
      mkdirSync(s.cpuProfDir, { recursive: true })
      nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${s.cpuProfDir}`)
    }
    if (s.heapDir !== undefined) {
      mkdirSync(s.heapDir, { recursive: true })
      nodeFlags.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${s.heapDir}`)
    }
    context.log(`controller: ark controller on ${String(s.namespaces)} namespaces`)
    controller = await startController({
      kubeconfig: kube.kubeconfig,
      nodeFlags,
      args: s.controllerArgs,
      ...(s.memoryLimitMiB === undefined ? {} : { memoryLimitMiB: s.memoryLimitMiB }),
      entry,
    })
    const rss = sampleRss(controller.pid, 200)
    await agentsAvailable(client, s.namespaces)
    const idleRssMiB = statusBytes(controller.pid, 'VmRSS') / 2 ** 20

    // Interleaved across namespaces, as 51 teams submitting at once would.
    const queries: Tracked[] = Array.from({ length: s.queries }, (_, i) => ({
      namespace: namespaces[i % s.namespaces] ?? 'default',
      name: `query-${String(Math.floor(i / s.namespaces))}`,
      sentAt: NaN,
      doneAt: undefined,
      phases: [],
    }))
    tracker = new Tracker(client, queries)
    const { resourceVersion } = await listAll(client, `${GROUP}/queries`)
    tracker.start(resourceVersion)
    const requestsBefore = await apiRequests(kube)
    const cpuBefore = cpuOf(kube, controller)
    context.log(`controller: creating ${String(s.queries)} Queries`)
    const t0 = performance.now()
    const crash = controller.exited.then(({ code, signal }) => {
      const oom = controller?.memory()?.oomKills ?? 0
      throw new Error(
        `ark controller exited mid-run (${String(code ?? signal)}${oom > 0 ? `: OOM-killed at its ${String(s.memoryLimitMiB)} MiB memory limit` : ''})\n${controller?.stderr() ?? ''}`,
      )
    })
    crash.catch(() => undefined)
    const createFailures = await Promise.race([createAll(client, queries, s.createConcurrency), crash])
    const createSeconds = (performance.now() - t0) / 1000
    context.log(
      `controller: created in ${createSeconds.toFixed(1)} s; ${String(tracker.terminal)} done so far; waiting for the rest`,
    )
    await Promise.race([tracker.settled(), crash])
    const doneTimes = queries.flatMap((q) => (q.doneAt === undefined ? [] : [q.doneAt]))
    const tEnd = doneTimes.length === 0 ? performance.now() : Math.max(...doneTimes)
    const cpuAfter = cpuOf(kube, controller)
    const requestsAfter = await apiRequests(kube)
    const metricsText = await fetch(`${controller.url}/metrics`)
      .then((r) => r.text())
      .catch(() => '')
    await tracker.stop()
    // Before the snapshot, which takes memory of its own to write.
    const peakRss = rss.stop()
    if (s.heapDir !== undefined) await heapSnapshot(controller, s.heapDir, context)

    // Stopping flushes the controller's Event backlog (and writes its CPU profile).
    const stopAt = performance.now()
    await controller.stop()
    const eventFlushSeconds = (performance.now() - stopAt) / 1000

    const { items } = await listAll(client, `${GROUP}/queries`)
    const verified = new Map(
      items.map((o) => [`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o]),
    )
    // A second run of a Query would record a second QueryExecutionStart (its message carries a timestamp).
    const events = await listAll(client, '/api/v1/events', { fieldSelector: 'involvedObject.kind=Query' })
    const eventsWritten = events.items.reduce((n, e) => n + (typeof e.count === 'number' ? e.count : 1), 0)
    const starts = new Map<string, number>()
    for (const e of events.items) {
      if (e.reason !== 'QueryExecutionStart') continue
      const o = e.involvedObject as { namespace?: string; name?: string } | undefined
      const key = `${o?.namespace ?? ''}/${o?.name ?? ''}`
      starts.set(key, (starts.get(key) ?? 0) + (typeof e.count === 'number' ? e.count : 1))
    }
    let done = 0
    let notOnce = 0
    const oddities: string[] = []
    for (const q of queries) {
      const o = verified.get(`${q.namespace}/${q.name}`)
      const st = o === undefined ? undefined : statusOf(o)
      const response = st?.responses?.[0]
      const ok =
        st?.phase === 'done' &&
        st.responses?.length === 1 &&
        response?.phase === 'done' &&
        (response.content ?? '') !== ''
      if (ok) done += 1
      const history = q.phases.join('>')
      // pending may be skipped on the watch when the first write lands before the ADDED event is read.
      const started = starts.get(`${q.namespace}/${q.name}`) ?? 0
      // running shows only for runs past a second (controller/reconcile/query.ts); the mock answers sooner.
      const once = /^(pending>)?(running>)?done$/.test(history) && started <= 1
      if (!ok || !once) {
        notOnce += 1
        if (oddities.length < 5)
          oddities.push(
            `${q.namespace}/${q.name}: ${history || 'never seen'}, ${String(started)} QueryExecutionStart, status ${JSON.stringify(st ?? null).slice(0, 200)}`,
          )
      }
    }

    const latencies = queries.flatMap((q) => (q.doneAt === undefined ? [] : [q.doneAt - q.sentAt]))
    const drainSeconds = (tEnd - t0) / 1000
    const controllerMetrics = new Map(
      [...promSamples(metricsText)].filter(
        ([k]) =>
          k.startsWith('ark_controller_reconcile_total') ||
          k.startsWith('ark_controller_reconcile_errors_total') ||
          k.startsWith('process_resident_memory_bytes') ||
          k.startsWith('nodejs_heap_size_used_bytes') ||
          k.startsWith('nodejs_eventloop_lag_p99_seconds'),
      ),
    )
    return {
      queries: s.queries,
      createSeconds,
      createFailures,
      drainSeconds,
      perSecond: doneTimes.length / drainSeconds,
      latencyMs: {
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        p99: percentile(latencies, 99),
      },
      peakRssMiB: peakRss / 2 ** 20,
      peakAnonMiB: rss.peakAnon / 2 ** 20,
      idleRssMiB,
      cgroupPeakMiB: controller.memory()?.peakMiB,
      cpu: {
        controller: cpuAfter.controller - cpuBefore.controller,
        apiserver: cpuAfter.apiserver - cpuBefore.apiserver,
        etcd: cpuAfter.etcd - cpuBefore.etcd,
        bench: cpuAfter.bench - cpuBefore.bench,
      },
      done,
      lost: s.queries - done,
      notOnce,
      oddities,
      eventsExpected: s.queries * EVENTS_PER_QUERY.length,
      eventsWritten,
      eventFlushSeconds,
      requests: countsSince(requestsBefore.counts, requestsAfter.counts),
      writeCost,
      requestMs: meanMs(requestsBefore, requestsAfter),
      controllerMetrics,
      controllerLog: new Map(controller.messages),
    }
  } finally {
    await tracker?.stop()
    await controller?.stop()
    client?.close()
    await kube.stop()
  }
}

function meanMs(before: ApiRequests, after: ApiRequests): Map<string, number> {
  const n = countsSince(before.timed, after.timed)
  const seconds = countsSince(before.seconds, after.seconds)
  return new Map(
    [...n]
      .filter(([k]) => !k.startsWith('WATCH'))
      .map(([k, count]) => [k, ((seconds.get(k) ?? 0) / count) * 1000]),
  )
}

/** `PATCH queries/status 200: 2.00` lines, per Query, largest first. */
function perQuery(requests: ReadonlyMap<string, number>, queries: number): string {
  return [...requests]
    .filter(([k]) => !k.startsWith('WATCH') && !k.startsWith('LIST'))
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}: ${(v / queries).toFixed(2)}`)
    .join(', ')
}

/** API server + etcd CPU ms of the writes a Query that runs exactly once cannot do without. */
const floorOf = (f: RunFigures) =>
  (f.writeCost.get('create') ?? NaN) + (f.writeCost.get('claim') ?? NaN) + (f.writeCost.get('done') ?? NaN)

/** Mean server-side latency of the request kinds that ran at least once per ten Queries. */
function serverMs(f: RunFigures): string {
  return [...f.requestMs]
    .filter(([k]) => [...f.requests].some(([c, n]) => c.startsWith(`${k} `) && n * 10 >= f.queries))
    .map(([k, ms]) => `${k} ${ms.toFixed(0)} ms`)
    .join(', ')
}

function describeRun(f: RunFigures): string {
  const wall = f.drainSeconds
  const pct = (cpu: number) => `${((cpu / wall) * 100).toFixed(0)}%`
  return [
    `${String(f.done)}/${String(f.queries)} done in ${wall.toFixed(1)} s (${f.perSecond.toFixed(0)}/s; creates took ${f.createSeconds.toFixed(1)} s`,
    `${String(f.createFailures)} failed)`,
    `latency p50 ${f.latencyMs.p50.toFixed(0)} ms p95 ${f.latencyMs.p95.toFixed(0)} ms p99 ${f.latencyMs.p99.toFixed(0)} ms`,
    `peak RSS ${f.peakRssMiB.toFixed(0)} MiB (anonymous ${f.peakAnonMiB.toFixed(0)} MiB; ${f.idleRssMiB.toFixed(0)} MiB idle before the first Query${f.cgroupPeakMiB === undefined ? '' : `; memory cgroup peak ${f.cgroupPeakMiB.toFixed(0)} MiB, not OOM-killed`})`,
    `CPU s: controller ${f.cpu.controller.toFixed(1)} (${pct(f.cpu.controller)}), apiserver ${f.cpu.apiserver.toFixed(1)} (${pct(f.cpu.apiserver)}), etcd ${f.cpu.etcd.toFixed(1)} (${pct(f.cpu.etcd)}), bench ${f.cpu.bench.toFixed(1)} (${pct(f.cpu.bench)})`,
    `Events ${String(f.eventsWritten)}/${String(f.eventsExpected)} (flushed ${f.eventFlushSeconds.toFixed(1)} s after the last done)`,
    `not exactly once ${String(f.notOnce)}`,
  ].join(', ')
}

/**
 * The controller's memory against the 128 MiB that OOM-killed ARK's. The target is on its anonymous memory
 * (RssAnon: the heap, buffers and everything else it allocated), which no limit can take back: past the limit it
 * is OOM-killed. VmRSS beside it also counts the pages of the node binary's code mapped from disk, about 54 MiB
 * here, which every node process shares and a limit reclaims. In a memory cgroup, its peak usage is reported
 * too; that one cannot pass the limit (the kernel reclaims or kills first), so it is no measure of fitting.
 */
function memoryMeasures(s: Settings, med: (pick: (f: RunFigures) => number) => number): Measure[] {
  const limit = s.memoryLimitMiB
  return [
    {
      name: 'controller peak anonymous memory',
      value: med((f) => f.peakAnonMiB),
      unit: 'MiB',
      target: { op: '<=', value: 128 },
      note: `RssAnon every 200 ms, from start to the last done; ${limit === undefined ? 'no memory limit (ARK_BENCH_MEMORY_LIMIT=128 runs it in a 128 MiB cgroup, as root)' : `in a ${String(limit)} MiB memory cgroup, as a container limit, not OOM-killed (cgroup peak ${med((f) => f.cgroupPeakMiB ?? NaN).toFixed(0)} MiB)`}; ${s.entry ?? 'the compiled build'}; ARK: OOM-killed at 128 MiB`,
    },
    {
      name: 'controller peak RSS',
      value: med((f) => f.peakRssMiB),
      unit: 'MiB',
      note: `VmRSS every 200 ms and VmHWM: the anonymous memory and the mapped pages of the node binary; ${med((f) => f.idleRssMiB).toFixed(0)} MiB idle before the first Query`,
    },
  ]
}

/** One run, and what it logs about itself. */
async function oneRun(s: Settings, entry: string, context: RunContext, run: number): Promise<RunFigures> {
  const f = await once(s, entry, context, run)
  context.log(`controller: ${describeRun(f)}`)
  context.log(`controller: API requests per Query: ${perQuery(f.requests, f.queries)}`)
  context.log(`controller: API server time per request: ${serverMs(f)}`)
  context.log(
    `controller: API server + etcd CPU per write, alone: ${[...f.writeCost].map(([k, ms]) => `${k} ${ms.toFixed(2)} ms`).join(', ')}`,
  )
  const log = [...f.controllerLog].filter(
    ([m]) => !['serving', 'synced', 'leading', 'connecting'].includes(m),
  )
  if (log.length > 0)
    context.log(`controller: log lines: ${log.map(([m, n]) => `${m} x${String(n)}`).join('; ')}`)
  for (const o of f.oddities) context.log(`controller: odd: ${o}`)
  return f
}

async function run(context: RunContext): Promise<ScenarioResult> {
  const s = settings()
  const runs: RunFigures[] = []
  const buildDir = s.entry === undefined ? mkdtempSync(join(tmpdir(), 'ark-bench-build-')) : undefined
  try {
    if (buildDir !== undefined) context.log('controller: building ark (build.ts), as a container runs it')
    const entry = s.entry ?? buildArk(buildDir ?? '')
    for (let i = 0; i < s.runs; i++) runs.push(await oneRun(s, entry, context, i))
  } finally {
    if (buildDir !== undefined) rmSync(buildDir, { recursive: true, force: true })
  }
  if (s.cpuProfDir !== undefined) {
    const dir = s.cpuProfDir
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
    const root = fileURLToPath(new URL('../../', import.meta.url))
    for (const f of files) {
      const top = profileByOwner(join(dir, f), root).slice(0, 12)
      context.log(
        `controller: ${f}, non-idle time by owner: ${top.map((t) => `${(t.share * 100).toFixed(1)}% ${t.what}`).join(', ')}`,
      )
    }
  }
  const med = (pick: (f: RunFigures) => number) => median(runs.map(pick))
  const cores = availableParallelism()
  const last = runs.at(-1)
  const measures: Measure[] = [
    {
      name: 'Queries drained/s',
      value: med((f) => f.perSecond),
      unit: 'Queries/s',
      target: { op: '>=', value: 300 },
      note: `${String(s.queries)} Queries in ${String(s.namespaces)} namespaces, first create to last done; ${med((f) => f.drainSeconds).toFixed(1)} s (creates ${med((f) => f.createSeconds).toFixed(1)} s); ARK: about 12/s`,
    },
    {
      name: 'create-to-done p50',
      value: med((f) => f.latencyMs.p50),
      unit: 'ms',
      note: `p95 ${med((f) => f.latencyMs.p95).toFixed(0)} ms, p99 ${med((f) => f.latencyMs.p99).toFixed(0)} ms`,
    },
    { name: 'create-to-done p95', value: med((f) => f.latencyMs.p95), unit: 'ms' },
    ...memoryMeasures(s, med),
    {
      name: 'Queries lost',
      value: med((f) => f.lost),
      unit: 'Queries',
      target: { op: '<=', value: 0 },
      note: 'not phase done with one done response at the end',
    },
    {
      name: 'Queries not run exactly once',
      value: med((f) => f.notOnce),
      unit: 'Queries',
      target: { op: '<=', value: 0 },
      note: 'history on the watch other than pending > (running >) done, a status other than one done response, or more than one QueryExecutionStart Event',
    },
    {
      name: 'CPU per Query, all processes',
      value: (med((f) => f.cpu.controller + f.cpu.apiserver + f.cpu.etcd + f.cpu.bench) / s.queries) * 1000,
      unit: 'ms',
      note: `controller + apiserver + etcd + the bench's creates and watch: on ${String(cores)} cores this caps the drain at about ${((cores * 1000) / ((med((f) => f.cpu.controller + f.cpu.apiserver + f.cpu.etcd + f.cpu.bench) / s.queries) * 1000)).toFixed(0)} Queries/s (300/s needs at most ${((cores * 1000) / 300).toFixed(1)} ms)`,
    },
    {
      name: 'API server + etcd CPU per Query / floor',
      value: med((f) => (f.cpu.apiserver + f.cpu.etcd) / f.queries / (floorOf(f) / 1000)),
      unit: 'x',
      note: `${med((f) => ((f.cpu.apiserver + f.cpu.etcd) / f.queries) * 1000).toFixed(1)} ms against a floor of ${med(floorOf).toFixed(1)} ms (create ${med((f) => f.writeCost.get('create') ?? NaN).toFixed(2)} + claim ${med((f) => f.writeCost.get('claim') ?? NaN).toFixed(2)} + done ${med((f) => f.writeCost.get('done') ?? NaN).toFixed(2)}, each measured alone in the same run; a finalizer PATCH ${med((f) => f.writeCost.get('finalizer') ?? NaN).toFixed(2)}, an Event ${med((f) => f.writeCost.get('event') ?? NaN).toFixed(2)}): that floor alone caps a drain at about ${((cores * 1000) / med(floorOf)).toFixed(0)} Queries/s here`,
    },
    {
      name: 'controller CPU per Query',
      value: (med((f) => f.cpu.controller) / s.queries) * 1000,
      unit: 'ms',
      note: `${med((f) => f.cpu.controller).toFixed(1)} CPU s in all`,
    },
    {
      name: 'apiserver CPU per Query',
      value: (med((f) => f.cpu.apiserver) / s.queries) * 1000,
      unit: 'ms',
      note: `${med((f) => f.cpu.apiserver).toFixed(1)} CPU s, ${med((f) => (f.cpu.apiserver / f.drainSeconds) * 100).toFixed(0)}% of a core over the drain`,
    },
    {
      name: 'etcd CPU per Query',
      value: (med((f) => f.cpu.etcd) / s.queries) * 1000,
      unit: 'ms',
      note: `${med((f) => f.cpu.etcd).toFixed(1)} CPU s`,
    },
    {
      name: 'Events written',
      value: med((f) => f.eventsWritten / f.eventsExpected) * 100,
      unit: '%',
      note: `${med((f) => f.eventsWritten).toFixed(0)} of ${String(s.queries * EVENTS_PER_QUERY.length)} recorded (${String(EVENTS_PER_QUERY.length)} per Query); the rest dropped by the recorder's bounded queue or failed`,
    },
  ]
  const notes = [
    `ark controller (node ${s.nodeFlags.length > 0 ? `${s.nodeFlags.join(' ')} ` : ''}${s.entry ?? 'bin/ark.js of the compiled build (build.ts)'} controller, a child process, leader-elected, in-process pools, --probe-interval 0${s.controllerArgs.length > 0 ? `, ${s.controllerArgs.join(' ')}` : ''}) on kube-apiserver 1.20.2 + etcd 3.4 (test/kube.ts), all sharing this machine with the bench process, which creates the Queries (${String(s.createConcurrency)} POSTs in flight on keep-alive connections) and follows them on one watch across namespaces.`,
    `Medians of ${String(s.runs)} run(s), each on a fresh API server. ARK_BENCH_QUERIES, ARK_BENCH_NAMESPACES, ARK_BENCH_RUNS set the size; ARK_BENCH_CONTROLLER_ARGS and ARK_BENCH_NODE_FLAGS change the controller; ARK_BENCH_MEMORY_LIMIT=<MiB> sets its memory cgroup (default 128 as root, 0 for none); ARK_BENCH_ARK_ENTRY=<file> runs another entry point (bin/ark.ts: the sources); ARK_BENCH_CPU_PROF=<dir> and ARK_BENCH_HEAP_SNAPSHOT=<dir> profile it.`,
  ]
  if (last !== undefined) {
    notes.push(
      `API requests per Query (last run, apiserver_request_total over the drain, the bench's own POST queries included): ${perQuery(last.requests, last.queries)}.`,
      `API server time per request (last run, apiserver_request_duration_seconds over the drain): ${serverMs(last)}.`,
    )
    const reconciles = [...last.controllerMetrics]
      .filter(([k]) => k.includes('controller="query"'))
      .map(([k, v]) => `${k.replace(/^ark_controller_/, '')} ${String(v)}`)
    if (reconciles.length > 0) notes.push(`Controller metrics (last run): ${reconciles.join(', ')}.`)
  }
  return { measures, notes }
}

const scenario: Scenario = {
  name: 'controller',
  summary:
    "ARK's scale test: 5,100 Queries in 51 namespaces through ark controller on a real kube-apiserver; Queries/s drained, latency, RSS, CPU",
  run,
}
export default scenario
