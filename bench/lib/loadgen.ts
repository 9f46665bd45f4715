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

async function firstChunk(spec: LoadSpec): Promise<LoadReport> {
  const first: number[] = []
  const total: number[] = []
  let errors = 0
  let non2xx = 0
  const n = spec.requests ?? 200
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    try {
      const res = await fetch(spec.url, { method: 'POST', headers: spec.headers, body: spec.body })
      if (res.body === null || res.status >= 300) {
        non2xx++
        await res.body?.cancel()
        continue
      }
      const reader = res.body.getReader()
      let chunk = await reader.read()
      const t1 = performance.now()
      while (!chunk.done) chunk = await reader.read()
      // The first tenth warms the connection and both JITs.
      if (i >= n / 10) {
        first.push((t1 - t0) * 1000)
        total.push((performance.now() - t0) * 1000)
      }
    } catch {
      errors++
    }
  }
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
