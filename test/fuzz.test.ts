/**
 * The gateway under fuzz: ARK_FUZZ_COUNT (10,000) seeded requests over every route, over real HTTP, against a
 * gateway in its own process (test/fuzz-target.ts) whose targets cover every way a request is handled:
 * agents (and a team, unknown names), Models on an OpenAI-wire upstream (a fake OpenAI that refuses what the
 * real one refuses), and Models ark maps itself (the mock, a fake Anthropic). Every answer must be: no 5xx,
 * errors in OpenAI's shape as JSON, the status the request calls for (400 with the right `param` for an
 * invalid field), a clean stream when streaming. The process must stay up and healthy between batches; a
 * request that gets no answer (a hang) stops the run and is reported.
 *
 * A failure prints the seed and the requests; replay with ARK_FUZZ_SEED=<seed> (ARK_FUZZ_ONLY=<n>[,<n>] for
 * only those requests). ARK_FUZZ_SEED=random draws a new seed; ARK_FUZZ_VERBOSE=1 prints the tally.
 */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { Agent } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Answer } from './fuzz-check.ts'
import { describe as describeRequest, problemsOf, send } from './fuzz-check.ts'
import { requestRng, seedFromEnv } from './fuzz-random.ts'
import type { FuzzRequest } from './fuzz-requests.ts'
import { fuzzRequest } from './fuzz-requests.ts'

const SEED = seedFromEnv(process.env)
const COUNT = Number(process.env.ARK_FUZZ_COUNT ?? 10_000)
const ONLY = process.env.ARK_FUZZ_ONLY?.split(',').map(Number)
/** Enough requests in flight to keep the gateway's process busy while this one generates and checks. */
const CONCURRENCY = 24
const BATCH = 1000

interface Target {
  url: string
  readonly child: ChildProcess
  /** The end of what the process wrote to stderr: why it died, if it did. */
  stderr(): string
  /** Set when the process ended, whoever ended it. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | undefined
}

function startTarget(): Promise<Target> {
  const child = spawn(process.execPath, ['test/fuzz-target.ts'], { stdio: ['pipe', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => (err = (err + chunk).slice(-4000)))
  return new Promise((resolve, reject) => {
    let out = ''
    const target: Target = { url: '', child, stderr: () => err, exited: undefined }
    child.once('exit', (code, signal) => {
      target.exited = { code, signal }
      // After listening, a no-op: the run notices the exit and reports it.
      reject(new Error(`the fuzz target exited (${String(code ?? signal)}) before listening:\n${err}`))
    })
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      const m = /^listening (\S+)$/m.exec(out)
      if (m?.[1] !== undefined && target.url === '') {
        target.url = m[1]
        resolve(target)
      }
    })
  })
}

async function stopTarget(t: Target): Promise<void> {
  if (t.exited !== undefined) return
  const gone = new Promise<void>((resolve) => t.child.once('exit', () => resolve()))
  t.child.kill('SIGTERM')
  const timer = setTimeout(() => t.child.kill('SIGKILL'), 5000)
  await gone
  clearTimeout(timer)
}

let target: Target

beforeAll(async () => {
  target = await startTarget()
}, 60_000)

afterAll(async () => {
  await stopTarget(target)
})

interface Failure {
  readonly req: FuzzRequest
  readonly answer: Answer | undefined
  readonly problems: readonly string[]
}

async function healthy(url: string): Promise<string | undefined> {
  const aborter = new AbortController()
  const timer = setTimeout(() => aborter.abort(), 10_000)
  try {
    const res = await fetch(`${url}/healthz`, { signal: aborter.signal })
    await res.body?.cancel()
    return res.status === 200 ? undefined : `GET /healthz answered ${String(res.status)}`
  } catch (err) {
    return `GET /healthz failed: ${err instanceof Error ? err.message : String(err)}`
  } finally {
    clearTimeout(timer)
  }
}

/** 5xx, hangs, crashes and answers in the wrong shape come first in a report: they are the worst. */
const SEVERE = /^(a \d|no answer|error[ .]|a stream|the stream|a 200|GET |\/|the gateway)/
const rank = (f: Failure) => (f.problems.some((p) => SEVERE.test(p)) ? 0 : 1)

function report(failures: Failure[], count: number): string {
  failures.sort((a, b) => rank(a) - rank(b) || a.req.index - b.req.index)
  const byProblem = new Map<string, number>()
  for (const f of failures)
    for (const p of f.problems) {
      const kind = p.replace(/\d+/g, 'N')
      byProblem.set(kind, (byProblem.get(kind) ?? 0) + 1)
    }
  const unanswered = failures.filter((f) => f.answer === undefined && f.req.label !== 'health')
  return [
    `${String(failures.length)} of ${String(count)} requests failed (ARK_FUZZ_SEED=${String(SEED)}; replay some with ARK_FUZZ_ONLY=<n>,<n>):`,
    ...[...byProblem].map(([p, n]) => `  ${String(n)} x ${p}`),
    ...(unanswered.length === 0
      ? []
      : [
          `The gateway stopped answering: one of the requests then in flight hangs it. Replay each alone with ARK_FUZZ_ONLY=<n>: ${unanswered.map((f) => String(f.req.index)).join(', ')}`,
        ]),
    '',
    ...failures.slice(0, 40).map((f) => `${f.problems.join('; ')}\n  ${describeRequest(f.req, f.answer)}`),
    ...(target.exited === undefined
      ? []
      : [
          `\nthe gateway process exited (${String(target.exited.code ?? target.exited.signal)}):\n${target.stderr()}`,
        ]),
  ].join('\n')
}

describe('fuzz', () => {
  it(
    `${String(ONLY?.length ?? COUNT)} generated requests (seed ${String(SEED)}): no 5xx, OpenAI-shaped errors, the expected status`,
    { timeout: 300_000 },
    async () => {
      const base = new URL(target.url)
      const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })
      const indexes = ONLY ?? Array.from({ length: COUNT }, (_, i) => i)
      const failures: Failure[] = []
      const tally = new Map<string, number>()
      // A request without an answer means the gateway hangs or died: everything after it would only wait too.
      let stopped = false
      try {
        for (let start = 0; start < indexes.length && !stopped; start += BATCH) {
          const batch = indexes.slice(start, start + BATCH)
          let next = 0
          const worker = async () => {
            while (next < batch.length && !stopped) {
              const index = batch[next++]!
              const req = fuzzRequest(index, requestRng(SEED, index))
              let answer: Answer | undefined
              let problems: string[]
              try {
                answer = await send(base, req, agent)
                problems = problemsOf(req, answer)
              } catch (err) {
                stopped = true
                problems = [`no answer: ${err instanceof Error ? err.message : String(err)}`]
              }
              const key = `${req.label} ${String(answer?.status ?? 'none')}`
              tally.set(key, (tally.get(key) ?? 0) + 1)
              if (problems.length > 0) failures.push({ req, answer, problems })
            }
          }
          await Promise.all(Array.from({ length: CONCURRENCY }, worker))
          const sick = target.exited !== undefined ? 'the gateway process exited' : await healthy(target.url)
          if (sick !== undefined) {
            stopped = true
            const last = batch.at(-1) ?? 0
            failures.push({
              req: {
                index: last,
                method: 'GET',
                path: '/healthz',
                headers: {},
                chunked: false,
                stream: false,
                expect: { kind: 'ok' },
                notes: [`health check after request ${String(last)}`],
                label: 'health',
              },
              answer: undefined,
              problems: [sick],
            })
          }
        }
      } finally {
        agent.destroy()
      }
      if (failures.length > 0) expect.fail(report(failures, indexes.length))
      if (process.env.ARK_FUZZ_VERBOSE !== undefined) {
        console.log(
          [...tally]
            .sort()
            .map(([k, n]) => `${k}: ${String(n)}`)
            .join('\n'),
        )
      }
      // The generator reaches what it is meant to: answers and refusals through every kind of target and route.
      if (ONLY === undefined && COUNT >= 5000) {
        for (const key of [
          'POST chat agent 200',
          'POST chat agent 400',
          'POST chat agent 404',
          'POST chat forwarded 200',
          'POST chat forwarded 400',
          'POST chat mapped 200',
          'POST chat mapped 400',
          'GET model 200',
          'GET hostile model id 400',
          'GET hostile model id 404',
          'GET route 200',
          'HEAD route 200',
          'wrong method 405',
          'unknown route 404',
        ])
          expect(tally.get(key) ?? 0, `${key} in ${JSON.stringify([...tally])}`).toBeGreaterThan(COUNT / 500)
      }
    },
  )
})
