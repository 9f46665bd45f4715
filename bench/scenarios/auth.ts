/**
 * auth: what API keys and quotas cost the agent path. Issue 21's target: authentication and quota checks
 * cost at most 5% of the agent path's throughput on the mock model.
 *
 * - In process (the gate): three gateways built as `ark dev` builds its own, one open, one asking for keys
 *   (a key without scope or limits), and one whose key has a scope and every limit (none of which it
 *   reaches, so each check a limited key goes through is paid), in a worker thread
 *   (bench/lib/auth-gateways.ts), answering the same agent request (in-process mock) through
 *   @hono/node-server's listener as a served request is, without a socket (bench/lib/node-inject.ts), in
 *   alternating batches, timed by the process's CPU time. No kernel, no HTTP parser and no other process:
 *   two identical processes over HTTP differ by up to 7% on this machine, more than the effect. Without
 *   those the agent path costs about half of what it does served, so the checks' share reads about twice
 *   what it is over HTTP; and the three gateways' shared code sees three shapes of request where a
 *   server's sees one. Both err against ark.
 * - Over HTTP (reported): three `ark dev`, open, with `--api-keys`, and with a key that has limits, under
 *   load, interleaved, and a fourth, open again, whose ratio to the first is what the noise alone reads.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { newKey } from '../../gateway/index.ts'
import type { Answer, Ask, Which } from '../lib/auth-gateways.ts'
import type { RoundReport } from '../lib/load.ts'
import { loadRounds } from '../lib/load.ts'
import type { GateSession, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'
import type { ArkProcess } from '../lib/stack.ts'
import { CHAT_MESSAGES, JSON_HEADERS, expectCompletion, startArk, stopAll } from '../lib/stack.ts'

/** The in-process gateways (bench/lib/auth-gateways.ts, in a worker), and ratios of their CPU per request. */
async function inProcess() {
  const worker = new Worker(new URL('../lib/auth-gateways.ts', import.meta.url))
  const answers: ((a: Answer) => void)[] = []
  const failed = new Promise<never>((_, reject) => {
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`the auth gateways' worker exited (${String(code)})`)))
  })
  failed.catch(() => undefined)
  worker.on('message', (a: Answer) => answers.shift()?.(a))
  const next = () => Promise.race([new Promise<Answer>((resolve) => answers.push(resolve)), failed])
  const close = async () => {
    const exited = new Promise((resolve) => worker.once('exit', resolve))
    worker.postMessage({ close: true } satisfies Ask)
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())])
    await worker.terminate()
  }
  try {
    // The first message says the gateways are built and warm.
    await next()
  } catch (err) {
    await worker.terminate()
    throw err
  }
  const time = async (which: Which, n: number): Promise<number> => {
    const answer = next()
    worker.postMessage({ which, n } satisfies Ask)
    const a = await answer
    if ('error' in a) throw new Error(a.error)
    return a.microseconds
  }
  return {
    /** `which`/open over one pair of batches of `n`, in alternating order. */
    async ratio(
      n: number,
      flip: boolean,
      which: 'keys' | 'limits' = 'keys',
    ): Promise<{ ratio: number; open: number; keys: number }> {
      const first = flip ? await time(which, n) : await time('open', n)
      const second = flip ? await time('open', n) : await time(which, n)
      const [o, k] = flip ? [second, first] : [first, second]
      return { ratio: k / o, open: o, keys: k }
    },
    close,
  }
}

async function start() {
  const dir = await mkdtemp(join(tmpdir(), 'ark-bench-keys-'))
  const { key, sha256 } = newKey()
  await writeFile(join(dir, 'keys.yaml'), `keys:\n  - id: bench\n    sha256: ${sha256}\n`)
  // The same key with a scope and every limit, none of which it reaches, as in process.
  await writeFile(
    join(dir, 'limits.yaml'),
    `keys:\n  - id: bench\n    sha256: ${sha256}\n    namespaces: [default]\n    targets: [agent/*]\n    limits: { requestsPerSecond: 1000000000, burst: 1000000000, tokensPerDay: 1000000000000000 }\n`,
  )
  const started: ArkProcess[] = []
  const close = async () => {
    await stopAll(started)
    await rm(dir, { recursive: true, force: true })
  }
  let open: ArkProcess, keyed: ArkProcess, limited: ArkProcess, again: ArkProcess
  try {
    started.push((open = await startArk('http://127.0.0.1:9')))
    started.push((keyed = await startArk('http://127.0.0.1:9', { ARK_API_KEYS: join(dir, 'keys.yaml') })))
    started.push((limited = await startArk('http://127.0.0.1:9', { ARK_API_KEYS: join(dir, 'limits.yaml') })))
    // A second open one: what two identical processes differ by in the same rounds, the noise floor.
    started.push((again = await startArk('http://127.0.0.1:9')))
  } catch (err) {
    await close()
    throw err
  }
  try {
    const body = JSON.stringify({ model: 'agent/mock-agent', messages: CHAT_MESSAGES })
    const withKey = { ...JSON_HEADERS, authorization: `Bearer ${key}` }
    await expectCompletion(open.completions, withKey, body)
    await expectCompletion(keyed.completions, withKey, body)
    await expectCompletion(limited.completions, withKey, body)
    await expectCompletion(again.completions, withKey, body)
    // The same request to each, as the OpenAI SDK sends it to an open gateway too.
    const targets = [
      { label: 'open', url: open.completions, headers: withKey, body, pid: open.pid },
      { label: 'keys', url: keyed.completions, headers: withKey, body, pid: keyed.pid },
      { label: 'limits', url: limited.completions, headers: withKey, body, pid: limited.pid },
    ]
    const control = { label: 'open again', url: again.completions, headers: withKey, body, pid: again.pid }
    // The control goes through every round the others do: the same warm-up, the same JIT state.
    return { targets: [...targets, control], pids: [open.pid, keyed.pid, limited.pid, again.pid], close }
  } catch (err) {
    await close()
    throw err
  }
}

const med = (m: Map<string, RoundReport[]>, label: string, pick: (r: RoundReport) => number) =>
  median((m.get(label) ?? []).map(pick))
const ratio = (m: Map<string, RoundReport[]>, pick: (r: RoundReport) => number, label = 'keys') =>
  med(m, label, pick) / med(m, 'open', pick)
/**
 * `label`'s throughput over the open gateway's, round by round (the two ran one after the other, on the
 * machine as it was then), and the median of those.
 */
function throughputRatio(m: Map<string, RoundReport[]>, label: string): { value: number; rounds: number[] } {
  const open = m.get('open') ?? []
  const rounds = (m.get(label) ?? []).map((r, i) => r.perSecond / (open[i]?.perSecond ?? NaN))
  return { value: median(rounds), rounds }
}
const listed = (xs: readonly number[]) => xs.map((x) => x.toFixed(2)).join(' ')

async function run(context: RunContext): Promise<ScenarioResult> {
  context.log('auth: in process, 9 pairs of 3,000 requests each, for keys and for limits')
  const local = await inProcess()
  const pairs: { ratio: number; open: number; keys: number }[] = []
  const limited: { ratio: number; open: number; keys: number }[] = []
  try {
    for (let i = 0; i < 9; i++) {
      pairs.push(await local.ratio(3000, i % 2 === 1))
      limited.push(await local.ratio(3000, i % 2 === 1, 'limits'))
    }
  } finally {
    await local.close()
  }
  const stack = await start()
  try {
    context.log('auth: 1 connection')
    const one = await loadRounds(stack.targets, {
      connections: 1,
      seconds: 2,
      rounds: 5,
      pinServers: stack.pids,
    })
    context.log('auth: 50 connections')
    const fifty = await loadRounds(stack.targets, {
      connections: 50,
      seconds: 3,
      rounds: 8,
      rotate: true,
    })
    const noise = throughputRatio(fifty, 'open again')
    const cpu = (m: Map<string, RoundReport[]>, label: string) =>
      med(m, label, (x) => x.cpuPerRequest).toFixed(0)
    /** A checked gateway's CPU per request and throughput at 50 connections, each against the open one. */
    const underLoad = (label: 'keys' | 'limits') => {
      const perSecond = throughputRatio(fifty, label)
      return [
        {
          name: `${label}/open CPU per request @50`,
          value: ratio(fifty, (x) => x.cpuPerRequest, label),
          unit: 'x',
          note: `${label} ${cpu(fifty, label)} us, open ${cpu(fifty, 'open')} us a request`,
        },
        {
          name: `${label}/open req/s @50`,
          value: perSecond.value,
          unit: 'x',
          target: { op: '>=' as const, value: 0.95 },
          note: `${label} ${med(fifty, label, (x) => x.perSecond).toFixed(0)} req/s, open ${med(fifty, 'open', (x) => x.perSecond).toFixed(0)}; rounds ${listed(perSecond.rounds)}`,
        },
      ]
    }
    return {
      measures: [
        {
          name: 'keys/open time per request, in process',
          value: median(pairs.map((p) => p.ratio)),
          unit: 'x',
          target: { op: '<=', value: 1.05 },
          note: `keys ${median(pairs.map((p) => p.keys)).toFixed(1)} us, open ${median(pairs.map((p) => p.open)).toFixed(1)} us a request; pairs ${pairs.map((p) => p.ratio.toFixed(3)).join(' ')}`,
        },
        {
          name: 'limits/open time per request, in process',
          value: median(limited.map((p) => p.ratio)),
          unit: 'x',
          target: { op: '<=', value: 1.05 },
          note: `a key with a scope, a request rate and a daily token limit: ${median(limited.map((p) => p.keys)).toFixed(1)} us, open ${median(limited.map((p) => p.open)).toFixed(1)} us a request; pairs ${limited.map((p) => p.ratio.toFixed(3)).join(' ')}`,
        },
        ...underLoad('keys'),
        ...underLoad('limits'),
        {
          name: 'open again/open req/s @50',
          value: noise.value,
          unit: 'x',
          note: `two identical open gateways in the same rounds: how far apart the noise alone puts them; rounds ${listed(noise.rounds)}`,
        },
        {
          name: 'keys/open p50 @1',
          value: ratio(one, (x) => x.p50),
          unit: 'x',
          note: `keys ${med(one, 'keys', (x) => x.p50).toFixed(0)} us, open ${med(one, 'open', (x) => x.p50).toFixed(0)} us; CPU ${cpu(one, 'keys')} against ${cpu(one, 'open')} us a request`,
        },
      ],
      notes: [
        "Four `ark dev` on the same manifests: open, with --api-keys, with --api-keys whose key has a scope and every limit, and open again (the noise floor); a valid key on every request to each; interleaved rounds: at 1 connection 5 rounds of 2 s, servers pinned, medians; at 50, 8 rounds of 3 s, each round starting one gateway later, throughput as the median of each round's ratio to the open gateway.",
      ],
    }
  } finally {
    await stack.close()
  }
}

async function gate(context: RunContext): Promise<GateSession> {
  context.log('auth gate: an agent request with an API key vs without, in process')
  const local = await inProcess()
  let flip = false
  return {
    async sample() {
      flip = !flip
      return {
        'keys/open time per request, in process': (await local.ratio(2000, flip)).ratio,
        'limits/open time per request, in process': (await local.ratio(2000, flip, 'limits')).ratio,
      }
    },
    close: () => local.close(),
  }
}

const scenario: Scenario = {
  name: 'auth',
  summary: 'an agent request with an API key against the same request to an open ark dev, same run',
  run,
  gate,
}
export default scenario
