/**
 * What the gateway's and the workers' sides of the Redis Streams queue share: the key layout, the consumer
 * group, and the shape of stream entries. redis-queue.ts is the gateway's side, redis-worker.ts a worker's.
 *
 * Keys (all under `prefix`, default `ark`):
 * - `<p>:pool:<ns>/<name>`: one stream per agent pool, read by the consumer group `workers`; each worker
 *   process is a consumer. An entry is acknowledged and deleted once its answer is sent, so the stream's
 *   length is the pool's backlog (waiting + running), which is what admission and autoscalers read.
 * - `<p>:reply:<gateway id>`: one stream per gateway replica, carrying the events and the result of every
 *   task that replica submitted. A stream rather than pub/sub: a gateway that loses its connection for a
 *   moment reads on from its last id and loses nothing, and one blocking XREAD per replica serves all of
 *   its tasks. Per-task reply streams would cost a key, and a blocking read, per request. Trimmed to about
 *   STREAM_MAXLEN entries; it expires an hour after the last answer once its gateway is gone.
 * - `<p>:dead:<ns>/<name>`: tasks no worker could finish, with the reason (trimmed like reply streams).
 * - `<p>:cancel`: a pub/sub channel of cancelled task ids (best effort: a worker that misses one still stops
 *   at the task's deadline), and `<p>:cancelled:<task id>` keys (an hour) so a task cancelled while it waits
 *   is skipped when a worker picks it up.
 * - `<p>:handoff`: a pub/sub channel of pool keys whose tasks a stopping worker handed back, so the pool's
 *   other workers take them over at once instead of at their next takeover round.
 * - `<p>:alive:<ns>/<name>`: a sorted set of the pool's running workers (consumer names, ready or not),
 *   scored by when each last said it was alive (seconds, on Redis's clock): a gateway that finds nobody there
 *   answers 503 at once rather than queueing for nobody, and a worker takes over at once the tasks of a
 *   consumer that stopped saying so (it died without a word) instead of waiting for their idle time.
 */
import type { Redis } from 'ioredis'
import type { ObjectRef } from '../../controller/api/index.ts'
import { agentKey } from '../runtime/subtasks.ts'

export const GROUP = 'workers'
export const STREAM_MAXLEN = 10_000
/** A blocking read returns this often, so that close() and readiness changes are noticed. */
export const BLOCK_MS = 1000
/** How long an answer, a cancellation mark or an idle reply stream is kept. */
export const KEEP_SECONDS = 3600

export const keys = {
  pool: (prefix: string, agent: ObjectRef) => `${prefix}:pool:${agentKey(agent)}`,
  reply: (prefix: string, gateway: string) => `${prefix}:reply:${gateway}`,
  dead: (prefix: string, agent: ObjectRef) => `${prefix}:dead:${agentKey(agent)}`,
  cancelled: (prefix: string, task: string) => `${prefix}:cancelled:${task}`,
  cancelChannel: (prefix: string) => `${prefix}:cancel`,
  handoffChannel: (prefix: string) => `${prefix}:handoff`,
  alive: (prefix: string, agent: ObjectRef) => `${prefix}:alive:${agentKey(agent)}`,
}

/** How often a running worker says it is alive. */
export const ALIVE_EVERY_MS = 1000

/**
 * A consumer silent this long is dead: its tasks are taken over as soon as they have also gone unrenewed
 * for ORPHAN_IDLE_MS (a worker that stops cleanly leaves the set at once but renews what it still runs).
 */
export const DEAD_AFTER_SECONDS = 3
/** How long a dead consumer's task must have gone unrenewed (workers renew theirs every second). */
export const ORPHAN_IDLE_MS = 3000

/**
 * A worker says it is alive (ARGV[1], its consumer name), on Redis's clock (to the microsecond) so that hosts'
 * clocks do not matter; members silent for a minute are dropped, and the set with them when its pool is gone.
 */
export const SAY_ALIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
redis.call('EXPIRE', KEYS[1], 120)
return now
`

/** How many of a pool's workers said they were alive in the last ARGV[1] seconds, on Redis's clock. */
export const COUNT_ALIVE = `
local now = tonumber(redis.call('TIME')[1])
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
`

/**
 * The pending entries of the pool stream KEYS[1] (group ARGV[1]) idle at least ARGV[3] ms, at most ARGV[4] of
 * them, whose consumer has not said it is alive (KEYS[2]) in the last ARGV[2] seconds: XPENDING's rows of
 * tasks whose worker died. One script, on Redis's clock.
 */
export const ORPHANED = `
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for _, e in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', tonumber(ARGV[3]), '-', '+', tonumber(ARGV[4]))) do
  local seen = redis.call('ZSCORE', KEYS[2], e[2])
  if not seen or now - tonumber(seen) > tonumber(ARGV[2]) then out[#out + 1] = e end
end
return out
`

/**
 * Drops a pool's task entry (ARGV[2]) that no worker of the group ARGV[1] has taken yet: 1 when it was
 * dropped, 0 when a worker holds it or it is answered already. One script, so that no worker can take the
 * entry between the look and the drop.
 */
export const DROP_WAITING = `
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) > 0 then return 0 end
return redis.call('XDEL', KEYS[1], ARGV[2])
`

/** Fields of a task entry in a pool stream. */
export interface TaskEntry {
  /** The Task, as JSON. */
  readonly task?: string
  /** Epoch ms after which the task is not worth running. */
  readonly deadline?: string
  /** The submitting gateway's reply stream. */
  readonly reply?: string
  /** `1` when the caller reads the run's events (streaming); otherwise only the result is sent. */
  readonly events?: string
}

/** Fields of an entry in a reply stream. */
export interface ReplyEntry {
  readonly task?: string
  readonly type?: 'event' | 'result'
  /** The AgentEvent or TaskResult, as JSON. */
  readonly data?: string
  /** Which run of the task wrote it: a task taken over from a dead worker runs again. */
  readonly attempt?: string
}

export async function createGroup(redis: Redis, pool: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', pool, GROUP, '0', 'MKSTREAM')
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err
  }
}

/** True when Redis lost the group (it restarted without persistence): create it again. */
export function isNoGroup(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOGROUP')
}

export function fieldsOf(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i] as string] = list[i + 1] as string
  return out
}

/** The epoch ms an entry was added at: the first half of its stream id (Redis's clock). */
export function entryTime(id: string): number {
  return Number(id.slice(0, id.indexOf('-')))
}

export type StreamBatch = [key: string, entries: [id: string, fields: string[]][]][] | null

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
