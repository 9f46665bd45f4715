/**
 * Pools on Redis Streams, end to end with real processes: `ark gateway` and `ark worker` children of this
 * test, a real redis-server, and the openai SDK as the client. Processes are killed (-9), stopped (SIGTERM)
 * and Redis is restarted under them; every accepted request must still get exactly one answer.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import OpenAI from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { RedisServer } from './redis-server.ts'
import { startRedis } from './redis-server.ts'

const MANIFESTS = 'test/fixtures/pools'
let redis: RedisServer
let admin: Redis
let prefix: string
let n = 0
const started: ArkProcess[] = []

beforeAll(async () => {
  redis = await startRedis()
  admin = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  admin.on('error', () => {})
})
afterAll(async () => {
  admin.disconnect()
  await redis.stop()
})
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()))
})

/** Every test gets its own key prefix, so that no stream or consumer of another test is in the way. */
function freshPrefix(): string {
  prefix = `t${String(++n)}-${String(process.pid)}`
  return prefix
}

async function gateway(manifests = MANIFESTS): Promise<ArkProcess> {
  const p = await startArk(
    ['gateway', '-f', manifests, '--port', '0', '--probe-interval', '0', '--task-timeout', '30'],
    { env: { REDIS_URL: redis.url, ARK_REDIS_PREFIX: prefix } },
  )
  started.push(p)
  return p
}

async function worker(agent: string, ...flags: string[]): Promise<ArkProcess> {
  const p = await startArk(
    ['worker', '--agent', agent, '-f', MANIFESTS, '--port', '0', '--claim-idle', '1', ...flags],
    { env: { REDIS_URL: redis.url, ARK_REDIS_PREFIX: prefix }, ready: 'taking tasks' },
  )
  started.push(p)
  return p
}

function client(gw: ArkProcess, timeout = 20_000): OpenAI {
  return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout })
}

/** The sum of a metric's samples whose labels include `labels` (Prometheus text from /metrics). */
async function metric(p: ArkProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${p.url}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const ask = (openai: OpenAI, model: string, content: string) =>
  openai.chat.completions.create({ model, messages: [{ role: 'user', content }] })

describe('pools on Redis Streams, with real processes', () => {
  it('answers 503 no_workers at once for a pool no worker serves, and runs once one does', async () => {
    freshPrefix()
    const gw = await gateway()
    const openai = client(gw)
    const refused = await ask(openai, 'agent/echo', 'anyone?').then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    )
    expect(refused).toBeInstanceOf(OpenAI.InternalServerError)
    expect(refused).toMatchObject({ status: 503, code: 'no_workers' })
    expect(refused?.headers?.get('retry-after')).toBe('5')
    // Refused, not queued (a queued task would be answered 504 at its 30 s deadline): nothing in the stream.
    expect(await admin.xlen(`${prefix}:pool:default/echo`)).toBe(0)
    await worker('default/echo')
    await until(
      () =>
        ask(openai, 'agent/echo', 'now?').then(
          (a) => a.choices[0]?.message.content === 'You said: now?',
          () => false,
        ),
      'a run once a worker serves the pool',
    )
  })

  it('spreads 60 requests over two workers; each is answered once, with its own answer', async () => {
    freshPrefix()
    const gw = await gateway()
    const workers = [await worker('default/echo'), await worker('echo', '--concurrency', '4')]
    const openai = client(gw)
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => ask(openai, 'agent/echo', `message ${String(i)}`)),
    )
    expect(answers.map((a) => a.choices[0]?.message.content)).toEqual(
      Array.from({ length: 60 }, (_, i) => `You said: message ${String(i)}`),
    )
    const ran = await Promise.all(workers.map((w) => metric(w, 'ark_queue_run_seconds_count')))
    // Each task ran once, unless a worker took it over from one that held it past --claim-idle (1 s, which a
    // busy machine can reach): every extra run is such a takeover, never a duplicate of its own.
    const reclaimed = await Promise.all(workers.map((w) => metric(w, 'ark_queue_reclaimed_total')))
    // (A run taken over may still be going on when the metrics are read: at most, not exactly.)
    expect(ran[0]! + ran[1]!).toBeGreaterThanOrEqual(60)
    expect(ran[0]! + ran[1]!).toBeLessThanOrEqual(60 + reclaimed[0]! + reclaimed[1]!)
    expect(Math.min(...ran)).toBeGreaterThan(0)
    // The tool loop runs in the worker, streaming too.
    const chunks: string[] = []
    const stream = await openai.chat.completions.create({
      model: 'agent/echo',
      stream: true,
      messages: [{ role: 'user', content: 'calculator {"expression": "6*7"}' }],
    })
    for await (const chunk of stream) chunks.push(chunk.choices[0]?.delta.content ?? '')
    expect(chunks.join('')).toContain('42')
    // Answered entries are acknowledged and deleted: nothing is left in the pool's stream.
    expect(await admin.xlen(`${prefix}:pool:default/echo`)).toBe(0)
  })

  it('ark dev with REDIS_URL runs the agents through Redis, with workers of its own', async () => {
    freshPrefix()
    const dev = await startArk(['dev', '-f', MANIFESTS, '--port', '0', '--probe-interval', '0'], {
      env: { REDIS_URL: redis.url, ARK_REDIS_PREFIX: prefix },
    })
    started.push(dev)
    const answer = await ask(client(dev), 'agent/echo', 'through redis')
    expect(answer.choices[0]?.message.content).toBe('You said: through redis')
    expect(await metric(dev, 'ark_queue_run_seconds_count', { pool: 'default/echo' })).toBe(1)
    // The task went through the pool's stream (created by the submit, emptied by the answer).
    expect(await admin.exists(`${prefix}:pool:default/echo`)).toBe(1)
    expect(await admin.xlen(`${prefix}:pool:default/echo`)).toBe(0)
  })

  it('kill -9 of a worker mid-task: another worker takes it over at once (it stopped saying it is alive), one answer', async () => {
    freshPrefix()
    const gw = await gateway()
    // Takeover by idle time would wait a minute here: only the dead worker's silence can make the client's
    // 20 s timeout.
    const workers = [
      await worker('default/slow', '--claim-idle', '60'),
      await worker('default/slow', '--claim-idle', '60'),
    ]
    const answer = ask(client(gw), 'agent/slow', 'survive this')
    let victim: ArkProcess | undefined
    await until(async () => {
      for (const w of workers) if ((await metric(w, 'ark_worker_tasks_in_flight')) === 1) victim = w
      return victim !== undefined
    }, 'a worker to take the task')
    victim!.signal('SIGKILL')
    const killed = performance.now()
    expect((await victim!.exited).signal).toBe('SIGKILL')
    const survivor = workers.find((w) => w !== victim)!
    await until(async () => (await metric(survivor, 'ark_queue_reclaimed_total')) === 1, 'the takeover')
    // For the record (not asserted: machines here are shared and noisy), how long the task was orphaned.
    console.log(`kill -9 to takeover: ${((performance.now() - killed) / 1000).toFixed(1)} s`)
    const completion = await answer
    expect(completion.choices[0]?.message.content).toBe('You said: survive this')
    expect(await metric(survivor, 'ark_queue_reclaimed_total')).toBe(1)
    expect(await metric(survivor, 'ark_queue_retried_total')).toBe(1)
    expect(await metric(survivor, 'ark_queue_run_seconds_count')).toBe(1)
    // One answer in the gateway's reply stream(s), nothing pending, nothing dead-lettered.
    const replies = await admin.keys(`${prefix}:reply:*`)
    let results = 0
    for (const key of replies)
      for (const [, fields] of await admin.xrange(key, '-', '+')) if (fields.includes('result')) results++
    expect(results).toBe(1)
    expect(await admin.xlen(`${prefix}:pool:default/slow`)).toBe(0)
    expect(await admin.exists(`${prefix}:dead:default/slow`)).toBe(0)
  })

  it('SIGTERM: a worker finishes the task it runs, then exits 0', async () => {
    freshPrefix()
    const gw = await gateway()
    const stopping = await worker('default/slow', '--shutdown-grace', '20')
    const answer = ask(client(gw), 'agent/slow', 'finish me')
    await until(async () => (await metric(stopping, 'ark_worker_tasks_in_flight')) === 1, 'the task to start')
    stopping.signal('SIGTERM')
    expect((await answer).choices[0]?.message.content).toBe('You said: finish me')
    expect((await stopping.exited).code).toBe(0)
  })

  it('SIGTERM past the grace period: the task is handed back and another worker runs it at once', async () => {
    freshPrefix()
    const gw = await gateway()
    // Takeover by idle time would take 30 s here: only the hand-back can make the 20 s client timeout. The model
    // takes 5 s, so that the second worker is up (seconds, on a loaded machine) before the first one is done.
    const first = await startArk(
      ['worker', '--agent', 'default/slower', '-f', MANIFESTS, '--port', '0', '--shutdown-grace', '0'],
      { env: { REDIS_URL: redis.url, ARK_REDIS_PREFIX: prefix }, ready: 'taking tasks' },
    )
    started.push(first)
    const answer = ask(client(gw, 20_000), 'agent/slower', 'hand me over')
    await until(async () => (await metric(first, 'ark_worker_tasks_in_flight')) === 1, 'the task to start')
    const second = await startArk(
      ['worker', '--agent', 'default/slower', '-f', MANIFESTS, '--port', '0', '--claim-idle', '30'],
      { env: { REDIS_URL: redis.url, ARK_REDIS_PREFIX: prefix }, ready: 'taking tasks' },
    )
    started.push(second)
    first.signal('SIGTERM')
    expect((await first.exited).code).toBe(0)
    expect((await answer).choices[0]?.message.content).toBe('You said: hand me over')
    expect(await metric(second, 'ark_queue_retried_total')).toBe(1)
    // A hand-back is not a failed attempt: the task has all its attempts left.
    expect(await admin.exists(`${prefix}:dead:default/slower`)).toBe(0)
  })

  it('Redis restarted: the gateway answers 503 at once while it is down, and recovers without a restart', async () => {
    freshPrefix()
    const gw = await gateway()
    const w = await worker('default/echo')
    const openai = client(gw, 5000)
    expect((await ask(openai, 'agent/echo', 'before')).choices[0]?.message.content).toBe('You said: before')
    await redis.stop()
    try {
      // The client's 5 s timeout would turn a request held until Redis returns into a different error.
      const refused = await ask(openai, 'agent/echo', 'while down').then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(refused).toBeInstanceOf(OpenAI.APIError)
      expect((refused as InstanceType<typeof OpenAI.APIError>).status).toBe(503)
      expect((refused as InstanceType<typeof OpenAI.APIError>).code).toBe('queue_unavailable')
      // "not reachable", or "did not answer" when the connection dropped under the command; never where
      // Redis lives (that goes to the gateway's log).
      expect((refused as Error).message).toMatch(/the task queue \(Redis\) (is not reachable|did not answer)/)
      expect((refused as Error).message).not.toContain(String(redis.port))
      const ready = await fetch(`${w.url}/readyz`)
      expect(ready.status).toBe(503)
      expect(JSON.stringify(await ready.json())).toContain('Redis is not reachable')
    } finally {
      // Empty: this Redis keeps nothing, so the consumer group is gone and must be made again.
      await redis.restart()
    }
    let answer: string | null | undefined
    await until(async () => {
      answer = await ask(openai, 'agent/echo', 'after').then(
        (c) => c.choices[0]?.message.content,
        () => undefined,
      )
      return answer !== undefined
    }, 'a request to succeed after the restart')
    expect(answer).toBe('You said: after')
    expect((await fetch(`${w.url}/readyz`)).status).toBe(200)
  })
})

describe('semantic readiness', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ark-semantic-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  const manifest = (validatorPrompt: string) => `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: picky, namespace: default }
spec:
  model: llama3.2
  systemPrompt: You check things.
  livenessProbe:
    type: semantic
    intervalSeconds: 1
    validatorPrompt: ${JSON.stringify(validatorPrompt)}
`

  it('a worker whose model fails the check is not ready and takes no task until the check passes', async () => {
    freshPrefix()
    // The mock answers the text after `answer:`: SICK, where the prompt asks for HEALTHY.
    await writeFile(join(dir, 'picky.yaml'), manifest('answer: SICK\nReply with exactly one word: HEALTHY'))
    const gw = await gateway(dir)
    const w = await startArk(['worker', '--agent', 'default/picky', '-f', dir, '--port', '0'], {
      env: { REDIS_URL: redis.url, ARK_REDIS_PREFIX: prefix },
      ready: 'taking tasks',
    })
    started.push(w)
    await until(
      async () => JSON.stringify(await (await fetch(`${w.url}/readyz`)).json()).includes('SICK'),
      'the first verdict',
    )
    const notReady = await fetch(`${w.url}/readyz`)
    expect(notReady.status).toBe(503)
    expect(JSON.stringify(await notReady.json())).toContain('where HEALTHY was expected')
    expect(await metric(w, 'ark_worker_ready')).toBe(0)

    const answer = ask(client(gw, 20_000), 'agent/picky', 'check me')
    const stream = `${prefix}:pool:default/picky`
    await until(async () => (await admin.xlen(stream)) === 1, 'the task to be queued')
    // Three check intervals later, the task is still waiting, delivered to no one.
    await new Promise((r) => setTimeout(r, 3000))
    expect(await admin.xlen(stream)).toBe(1)
    expect((await admin.xpending(stream, 'workers'))[0]).toBe(0)
    // Both sides report the waiting task from Redis: what an autoscaler reads.
    for (const p of [gw, w]) {
      expect(await metric(p, 'ark_pool_queue_depth', { pool: 'default/picky' })).toBe(1)
      expect(await metric(p, 'ark_pool_in_flight', { pool: 'default/picky' })).toBe(0)
      // The worker counts as one of the pool's, ready or not: it is running.
      expect(await metric(p, 'ark_pool_workers', { pool: 'default/picky' })).toBe(1)
    }
    // The dashboard's view of the pool, from the gateway: one task waiting, one worker.
    const state = (await (await fetch(`${gw.url}/ui/api/state`)).json()) as {
      agents: { id: string; pool?: { queued: number; inFlight: number; workers?: number } }[]
    }
    expect(state.agents.find((a) => a.id === 'agent/picky')?.pool).toMatchObject({
      queued: 1,
      inFlight: 0,
      workers: 1,
    })

    // The model gets better (here: the check is fixed); the worker is ready again and takes the task.
    await writeFile(join(dir, 'picky.yaml'), manifest('Reply with exactly one word: HEALTHY'))
    expect((await answer).choices[0]?.message.content).toBe('You said: check me')
    expect((await fetch(`${w.url}/readyz`)).status).toBe(200)
    expect(await metric(w, 'ark_worker_ready')).toBe(1)
  })
})
