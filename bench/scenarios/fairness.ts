/**
 * fairness: issue 21's flood. One `ark dev` serves an agent in namespace `flood` and the same agent in
 * namespace `quiet` (the mock model, 100 ms a reply). The quiet namespace's latency is measured alone (one
 * request after another), then again while another process sends 5,000 requests at once to the flood
 * namespace. Reported: the quiet namespace's p50 under the flood over its p50 alone, whether any of its
 * requests failed, and what the flood got (runs admitted up to its share of --max-in-flight, the rest
 * refused at once with 503). The gateway's defaults are kept but for a queue long enough to admit a
 * flood's share (--queue-size 5000), so that queued work, not only refused work, is part of it.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { startServer } from '../lib/processes.ts'
import type { ServerProcess } from '../lib/processes.ts'
import { median, percentile } from '../lib/stats.ts'

const FLOOD = 5000
const ROUNDS = 3
const LATENCY_MS = 100
/** Requests the quiet namespace sends alone, for its baseline. */
const ALONE = 30

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url))

const manifests = (namespace: string) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: ${namespace} }
spec:
  provider: mock
  model: { value: mock }
  config: { mock: { properties: { latencyMs: { value: "${String(LATENCY_MS)}" } } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: worker, namespace: ${namespace} }
spec: { prompt: You answer in one sentence. }
`

const body = (namespace: string) =>
  JSON.stringify({
    model: `agent/${namespace}/worker`,
    messages: [{ role: 'user', content: 'Say hello to the benchmark.' }],
  })

async function startFairnessArk(): Promise<ServerProcess & { readonly dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ark-bench-fairness-'))
  await writeFile(join(dir, 'flood.yaml'), manifests('flood'))
  await writeFile(join(dir, 'quiet.yaml'), manifests('quiet'))
  const args = ['dev', '-f', dir, '--port', '0', '--probe-interval', '0', '--queue-size', String(FLOOD)]
  const ark = await startServer('ark dev', {
    args: [root('bin/ark.ts'), ...args],
    env: { ARK_LOG_LEVEL: 'info' },
    ready: (line) => (line.includes('"msg":"serving"') ? /"url":"([^"]+)"/.exec(line)?.[1] : undefined),
  }).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true })
    throw err
  })
  return { ...ark, dir }
}

/** One quiet request: its latency in ms, or NaN when it failed (the status goes to `failures`). */
async function ask(url: string, failures: string[]): Promise<number> {
  const started = performance.now()
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: body('quiet'),
  })
  const text = await res.text()
  if (res.ok) return performance.now() - started
  failures.push(`${String(res.status)} ${text.slice(0, 200)}`)
  return NaN
}

interface Round {
  readonly alone: number
  readonly aloneP99: number
  readonly flooded: number
  readonly floodedP99: number
  readonly quietRequests: number
  readonly failures: readonly string[]
  readonly flood: Readonly<Record<string, number>>
  readonly floodSeconds: number
}

async function round(url: string): Promise<Round> {
  const failures: string[] = []
  const alone: number[] = []
  for (let i = 0; i < ALONE; i++) alone.push(await ask(url, failures))
  const flood = spawn(process.execPath, [root('bench/lib/flood.ts'), url, String(FLOOD), body('flood')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const started = performance.now()
  let out = ''
  flood.stdout.setEncoding('utf8')
  const sent = new Promise<void>((resolve) =>
    flood.stdout.on('data', (chunk: string) => {
      out += chunk
      if (out.includes('sent\n')) resolve()
    }),
  )
  const ended = new Promise<void>((resolve) => flood.once('exit', () => resolve()))
  await Promise.race([sent, ended])
  let over = false
  void ended.then(() => (over = true))
  const flooded: number[] = []
  while (!over) flooded.push(await ask(url, failures))
  await ended
  const floodSeconds = (performance.now() - started) / 1000
  const summary = out.trim().split('\n').at(-1) ?? '{}'
  const ok = flooded.filter((x) => !Number.isNaN(x))
  return {
    alone: median(alone.filter((x) => !Number.isNaN(x))),
    aloneP99: percentile(
      alone.filter((x) => !Number.isNaN(x)),
      99,
    ),
    flooded: median(ok),
    floodedP99: percentile(ok, 99),
    quietRequests: flooded.length,
    failures,
    flood: JSON.parse(summary) as Record<string, number>,
    floodSeconds,
  }
}

async function run(context: RunContext): Promise<ScenarioResult> {
  const ark = await startFairnessArk()
  const url = `${ark.url}/v1/chat/completions`
  try {
    const rounds: Round[] = []
    for (let i = 0; i < ROUNDS; i++) {
      context.log(`fairness: round ${String(i + 1)} of ${String(ROUNDS)}, ${String(FLOOD)} requests`)
      rounds.push(await round(url))
    }
    const ratio = median(rounds.map((r) => r.flooded / r.alone))
    const failures = rounds.flatMap((r) => r.failures)
    const last = rounds.at(-1) as Round
    return {
      measures: [
        {
          name: 'quiet p50 under flood/alone',
          value: ratio,
          unit: 'x',
          note: `alone ${median(rounds.map((r) => r.alone)).toFixed(1)} ms, under the flood ${median(rounds.map((r) => r.flooded)).toFixed(1)} ms (p99 ${median(rounds.map((r) => r.floodedP99)).toFixed(1)} ms)`,
        },
        {
          name: 'quiet p99 under flood/alone',
          value: median(rounds.map((r) => r.floodedP99 / r.aloneP99)),
          unit: 'x',
          note: 'the slowest quiet requests are those sent while the flood is being accepted and parsed',
        },
        {
          name: 'quiet requests failed under flood',
          value: failures.length,
          unit: '',
          target: { op: '<=', value: 0 },
          note:
            failures.length === 0
              ? `of ${String(rounds.reduce((n, r) => n + r.quietRequests, 0))}`
              : failures.slice(0, 3).join('; '),
        },
      ],
      notes: [
        `${String(ROUNDS)} rounds on one \`ark dev\` (defaults: --max-in-flight 4096, --pool-concurrency 64; --queue-size ${String(FLOOD)}), the mock model at ${String(LATENCY_MS)} ms a reply. Each round: ${String(ALONE)} quiet requests alone, then the quiet namespace asks one request after another while ${String(FLOOD)} flood requests, sent at once by another process, are answered. The ratio is the median of the rounds'.`,
        `The last flood's answers by status: ${JSON.stringify(last.flood)}, over ${last.floodSeconds.toFixed(1)} s. 503s are the flood's refusals past its share of --max-in-flight (a namespace alone may hold all but a tenth).`,
      ],
    }
  } finally {
    await ark.stop()
    await rm(ark.dir, { recursive: true, force: true })
  }
}

const scenario: Scenario = {
  name: 'fairness',
  summary:
    "another namespace's latency while one floods 5,000 requests, over its latency alone, same ark dev",
  run,
}
export default scenario
