/**
 * A2A push notifications: a caller registers a URL for a task (CreateTaskPushNotificationConfig, or with the
 * message), and each of the task's updates is POSTed there. The URL is the caller's choice, so delivery goes
 * through the same network policy as sandboxed webhook tools (sandbox/net-policy.ts): only the hosts the
 * operator granted (`--a2a-push-hosts`), never the cloud metadata service or link-local addresses, loopback
 * and private ranges only when named, every redirect checked again, the connection pinned to the checked
 * address. With no grant, push notifications are off (the card says so and the SDK refuses the methods).
 *
 * A URL the policy refuses is refused when it is registered (server.ts checks it), not found out at delivery.
 * Delivery is best effort, in order per task; a failure is logged with the host only (a URL's path and query
 * may carry the caller's token).
 */
import type { StreamResponse, Task, TaskPushNotificationConfig } from '@a2a-js/sdk'
import { TaskPushNotificationConfig as ConfigCodec } from '@a2a-js/sdk'
import type {
  PushNotificationSender,
  PushNotificationStore,
  ServerCallContext,
  StoredPushNotificationConfig,
} from '@a2a-js/sdk/server'
import { V1PushNotificationSerializer } from '@a2a-js/sdk/server'
import { V03PushNotificationSerializer } from '@a2a-js/sdk/compat/v0_3/server'
import type { Redis } from 'ioredis'
import { NetDenied } from '../../sandbox/index.ts'
import type { NetPolicy } from '../../sandbox/index.ts'
import type { Logger } from '../log.ts'
import { DEFAULT_TASK_TTL_MS, scopeOf } from './task-store.ts'

/** Longest one delivery may take. */
const DELIVERY_TIMEOUT_MS = 5_000
/** Most of a receiver's answer read (it is not used). */
const MAX_ANSWER_BYTES = 64 * 1024

export class PolicyPushSender implements PushNotificationSender {
  readonly #store: PushNotificationStore
  readonly #policy: NetPolicy
  readonly #log: Logger
  /** The delivery under way per task: the next one waits for it, so that a receiver sees them in order. */
  readonly #chains = new Map<string, Promise<void>>()
  readonly #v1 = new V1PushNotificationSerializer()
  readonly #v03 = new V03PushNotificationSerializer()

  constructor(store: PushNotificationStore, policy: NetPolicy, log: Logger) {
    this.#store = store
    this.#policy = policy
    this.#log = log
  }

  /** Never rejects: its callers do not wait for it (a failure is logged, as a failed delivery is). */
  async send(update: StreamResponse, context: ServerCallContext, task?: Task): Promise<void> {
    const taskId = taskIdOf(update)
    if (taskId === '') return
    let configs: StoredPushNotificationConfig[]
    try {
      configs = await loadConfigs(this.#store, taskId, context)
    } catch (err) {
      this.#log.warn('A2A push configs could not be read', {
        task: taskId,
        error: err instanceof Error ? err.message : String(err),
      })
      return
    }
    if (configs.length === 0) return
    const before = this.#chains.get(taskId) ?? Promise.resolve()
    const next = before.then(() =>
      Promise.all(configs.map((c) => this.#deliver(update, c, taskId, task))).then(() => undefined),
    )
    this.#chains.set(taskId, next)
    try {
      await next
    } finally {
      if (this.#chains.get(taskId) === next) this.#chains.delete(taskId)
    }
  }

  async #deliver(
    update: StreamResponse,
    stored: StoredPushNotificationConfig,
    taskId: string,
    task: Task | undefined,
  ): Promise<void> {
    const { config, wireVersion } = stored
    const serializer = wireVersion.startsWith('0.3') ? this.#v03 : this.#v1
    const { body, contentType } = serializer.serialize(update, task)
    const headers: Record<string, string> = { 'content-type': contentType }
    const auth = config.authentication
    if (auth?.scheme !== undefined && auth.scheme !== '' && auth.credentials !== '')
      headers.authorization = `${auth.scheme} ${auth.credentials}`
    else if (config.token !== '') headers['x-a2a-notification-token'] = config.token
    const host = hostOf(config.url)
    try {
      const answer = await this.#policy.fetch(
        { url: config.url, method: 'POST', headers, body: new TextEncoder().encode(body) },
        { timeoutMs: DELIVERY_TIMEOUT_MS, maxResponseBytes: MAX_ANSWER_BYTES },
      )
      if (answer.status < 200 || answer.status > 299)
        this.#log.warn('A2A push notification refused', { task: taskId, host, status: answer.status })
    } catch (err) {
      this.#log.warn('A2A push notification not delivered', {
        task: taskId,
        host,
        error: err instanceof Error ? err.message : String(err),
      })
    }
  }
}

/**
 * Why `url` may not receive push notifications, or undefined when it may (checked at registration). The
 * reason names the host and the rule, never what its name resolves to: a caller must not learn the
 * addresses of internal names by trying them.
 */
export async function pushUrlRefusal(policy: NetPolicy, url: string): Promise<string | undefined> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'the push notification url is not an absolute URL'
  }
  try {
    await policy.check(parsed)
    return undefined
  } catch (err) {
    const never = err instanceof NetDenied && / may never reach it/.test(err.message)
    return never
      ? `push notifications may not go to ${parsed.host}: it is (or resolves to) an address nothing may reach (link-local, cloud metadata, unspecified)`
      : `push notifications may not go to ${parsed.host}: only the hosts this gateway grants (--a2a-push-hosts), over http or https, without credentials in the URL, and private or loopback addresses only when named`
  }
}

/**
 * Push configs shared by gateway replicas: the replica that runs a task delivers to configs another replica
 * registered. One hash per task (`<p>:push:<agent key>:<task id>`, field = config id), expiring with tasks.
 */
export class RedisPushStore implements PushNotificationStore {
  readonly #redis: Redis
  readonly #prefix: string
  readonly #ttlMs: number

  constructor(redis: Redis, prefix: string, ttlMs = DEFAULT_TASK_TTL_MS) {
    this.#redis = redis
    this.#prefix = prefix
    this.#ttlMs = ttlMs
  }

  async save(taskId: string, context: ServerCallContext, config: TaskPushNotificationConfig): Promise<void> {
    const key = this.#key(context, taskId)
    const id = config.id === '' ? crypto.randomUUID() : config.id
    config.id = id
    const stored = { config: ConfigCodec.toJSON(config), wireVersion: context.requestedVersion || '0.3' }
    await this.#redis.multi().hset(key, id, JSON.stringify(stored)).pexpire(key, this.#ttlMs).exec()
  }

  async load(taskId: string, context: ServerCallContext): Promise<TaskPushNotificationConfig[]> {
    return (await this.loadWithMetadata(taskId, context)).map((s) => s.config)
  }

  async loadWithMetadata(
    taskId: string,
    context: ServerCallContext,
  ): Promise<StoredPushNotificationConfig[]> {
    const all = await this.#redis.hvals(this.#key(context, taskId))
    return all.map((text) => {
      const stored = JSON.parse(text) as { config: unknown; wireVersion: string }
      return { config: ConfigCodec.fromJSON(stored.config), wireVersion: stored.wireVersion }
    })
  }

  async delete(taskId: string, context: ServerCallContext, configId?: string): Promise<void> {
    await this.#redis.hdel(this.#key(context, taskId), configId ?? taskId)
  }

  #key(context: ServerCallContext, taskId: string): string {
    return `${this.#prefix}:push:${scopeOf(context)}:${taskId}`
  }
}

async function loadConfigs(
  store: PushNotificationStore,
  taskId: string,
  context: ServerCallContext,
): Promise<StoredPushNotificationConfig[]> {
  if (store.loadWithMetadata !== undefined) return store.loadWithMetadata(taskId, context)
  const wireVersion = context.requestedVersion || '0.3'
  return (await store.load(taskId, context)).map((config) => ({ config, wireVersion }))
}

function taskIdOf(update: StreamResponse): string {
  const payload = update.payload
  switch (payload?.$case) {
    case 'task':
      return payload.value.id
    case 'statusUpdate':
    case 'artifactUpdate':
    case 'message':
      return payload.value.taskId
    default:
      return ''
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return '(not a URL)'
  }
}
