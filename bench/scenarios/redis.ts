/**
 * redis: agent completions through pools on Redis Streams, one `ark gateway` and two `ark worker` processes
 * (agent/mock-agent on ark's in-process mock), against the same completions on `ark dev` with in-process
 * pools, measured in the same run. And the queue's own round trip: a task submitted by a RedisQueue and
 * answered by a RedisWorker whose runner returns at once, against a Redis PING on the same server.
 */
import { Redis } from 'ioredis'
import { RedisQueue } from '../../gateway/pool/redis-queue.ts'
import { RedisWorker } from '../../gateway/pool/redis-worker.ts'
import { NO_USAGE } from '../../gateway/runtime/messages.ts'
import type { Task } from '../../gateway/runtime/task.ts'
import { startRedis } from '../../test/redis-server.ts'
import type { RedisServer } from '../../test/redis-server.ts'
import type { LoadTarget, RoundReport } from '../lib/load.ts'
import { loadRounds } from '../lib/load.ts'
import type { ServerProcess } from '../lib/processes.ts'
import type { GateSession, Measure, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median, percentile } from '../lib/stats.ts'
import {
  CHAT_MESSAGES,
  JSON_HEADERS,
  expectCompletion,
  startArk,
  startWorker,
  stopAll,
} from '../lib/stack.ts'

const AGENT = 'default/mock-agent'
const BODY = JSON.stringify({ model: 'agent/mock-agent', messages: CHAT_MESSAGES })

interface Stack {
  readonly targets: LoadTarget[]
  readonly redis: RedisServer
  close(): Promise<void>
}

async function start(): Promise<Stack> {
  const redis = await startRedis()
  const servers: ServerProcess[] = []
  try {
    const env = { REDIS_URL: redis.url, ARK_REDIS_PREFIX: 'bench' }
    const gateway = await startArk('http://127.0.0.1:9', env, 'gateway')
    servers.push(gateway)
    for (let i = 0; i < 2; i++) servers.push(await startWorker(AGENT, env))
    const embedded = await startArk('http://127.0.0.1:9')
    servers.push(embedded)
    const targets: LoadTarget[] = [
      {
        label: 'in-process',
        url: embedded.completions,
        headers: JSON_HEADERS,
        body: BODY,
        pid: embedded.pid,
      },
      { label: 'redis', url: gateway.completions, headers: JSON_HEADERS, body: BODY, pid: gateway.pid },
    ]
    for (const t of targets) await expectCompletion(t.url, JSON_HEADERS, t.body)
    return {
      targets,
      redis,
      async close() {
        await stopAll(servers)
        await redis.stop()
      },
    }
  } catch (err) {
    await stopAll(servers)
    await redis.stop()
    throw err
  }
}

const med = (m: Map<string, RoundReport[]>, label: string, pick: (r: RoundReport) => number) =>
  median((m.get(label) ?? []).map(pick))

interface RoundTrip {
  /** Microseconds, submit to result, sequential. */
  readonly p50: number
  readonly p99: number
  readonly pingP50: number
}

/** Sequential tasks through the queue alone (the runner answers at once), and PINGs to the same Redis. */
async function roundTrip(url: string, count: number): Promise<RoundTrip> {
  const prefix = `rt-${String(process.pid)}-${String(Date.now())}`
  const agent = { namespace: 'default', name: 'rt' }
  const queue = new RedisQueue({
    url,
    prefix,
    limitsOf: () => ({ concurrency: 1000, maxQueued: 1000 }),
    timeoutMsOf: () => 10_000,
  })
  const worker = new RedisWorker({
    url,
    prefix,
    agent,
    maxConcurrentTasks: 16,
    run: (task) =>
      Promise.resolve({ task: task.id, outcome: 'answer', content: 'ok', usage: NO_USAGE, iterations: 1 }),
  })
  const ping = new Redis(url)
  try {
    await worker.start()
    const signal = new AbortController().signal
    const times: number[] = []
    const pings: number[] = []
    for (let i = 0; i < count; i++) {
      const task: Task = {
        id: `rt-${String(i)}`,
        agent,
        messages: [{ role: 'user', content: 'x' }],
        parameters: {},
        stream: false,
        depth: 0,
      }
      const t0 = performance.now()
      const admission = await queue.submit(task, { signal })
      const result = await admission.result
      const t1 = performance.now()
      if (result.outcome !== 'answer') throw new Error(`round trip task ended with ${result.outcome}`)
      await ping.ping()
      const t2 = performance.now()
      // The first tenth warms connections and code paths.
      if (i >= count / 10) {
        times.push((t1 - t0) * 1000)
        pings.push((t2 - t1) * 1000)
      }
    }
    return { p50: percentile(times, 50), p99: percentile(times, 99), pingP50: percentile(pings, 50) }
  } finally {
    ping.disconnect()
    await worker.stop()
    await queue.close()
  }
}

async function run(context: RunContext): Promise<ScenarioResult> {
  const stack = await start()
  try {
    context.log('redis: queue round trip, 2000 sequential tasks')
    const rt = await roundTrip(stack.redis.url, 2000)
    context.log('redis: 1 connection')
    const one = await loadRounds(stack.targets, { connections: 1, seconds: 3, rounds: 3 })
    context.log('redis: 50 connections')
    const fifty = await loadRounds(stack.targets, { connections: 50, seconds: 3, rounds: 3 })
    const measures: Measure[] = [
      {
        name: 'queue round trip p50',
        value: rt.p50,
        unit: 'us',
        target: { op: '<=', value: 1000 },
        note: `p99 ${rt.p99.toFixed(0)} us; a Redis PING ${rt.pingP50.toFixed(0)} us`,
      },
    ]
    for (const t of stack.targets) {
      measures.push(
        {
          name: `${t.label} req/s @1`,
          value: med(one, t.label, (x) => x.perSecond),
          unit: 'req/s',
          note: `p50 ${med(one, t.label, (x) => x.p50).toFixed(0)} us, p99 ${med(one, t.label, (x) => x.p99).toFixed(0)} us`,
        },
        {
          name: `${t.label} req/s @50`,
          value: med(fifty, t.label, (x) => x.perSecond),
          unit: 'req/s',
          ...(t.label === 'redis' ? { target: { op: '>=' as const, value: 1000 } } : {}),
          note: `p50 ${med(fifty, t.label, (x) => x.p50).toFixed(0)} us, p99 ${med(fifty, t.label, (x) => x.p99).toFixed(0)} us`,
        },
      )
    }
    measures.push({
      name: 'redis / in-process req/s @50',
      value: med(fifty, 'redis', (x) => x.perSecond) / med(fifty, 'in-process', (x) => x.perSecond),
      unit: 'x',
    })
    return {
      measures,
      notes: [
        'redis = agent/mock-agent through `ark gateway` and two `ark worker` processes sharing one redis-server; in-process = the same agent on `ark dev` (the baseline). Every process, the load generator and Redis share this machine.',
        'Round trip: RedisQueue.submit to its result for a task whose runner answers at once (gateway and worker side in the bench process), 2000 sequential tasks, the first 200 not counted; PING on a third connection for scale.',
        'Throughput and latency: 3 rounds of 3 s per route, routes interleaved, medians of the rounds.',
      ],
    }
  } finally {
    await stack.close()
  }
}

async function gate(context: RunContext): Promise<GateSession> {
  context.log('redis gate: queue round trip vs PING')
  const redis = await startRedis()
  return {
    async sample() {
      const rt = await roundTrip(redis.url, 500)
      return { 'round trip/ping p50': rt.p50 / rt.pingP50 }
    },
    close: () => redis.stop(),
  }
}

const scenario: Scenario = {
  name: 'redis',
  summary:
    'agent completions through ark gateway + 2 ark workers on Redis Streams vs ark dev in-process; queue round trip vs PING',
  run,
  gate,
}
export default scenario
