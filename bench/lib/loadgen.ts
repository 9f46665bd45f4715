/**
 * The load generator: a process of its own, so that the client's work never shares an event loop with the
 * server it measures. Takes one JSON argument (LoadSpec), prints one JSON line (LoadReport), exits.
 *
 * Modes:
 * - `load`: autocannon over keep-alive connections for a fixed time. autocannon's own latency histogram
 *   keeps whole milliseconds, too coarse for a gateway that adds microseconds, so every response time is
 *   kept here from its `response` event (fractional milliseconds from process.hrtime) instead.
 * - `first-chunk`: sequential streaming requests; time to the first body chunk and to the end.
 */
import autocannon from 'autocannon'
import { Agent, request } from 'node:http'
import { percentile } from './stats.ts'

export interface LoadSpec {
  readonly mode: 'load' | 'first-chunk'
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  /** load: connections, each with one request in flight. */
  readonly connections?: number
  /** load: seconds measured, after `warmupSeconds` that are not. */
  readonly seconds?: number
  readonly warmupSeconds?: number
  /** first-chunk: how many requests. */
  readonly requests?: number
}

export interface LoadReport {
  readonly requests: number
  readonly perSecond: number
  /** Microseconds. */
  readonly p50: number
  readonly p99: number
  /** first-chunk: microseconds to the end of the body. */
  readonly p50Total?: number
  readonly errors: number
  readonly non2xx: number
}

async function load(spec: LoadSpec): Promise<LoadReport> {
  const base = {
    url: spec.url,
    method: 'POST' as const,
    headers: spec.headers,
    body: spec.body,
    connections: spec.connections ?? 1,
    pipelining: 1,
  }
  if ((spec.warmupSeconds ?? 0) > 0) await autocannon({ ...base, duration: spec.warmupSeconds })
  const latencies: number[] = []
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const run = autocannon({ ...base, duration: spec.seconds ?? 3 }, (err: unknown, r) => {
      if (err === null || err === undefined) resolve(r)
      else reject(err instanceof Error ? err : new Error('autocannon failed', { cause: err }))
    })
    run.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms * 1000)
    })
  })
  return {
    requests: latencies.length,
    perSecond: latencies.length / (spec.seconds ?? 3),
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  }
}

/** One streaming request over a kept-alive connection: milliseconds to the first body bytes and to the end. */
function streamOnce(spec: LoadSpec, agent: Agent): Promise<{ status: number; first: number; total: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const headers = { ...spec.headers, 'content-length': String(Buffer.byteLength(spec.body)) }
    const req = request(spec.url, { method: 'POST', agent, headers }, (res) => {
      let first = NaN
      res.on('data', () => {
        if (Number.isNaN(first)) first = performance.now() - t0
      })
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, first, total: performance.now() - t0 })
      })
      res.once('error', reject)
    })
    req.once('error', reject)
    req.end(spec.body)
  })
}

/** Sequential streaming requests (node:http, the lightest client here, so that its own cost stays small). */
async function firstChunk(spec: LoadSpec): Promise<LoadReport> {
  const agent = new Agent({ keepAlive: true })
  const first: number[] = []
  const total: number[] = []
  let errors = 0
  let non2xx = 0
  const n = spec.requests ?? 200
  for (let i = 0; i < n; i++) {
    try {
      const r = await streamOnce(spec, agent)
      if (r.status < 200 || r.status >= 300) non2xx++
      // The first tenth warms the connection and both JITs.
      else if (i >= n / 10) {
        first.push(r.first * 1000)
        total.push(r.total * 1000)
      }
    } catch {
      errors++
    }
  }
  agent.destroy()
  return {
    requests: first.length,
    perSecond: NaN,
    p50: percentile(first, 50),
    p99: percentile(first, 99),
    p50Total: percentile(total, 50),
    errors,
    non2xx,
  }
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec
  const report = await (spec.mode === 'first-chunk' ? firstChunk(spec) : load(spec))
  process.stdout.write(`${JSON.stringify(report)}\n`)
}
