/**
 * The Event recorder against a real kube-apiserver (1.20.2, test/kube.ts), read back with a current kubectl
 * the way an operator reads it: `kubectl describe <kind> <name>`. The unreachable and hanging servers are
 * plain TCP ports on loopback: one closed, one that accepts and never answers.
 */
import { createConnection, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import * as k8s from '@kubernetes/client-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startKube } from '../../test/kube.ts'
import type { KubeServer } from '../../test/kube.ts'
import { KubeClient } from './client.ts'
import { EventRecorder, MAX_MESSAGE_BYTES, MAX_REASON_LENGTH } from './events.ts'
import type { InvolvedObject } from './events.ts'

let kube: KubeServer

beforeAll(async () => {
  kube = await startKube()
}, 120_000)

afterAll(async () => {
  await kube.stop()
})

interface DescribedEvent {
  readonly type: string
  readonly reason: string
  readonly age: string
  readonly from: string
  readonly message: string
}

/** The Events table of `kubectl describe`, cut along the columns its dashed line marks. */
async function describedEvents(kind: string, name: string, namespace: string): Promise<DescribedEvent[]> {
  const out = await kube.kubectl(['describe', kind, name, '-n', namespace])
  const lines = out.split('\n')
  const at = lines.findIndex((l) => l.startsWith('Events:'))
  expect(at, out).toBeGreaterThanOrEqual(0)
  const dashes = lines[at + 2] ?? ''
  const starts = [...dashes.matchAll(/-+/g)].map((m) => m.index)
  expect(starts, out).toHaveLength(5)
  const rows: DescribedEvent[] = []
  for (const line of lines.slice(at + 3)) {
    if (line.trim() === '') break
    const cell = (i: number): string => line.slice(starts[i], starts[i + 1]).trim()
    rows.push({ type: cell(0), reason: cell(1), age: cell(2), from: cell(3), message: cell(4) })
  }
  return rows
}

async function configMap(namespace: string, name: string): Promise<InvolvedObject> {
  const created = await kube
    .config()
    .makeApiClient(k8s.CoreV1Api)
    .createNamespacedConfigMap({ namespace, body: { metadata: { name }, data: { a: 'b' } } })
  return { apiVersion: 'v1', kind: 'ConfigMap', namespace, name, uid: created.metadata?.uid ?? '' }
}

async function storedEvents(namespace: string): Promise<k8s.CoreV1Event[]> {
  const list = await kube.config().makeApiClient(k8s.CoreV1Api).listNamespacedEvent({ namespace })
  return list.items
}

/** A KubeConfig for `server` with a token, as an in-cluster controller would have. */
function configFor(server: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'not-a-real-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  })
  return kc
}

/** Polls `done` until it holds (or 10 s pass: the assertion after it then says what was seen). */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i += 1) await new Promise((ok) => setTimeout(ok, 20))
}

async function listen(onSocket: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onSocket)
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { server, port: address.port }
}

/**
 * A server that accepts connections and never answers, and a client of it; `use` gets the client and the
 * sockets accepted so far. Client, server and sockets are torn down afterwards, whatever happens.
 */
async function withHangingServer(use: (client: KubeClient, sockets: readonly Socket[]) => Promise<void>) {
  const sockets: Socket[] = []
  const { server, port } = await listen((socket) => sockets.push(socket))
  const client = await KubeClient.fromKubeConfig(configFor(`https://127.0.0.1:${String(port)}`))
  try {
    await use(client, sockets)
  } finally {
    client.close()
    for (const socket of sockets) socket.destroy()
    server.close()
  }
}

async function closedPort(): Promise<number> {
  const { server, port } = await listen(() => undefined)
  await new Promise((ok) => server.close(ok))
  return port
}

describe('EventRecorder', () => {
  it('writes Events that kubectl describe shows with their type, reason, source and message, in the order recorded', async () => {
    const ns = await kube.namespace('events')
    const cm = await configMap(ns, 'x')
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(kube.config()),
      host: 'controller-0',
    })
    const recorded: [type: 'Normal' | 'Warning', reason: string, message: string][] = [
      ['Normal', 'QueryExecutionStart', 'Executing query x'],
      ['Normal', 'TargetExecutionStart', 'Executing target agent/support-agent'],
      ['Normal', 'AgentExecutionStart', `Executing agent ${ns}/support-agent`],
      ['Normal', 'LLMCallStart', 'Calling model mistralai/devstral-2512:free'],
      ['Warning', 'LLMCallRetry', 'Model answered 429, retrying in 1s'],
      ['Normal', 'LLMCallComplete', 'Model call completed successfully'],
      ['Normal', 'AgentExecutionComplete', 'Agent execution completed successfully'],
      ['Normal', 'QueryExecutionComplete', 'Query execution completed'],
    ]
    for (const [type, reason, message] of recorded) recorder.record(cm, type, reason, message)
    await recorder.flush()
    expect(recorder.stats).toEqual({ written: 8, aggregated: 0, dropped: 0, failed: 0 })

    const rows = await describedEvents('configmap', 'x', ns)
    expect(rows.map((r) => [r.type, r.reason, r.message])).toEqual(recorded)
    // kubectl describe shows the source component (current kubectl leaves the host out of this column).
    for (const row of rows) expect(row.from).toBe('ark-controller')

    const stored = await storedEvents(ns)
    expect(stored).toHaveLength(8)
    for (const event of stored) {
      expect(event.metadata.name).toMatch(/^x\.[0-9a-f]{16}$/)
      expect(event.involvedObject).toMatchObject({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        namespace: ns,
        name: 'x',
      })
      expect(event.involvedObject.uid).toBe(cm.uid)
      expect(event.source).toEqual({ component: 'ark-controller', host: 'controller-0' })
      expect(event.reportingComponent).toBe('ark-controller')
      expect(event.count).toBe(1)
      expect(event.firstTimestamp).toBeInstanceOf(Date)
      expect(event.lastTimestamp).toBeInstanceOf(Date)
      expect(event.eventTime ?? null).toBeNull()
    }
    await recorder.close()
  })

  it('shows Events under a Query the way the seed does', async () => {
    await kube.installCrds()
    const ns = await kube.namespace('query')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'ark.mckinsey.com/v1alpha1',
        kind: 'Query',
        metadata: { name: 'test-password-reset' },
        spec: { input: 'How do I reset my password?', targets: [{ type: 'agent', name: 'support-agent' }] },
      }),
    })
    const uid = await kube.kubectl([
      'get',
      'query',
      'test-password-reset',
      '-n',
      ns,
      '-o',
      'jsonpath={.metadata.uid}',
    ])
    const query = {
      apiVersion: 'ark.mckinsey.com/v1alpha1',
      kind: 'Query',
      namespace: ns,
      name: 'test-password-reset',
      uid,
    }
    const recorder = new EventRecorder({ client: await KubeClient.fromKubeConfig(kube.config()) })
    recorder.record(query, 'Normal', 'QueryExecutionStart', 'Executing query test-password-reset')
    recorder.record(query, 'Normal', 'QueryExecutionComplete', 'Query execution completed')
    await recorder.close()

    const rows = await describedEvents('query', 'test-password-reset', ns)
    expect(rows.map((r) => [r.type, r.reason, r.from, r.message])).toEqual([
      ['Normal', 'QueryExecutionStart', 'ark-controller', 'Executing query test-password-reset'],
      ['Normal', 'QueryExecutionComplete', 'ark-controller', 'Query execution completed'],
    ])
  }, 60_000)

  it('folds repeats of an event into one Event object (x5), a burst into one write', async () => {
    const ns = await kube.namespace('repeat')
    const cm = await configMap(ns, 'x')
    const recorder = new EventRecorder({ client: await KubeClient.fromKubeConfig(kube.config()) })
    // A burst folds into the write before it goes: one CREATE with count 3.
    for (let i = 0; i < 3; i += 1) recorder.record(cm, 'Warning', 'ProbeFailed', 'model probe failed: 503')
    await recorder.flush()
    expect(recorder.stats).toEqual({ written: 1, aggregated: 2, dropped: 0, failed: 0 })
    // Repeats recorded while a CREATE is on the wire wait for it, then go as one PATCH: a watcher sees
    // the object added with count 1, then modified to 3.
    const seen: [string, number | undefined][] = []
    const watching = await new k8s.Watch(kube.config()).watch(
      `/api/v1/namespaces/${ns}/events`,
      {},
      (phase: string, event: k8s.CoreV1Event) => {
        if (event.reason === 'Started') seen.push([phase, event.count])
      },
      () => undefined,
    )
    recorder.record(cm, 'Normal', 'Started', 'pool started')
    await Promise.resolve() // the CREATE has been sent, not answered
    recorder.record(cm, 'Normal', 'Started', 'pool started')
    recorder.record(cm, 'Normal', 'Started', 'pool started')
    // One at a time, each repeat is its own PATCH of the same object.
    recorder.record(cm, 'Warning', 'ProbeFailed', 'model probe failed: 503')
    await recorder.flush()
    recorder.record(cm, 'Warning', 'ProbeFailed', 'model probe failed: 503')
    await recorder.flush()
    expect(recorder.stats).toEqual({ written: 5, aggregated: 6, dropped: 0, failed: 0 })
    await until(() => seen.length >= 2)
    watching.abort()
    expect(seen).toEqual([
      ['ADDED', 1],
      ['MODIFIED', 3],
    ])

    const stored = (await storedEvents(ns)).map((e) => [e.reason, e.count]).sort()
    expect(stored).toEqual([
      ['ProbeFailed', 5],
      ['Started', 3],
    ])
    const rows = await describedEvents('configmap', 'x', ns)
    expect(rows).toHaveLength(2)
    const probe = rows.find((r) => r.reason === 'ProbeFailed')
    expect(probe).toMatchObject({
      type: 'Warning',
      from: 'ark-controller',
      message: 'model probe failed: 503',
    })
    expect(probe?.age).toMatch(/\(x5 over .+\)/)
    expect(rows.find((r) => r.reason === 'Started')?.age).toMatch(/\(x3 over .+\)/)
    await recorder.close()
  })

  it('creates an Event again when a repeat finds it deleted (PATCH answered 404)', async () => {
    const ns = await kube.namespace('gone')
    const cm = await configMap(ns, 'x')
    const errors: unknown[] = []
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(kube.config()),
      onError: (err) => errors.push(err),
    })
    recorder.record(cm, 'Normal', 'Synced', 'pool synced')
    recorder.record(cm, 'Normal', 'Synced', 'pool synced')
    await recorder.flush()
    const [first] = await storedEvents(ns)
    expect(first?.count).toBe(2)
    await kube.kubectl(['delete', 'event', first?.metadata.name ?? '', '-n', ns])
    expect(await storedEvents(ns)).toHaveLength(0)

    recorder.record(cm, 'Normal', 'Synced', 'pool synced')
    await recorder.flush()
    const again = await storedEvents(ns)
    expect(again.map((e) => [e.metadata.name, e.count])).toEqual([[first?.metadata.name, 3]])
    expect(errors).toEqual([])
    expect(recorder.stats.failed).toBe(0)
    await recorder.close()
  })

  it('starts a new Event when a repeat comes more than 10 minutes after the last one', async () => {
    const ns = await kube.namespace('window')
    const cm = await configMap(ns, 'x')
    let now = Date.parse('2025-12-11T11:16:46Z')
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(kube.config()),
      now: () => new Date(now),
    })
    recorder.record(cm, 'Normal', 'Scaled', 'scaled to 2')
    now += 9 * 60_000
    recorder.record(cm, 'Normal', 'Scaled', 'scaled to 2')
    await recorder.flush()
    now += 11 * 60_000
    recorder.record(cm, 'Normal', 'Scaled', 'scaled to 2')
    await recorder.flush()

    const stored = (await storedEvents(ns)).sort((a, b) =>
      (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''),
    )
    expect(
      stored.map((e) => [e.count, e.firstTimestamp?.toISOString(), e.lastTimestamp?.toISOString()]),
    ).toEqual([
      [2, '2025-12-11T11:16:46.000Z', '2025-12-11T11:25:46.000Z'],
      [1, '2025-12-11T11:36:46.000Z', '2025-12-11T11:36:46.000Z'],
    ])
    await recorder.close()
  })

  it('cuts a message longer than 1 KiB to 1024 bytes of whole UTF-8 characters, and a reason to 128 characters', async () => {
    const ns = await kube.namespace('long')
    const cm = await configMap(ns, 'x')
    const errors: unknown[] = []
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(kube.config()),
      onError: (err) => errors.push(err),
    })
    // Two-, three- and four-byte characters, so that 1024 falls inside one of them.
    const message = 'tool output: ' + 'é€😀'.repeat(400)
    const reason = 'R'.repeat(300)
    recorder.record(cm, 'Warning', reason, message)
    await recorder.flush()
    expect(errors).toEqual([])
    expect(recorder.stats.written).toBe(1)

    const [event] = await storedEvents(ns)
    const stored = event?.message ?? ''
    expect(Buffer.byteLength(stored)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES)
    expect(Buffer.byteLength(stored)).toBeGreaterThan(MAX_MESSAGE_BYTES - 8)
    expect(stored).not.toContain('\uFFFD')
    expect(stored.endsWith('...')).toBe(true)
    expect(message.startsWith(stored.slice(0, -3))).toBe(true)
    expect(event?.reason).toBe('R'.repeat(MAX_REASON_LENGTH))

    const rows = await describedEvents('configmap', 'x', ns)
    expect(rows[0]?.message.startsWith('tool output: é€😀')).toBe(true)
    await recorder.close()
  })

  it('redacts every message before it leaves the process, and drops an event whose redaction throws', async () => {
    const ns = await kube.namespace('redact')
    const cm = await configMap(ns, 'x')
    const canary = 'sk-canary-5f0e1d2c3b4a'
    const errors: unknown[] = []
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(kube.config()),
      redact: (text) => {
        if (text.includes('explode')) throw new Error('redaction failed')
        return text.replaceAll(canary, '[REDACTED]')
      },
      onError: (err) => errors.push(err),
    })
    recorder.record(cm, 'Warning', 'LLMCallFailed', `provider said: invalid key ${canary} (401)`)
    recorder.record(cm, 'Warning', 'LLMCallFailed', `explode ${canary}`)
    await recorder.flush()
    expect(recorder.stats).toEqual({ written: 1, aggregated: 0, dropped: 1, failed: 0 })
    expect(errors.map(String)).toEqual(['Error: redaction failed'])

    const [event] = await storedEvents(ns)
    expect(event?.message).toBe('provider said: invalid key [REDACTED] (401)')
    const everything = await kube.kubectl(['get', 'events', '-n', ns, '-o', 'yaml'])
    expect(everything).not.toContain(canary)
    expect(everything).toContain('[REDACTED]')
    await recorder.close()
  })

  it('never throws or blocks when the API server is unreachable: flush resolves, failures are counted', async () => {
    const port = await closedPort()
    const errors: unknown[] = []
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(configFor(`https://127.0.0.1:${String(port)}`)),
      retries: 2,
      retryDelayMs: 5,
      onError: (err) => errors.push(err),
    })
    const object = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'x' }
    for (let i = 0; i < 20; i += 1) {
      // record() hands back nothing to wait on, and nothing has been tried, let alone failed, when it returns.
      expect(recorder.record(object, 'Warning', 'Failed', `attempt ${String(i)}`)).toBeUndefined()
    }
    expect(recorder.stats).toEqual({ written: 0, aggregated: 0, dropped: 0, failed: 0 })
    await recorder.flush()
    expect(recorder.stats).toEqual({ written: 0, aggregated: 0, dropped: 0, failed: 20 })
    expect(errors).toHaveLength(20)
    await recorder.close()
    // Closed: refused, counted, still no throw.
    recorder.record(object, 'Warning', 'Failed', 'after close')
    expect(recorder.stats.dropped).toBe(1)
  })

  it('gives up on a server that accepts connections and never answers, after its request time limit', async () => {
    await withHangingServer(async (client, sockets) => {
      const recorder = new EventRecorder({
        client,
        retries: 1,
        retryDelayMs: 5,
        requestTimeoutMs: 200,
      })
      recorder.record(
        { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'x' },
        'Normal',
        'A',
        'b',
      )
      await recorder.close()
      expect(recorder.stats).toEqual({ written: 0, aggregated: 0, dropped: 0, failed: 1 })
      expect(sockets.length).toBeGreaterThanOrEqual(1)
    })
  })

  it('writes no faster than qps after its burst, and loses nothing that fits the queue', async () => {
    const ns = await kube.namespace('rate')
    const cm = await configMap(ns, 'x')
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(kube.config()),
      qps: 20,
      burst: 5,
    })
    const started = performance.now()
    for (let i = 0; i < 25; i += 1) recorder.record(cm, 'Normal', 'Step', `step ${String(i)}`)
    await recorder.flush()
    // 5 at once, then 20 more at 20 a second: never sooner than a second (however slow the machine).
    expect(performance.now() - started).toBeGreaterThanOrEqual(950)
    expect(recorder.stats).toEqual({ written: 25, aggregated: 0, dropped: 0, failed: 0 })
    expect(await storedEvents(ns)).toHaveLength(25)
    await recorder.close()
  })

  it('puts Warnings and important events first: a full queue drops the newest of the others', async () => {
    const ns = await kube.namespace('priority')
    const cm = await configMap(ns, 'x')
    const recorder = new EventRecorder({
      client: await KubeClient.fromKubeConfig(kube.config()),
      qps: 5,
      burst: 1,
      maxQueued: 4,
      important: (reason) => reason === 'QueryExecutionComplete',
    })
    // Writes start after record() returns: all of these meet a queue of 4.
    for (let i = 0; i < 5; i += 1) recorder.record(cm, 'Normal', 'Step', `step ${String(i)}`)
    expect(recorder.stats.dropped).toBe(1) // step 4: no room, and not important
    recorder.record(cm, 'Warning', 'ProbeFailed', 'model probe failed: 503') // displaces step 3
    recorder.record(cm, 'Warning', 'TargetNotFound', 'agent x not found') // displaces step 2
    recorder.record(cm, 'Normal', 'QueryExecutionComplete', 'done') // displaces step 1
    expect(recorder.stats.dropped).toBe(4)
    // The important ones take the rate first; closing drops what is left of the rest (step 0).
    await recorder.close()
    expect(recorder.stats).toEqual({ written: 3, aggregated: 0, dropped: 5, failed: 0 })
    const stored = (await storedEvents(ns)).map((e) => e.reason).sort()
    expect(stored).toEqual(['ProbeFailed', 'QueryExecutionComplete', 'TargetNotFound'])
  })

  it('close() gives up waiting after closeTimeoutMs: what still waits is dropped, shutdown goes on', async () => {
    await withHangingServer(async (client) => {
      const recorder = new EventRecorder({
        client,
        concurrency: 1,
        retries: 0,
        requestTimeoutMs: 60_000,
        closeTimeoutMs: 200,
      })
      const object = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'x' }
      // Warnings: important, so close() does not drop them up front; the first hangs on the server.
      for (let i = 0; i < 3; i += 1) recorder.record(object, 'Warning', 'Failed', `failure ${String(i)}`)
      await recorder.close()
      expect(recorder.stats).toMatchObject({ written: 0, dropped: 2 })
    })
  })

  it('drops and counts what does not fit the queue, never holding more than maxQueued', async () => {
    await withHangingServer(async (client) => {
      const drops: number[] = []
      const recorder = new EventRecorder({
        client,
        maxQueued: 10,
        concurrency: 8,
        retries: 0,
        requestTimeoutMs: 300,
        onDropped: (count) => drops.push(count),
      })
      const object = { apiVersion: 'v1', kind: 'ConfigMap', namespace: 'default', name: 'x' }
      for (let i = 0; i < 100; i += 1) recorder.record(object, 'Normal', 'Burst', `event ${String(i)}`)
      // 10 waiting (writes start after record() returns): the other 90 were refused on the spot.
      expect(recorder.stats.dropped).toBe(90)
      await Promise.resolve()
      // 8 of the 10 are now in flight against a server that hangs, which frees 8 places and no more.
      for (let i = 0; i < 100; i += 1) recorder.record(object, 'Normal', 'Burst', `more ${String(i)}`)
      expect(recorder.stats.dropped).toBe(90 + 92)
      await recorder.flush()
      expect(recorder.stats).toEqual({ written: 0, aggregated: 0, dropped: 182, failed: 18 })
      // Told in batches, not once per event.
      expect(drops.reduce((a, b) => a + b, 0)).toBe(182)
      expect(drops.length).toBeLessThanOrEqual(2)
      await recorder.close()
    })
  })

  it('retries a write whose connection failed, and it lands', async () => {
    const ns = await kube.namespace('retry')
    const cm = await configMap(ns, 'x')
    const upstream = new URL(kube.server)
    // A TCP relay to the real API server that cuts the first two connections it gets.
    let refused = 0
    const relayed: Socket[] = []
    const { server, port } = await listen((socket) => {
      if (refused < 2) {
        refused += 1
        socket.destroy()
        return
      }
      const to = createConnection(Number(upstream.port), upstream.hostname)
      relayed.push(socket, to)
      socket.pipe(to).pipe(socket)
      socket.on('error', () => to.destroy())
      to.on('error', () => socket.destroy())
    })
    try {
      const kc = kube.config()
      const cluster = kc.getCurrentCluster()
      if (cluster === null) throw new Error('no cluster')
      kc.clusters = kc.clusters.map((c) =>
        c.name === cluster.name ? { ...c, server: `https://127.0.0.1:${String(port)}` } : c,
      )
      const errors: unknown[] = []
      const recorder = new EventRecorder({
        client: await KubeClient.fromKubeConfig(kc),
        retryDelayMs: 5,
        onError: (err) => errors.push(err),
      })
      recorder.record(cm, 'Normal', 'Relayed', 'through a flaky network')
      await recorder.close()
      expect(errors).toEqual([])
      expect(recorder.stats).toEqual({ written: 1, aggregated: 0, dropped: 0, failed: 0 })
      expect(refused).toBe(2)
      expect((await storedEvents(ns)).map((e) => e.message)).toEqual(['through a flaky network'])
    } finally {
      for (const socket of relayed) socket.destroy()
      server.close()
    }
  })
})
