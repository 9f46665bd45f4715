/**
 * ark's agents and teams as A2A servers, for other agents on any A2A SDK. Each agent has a base URL,
 * `/a2a/agent/<name>` (namespace default) or `/a2a/agent/<ns>/<name>`, and each team `/a2a/team/<name>` or
 * `/a2a/team/<ns>/<name>`, a team's run being one task like an agent's:
 *
 * - `<base>/.well-known/agent-card.json`: its card (card.ts), v1.0 for `A2A-Version: 1.0`, else v0.3;
 *   `<base>/.well-known/agent.json` always v0.3, where 0.3 clients (and McKinsey ARK) look.
 * - `POST <base>`: JSON-RPC through the SDK's transport handlers on Web-standard Request/Response, so it
 *   runs on Node and Deno alike: v1.0 (`SendMessage`, `SendStreamingMessage`, `GetTask`, `ListTasks`,
 *   `CancelTask`, `SubscribeToTask`, ...) with `A2A-Version: 1.0`, v0.3 (`message/send`, `tasks/get`, ...)
 *   without the header. Streams are server-sent events, pulled by the client: a slow reader slows only its own
 *   stream (the run's events wait for it in the SDK's queue), and one that leaves does not stop its task.
 * - `GET /a2a`: the cards of every Available agent and team.
 *
 * Before the SDK sees a send, the route checks what only ark knows, so that a refusal is a JSON-RPC error
 * and not a failed task: that the agent can run now (admission's check: availability, replicas, required
 * parameters from the request's metadata), and that the message does not name a task still running (ark's
 * agents take no input mid-run). Everything else (the protocol's shapes, versions, errors, task states,
 * history) is the SDK's DefaultRequestHandler over ark's executor (executor.ts) and task store
 * (task-store.ts), but for a plain blocking SendMessage, which handler.ts runs at less cost.
 */
import type { AgentCard } from '@a2a-js/sdk'
import { TaskState } from '@a2a-js/sdk'
import {
  DefaultRequestHandler,
  JsonRpcTransportHandler,
  ServerCallContext,
  UnauthenticatedUser,
  validateVersion,
} from '@a2a-js/sdk/server'
import type { ExecutionEventBusManager, PushNotificationStore, TaskStore, User } from '@a2a-js/sdk/server'
import { LegacyJsonRpcTransportHandler } from '@a2a-js/sdk/compat/v0_3/server'
import type { ObjectRef } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { Admission, Refusal } from '../admission.ts'
import { FORBIDDEN, notAllowedMessage } from '../auth/scope.ts'
import type { Principal } from '../auth/scope.ts'
import type { NetPolicy } from '../../sandbox/index.ts'
import type { Logger } from '../log.ts'
import { PolicyPushSender, pushUrlRefusal } from './push.ts'
import { LocalBusManager } from './bus.ts'
import { agentCard, cardJson, legacyCard } from './card.ts'
import type { A2ATarget } from './card.ts'
import { ArkAgentExecutor, CALL_STATE } from './executor.ts'
import { ArkRequestHandler } from './handler.ts'
import type { CallState } from './executor.ts'
import { AGENT_SCOPE, TERMINAL_STATES } from './task-store.ts'

export interface A2ADeps {
  readonly catalog: Catalog
  readonly admission: Admission
  readonly store: TaskStore
  /** Event buses of running tasks: this process's (default), or shared through Redis (redis.ts). */
  readonly buses?: ExecutionEventBusManager
  /** Push notifications (push.ts): where configs are kept, and the policy deliveries go through. Absent: off. */
  readonly push?: { readonly store: PushNotificationStore; readonly policy: NetPolicy }
  readonly log: Logger
  /** Calls need an API key (http/authenticate.ts): cards declare the bearer scheme. */
  readonly authenticated?: boolean
}

const SEND = new Set(['SendMessage', 'SendStreamingMessage', 'message/send', 'message/stream'])
const STREAMING = new Set(['SendStreamingMessage', 'message/stream'])
/** Implementation-defined server error (JSON-RPC reserves -32000 to -32099; A2A uses -32001 to -32009). */
const NOT_SERVED = -32000
const INVALID_REQUEST = -32600
const INVALID_PARAMS = -32602
const UNSUPPORTED_OPERATION = -32004

/** Origins whose card and transports are kept per agent. */
const MAX_ORIGINS = 8

interface Served {
  readonly card: AgentCard
  readonly transports: {
    readonly v1: JsonRpcTransportHandler
    readonly legacy: LegacyJsonRpcTransportHandler
  }
}

type RpcResponse = { readonly jsonrpc: string; readonly id: unknown; readonly error?: { code: number } }

export class A2AEndpoints {
  readonly #deps: A2ADeps
  readonly #executor: ArkAgentExecutor
  readonly #buses: ExecutionEventBusManager
  readonly #pushSender: PolicyPushSender | undefined
  /** What #served built, by target (a changed one is a new object: its old entry goes with it) and origin. */
  readonly #cache = new WeakMap<A2ATarget, Map<string, Served>>()

  constructor(deps: A2ADeps) {
    this.#deps = deps
    this.#buses = deps.buses ?? new LocalBusManager()
    this.#pushSender =
      deps.push === undefined ? undefined : new PolicyPushSender(deps.push.store, deps.push.policy, deps.log)
    this.#executor = new ArkAgentExecutor(deps.admission)
  }

  /** GET `<base>/.well-known/agent-card.json` (legacy: `agent.json`) of an agent or a team. */
  card(request: Request, kind: A2ATarget['kind'], ref: ObjectRef, legacy: boolean): Response {
    const target = this.#target(kind, ref)
    if (target === undefined) return Response.json({ error: notServed(kind, ref) }, { status: 404 })
    const card = this.#card(request, target)
    const v1 = !legacy && isV1(request.headers.get('a2a-version'))
    return Response.json(v1 ? cardJson(card) : legacyCard(card), {
      headers: { 'cache-control': 'public, max-age=60', vary: 'A2A-Version' },
    })
  }

  /** GET /a2a: the cards of the agents and teams that can take a task now (and `who` may call). */
  list(request: Request, who?: Principal): Response {
    const { catalog } = this.#deps
    const v1 = isV1(request.headers.get('a2a-version'))
    const available = (r: A2ATarget) => catalog.available(r.key)?.status === 'True'
    const cards = (targets: readonly A2ATarget[]) =>
      targets
        .filter((t) => available(t) && (who === undefined || who.allowsTarget(t.kind, t.ref)))
        .map((t) => {
          const card = this.#card(request, t)
          return v1 ? cardJson(card) : legacyCard(card)
        })
    return Response.json({ agents: cards(catalog.list('Agent')), teams: cards(catalog.list('Team')) })
  }

  /**
   * POST `<base>`: one JSON-RPC request (`body`, parsed) to the agent or team at `ref`, from `who` when the
   * gateway asks for API keys. A key sees only the tasks it made.
   */
  async rpc(
    request: Request,
    kind: A2ATarget['kind'],
    ref: ObjectRef,
    body: unknown,
    who?: Principal,
  ): Promise<Response> {
    const version = request.headers.get('a2a-version')?.trim() ?? ''
    const legacy = !isV1(version)
    const mapError = (err: unknown): unknown =>
      legacy
        ? LegacyJsonRpcTransportHandler.mapToLegacyJSONRPCError(err)
        : JsonRpcTransportHandler.mapToJSONRPCError(err)
    const id = idOf(body)
    // Whether or not it exists: a scope does not tell what lies outside it.
    if (who !== undefined && !who.allowsTarget(kind, ref))
      return rpcError(
        403,
        id,
        FORBIDDEN,
        notAllowedMessage(who, `${kind === 'Team' ? 'team' : 'agent'}/${ref.namespace}/${ref.name}`),
      )
    const agent = this.#target(kind, ref)
    if (agent === undefined) return rpcError(404, id, NOT_SERVED, notServed(kind, ref))
    if (!isObject(body)) {
      return rpcError(
        200,
        null,
        INVALID_REQUEST,
        'an A2A request is one JSON-RPC request object (batches are not part of A2A)',
      )
    }
    const { card, transports } = this.#served(request, agent)
    // Tasks are kept per agent and, with API keys, per key: another key's GetTask finds nothing.
    const state = new Map<string, unknown>([
      [AGENT_SCOPE, who === undefined ? agent.key : `${agent.key}@${who.id}`],
    ])
    const context = new ServerCallContext({
      requestedVersion: version === '' ? '0.3' : version,
      user: who === undefined ? new UnauthenticatedUser() : new KeyUser(who.id),
      state,
    })
    try {
      validateVersion(context.requestedVersion, card, 'JSONRPC')
    } catch (err) {
      return Response.json({ jsonrpc: '2.0', id, error: mapError(err) })
    }

    const method = methodOf(body)
    const push = this.#deps.push
    if (push !== undefined) {
      // A URL the policy refuses is refused now, not found out at the first delivery.
      for (const url of pushUrlsOf(body)) {
        const refusal = await pushUrlRefusal(push.policy, url)
        if (refusal !== undefined) return rpcError(200, id, INVALID_PARAMS, refusal)
      }
    }
    if (method !== undefined && SEND.has(method)) {
      const refused = await this.#admit(agent, body, context, state, STREAMING.has(method), who)
      if (refused !== undefined)
        return rpcError(refused.status, id, refused.code, refused.message, refused.headers)
    }

    const transport = legacy ? transports.legacy : transports.v1
    let out: RpcResponse | AsyncGenerator<RpcResponse, void, undefined>
    try {
      out = (await transport.handle(body, context)) as typeof out
    } catch (err) {
      this.#deps.log.error('A2A request failed', { agent: agent.key, method, error: messageOf(err) })
      return Response.json({ jsonrpc: '2.0', id, error: mapError(err) }, { status: 500 })
    }
    if (!(Symbol.asyncIterator in out)) {
      return Response.json(out, { status: out.error?.code === -32603 ? 500 : 200 })
    }
    // A streamed send is also what stores its task as it runs (the SDK saves as the stream is read): when its
    // client goes, the rest is read here. A resubscription only follows: it just stops.
    return this.#stream(out, id, mapError, agent.key, method !== undefined && STREAMING.has(method))
  }

  /** Tasks this replica runs now. */
  get running(): number {
    return this.#executor.running
  }

  /**
   * The card of an agent as served at the request's origin, and the JSON-RPC transports over a request handler
   * with that card: built once per version of the agent (the catalog replaces a resource that changes) and
   * origin, not per request. At most a few origins per agent are kept (Host names are the caller's to choose).
   */
  #served(request: Request, agent: A2ATarget): Served {
    // request.url is absolute (scheme://host[:port]/path): its origin ends at the path's slash.
    const origin = request.url.slice(0, request.url.indexOf('/', request.url.indexOf('//') + 2))
    let byOrigin = this.#cache.get(agent)
    if (byOrigin === undefined) {
      byOrigin = new Map()
      this.#cache.set(agent, byOrigin)
    }
    let served = byOrigin.get(origin)
    if (served !== undefined) return served
    const card = this.#card(request, agent)
    const push = this.#deps.push
    const handler = new ArkRequestHandler(
      new DefaultRequestHandler(
        card,
        this.#deps.store,
        this.#executor,
        this.#buses,
        push?.store,
        this.#pushSender,
      ),
      {
        store: this.#deps.store,
        buses: this.#buses,
        executor: this.#executor,
        ...(this.#pushSender === undefined ? {} : { push: this.#pushSender }),
      },
    )
    served = {
      card,
      transports: {
        v1: new JsonRpcTransportHandler(handler),
        legacy: new LegacyJsonRpcTransportHandler(handler),
      },
    }
    if (byOrigin.size >= MAX_ORIGINS) byOrigin.delete(byOrigin.keys().next().value ?? '')
    byOrigin.set(origin, served)
    return served
  }

  #target(kind: A2ATarget['kind'], ref: ObjectRef): A2ATarget | undefined {
    return kind === 'Team' ? this.#deps.catalog.get('Team', ref) : this.#deps.catalog.get('Agent', ref)
  }

  #card(request: Request, agent: A2ATarget): AgentCard {
    const { namespace, name } = agent.ref
    const base = agent.kind === 'Team' ? '/a2a/team' : '/a2a/agent'
    const path =
      namespace === 'default'
        ? `${base}/${encodeURIComponent(name)}`
        : `${base}/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`
    return agentCard(this.#deps.catalog, agent, new URL(path, request.url).href, {
      pushNotifications: this.#deps.push !== undefined,
      authenticated: this.#deps.authenticated === true,
    })
  }

  /**
   * What ark checks before a send reaches the SDK: the refusal, or undefined once the call's state holds what
   * the executor needs.
   */
  async #admit(
    agent: A2ATarget,
    body: unknown,
    context: ServerCallContext,
    state: Map<string, unknown>,
    streaming: boolean,
    who: Principal | undefined,
  ): Promise<
    { status: number; code: number; message: string; headers?: Record<string, string> } | undefined
  > {
    const params = (body as { params?: unknown }).params
    const metadata = isObject(params) ? params.metadata : undefined
    const parameters: Record<string, string> = Object.create(null) as Record<string, string>
    if (metadata !== undefined && metadata !== null) {
      if (!isObject(metadata)) {
        return { status: 400, code: INVALID_PARAMS, message: 'params.metadata must be an object' }
      }
      for (const [k, v] of Object.entries(metadata)) {
        // Metadata also carries extensions' values: only strings can be prompt parameters.
        if (typeof v === 'string') parameters[k] = v
      }
    }
    const { admission, catalog, store } = this.#deps
    const refused = (refusal: Refusal) => ({
      status: refusal.status,
      code: refusal.code === 'missing_parameter' ? INVALID_PARAMS : NOT_SERVED,
      message:
        refusal.code === 'missing_parameter'
          ? `${refusal.target ?? agent.ref.name} needs the parameter ${JSON.stringify(refusal.param?.slice('metadata.'.length))}: send it in params.metadata`
          : `${refusal.code}: ${refusal.message}`,
      headers: {
        ...refusal.headers,
        ...(refusal.retryAfterSeconds === undefined
          ? {}
          : { 'retry-after': String(refusal.retryAfterSeconds) }),
      },
    })
    const found = admission.check(catalog.targetId(agent.kind, agent.ref), parameters, who)
    if ('refusal' in found) return refused(found.refusal)
    const message = isObject(params) ? params.message : undefined
    const taskId = isObject(message) ? message.taskId : undefined
    if (typeof taskId === 'string' && taskId !== '') {
      const task = await store.load(taskId, context)
      if (
        task !== undefined &&
        !TERMINAL_STATES.has(task.status?.state ?? TaskState.TASK_STATE_UNSPECIFIED)
      ) {
        return {
          status: 200,
          code: UNSUPPORTED_OPERATION,
          message: `task ${taskId.slice(0, 100)} is still running, and ark's agents take no input while they run: wait for it to end (GetTask, SubscribeToTask), then send a new message with its contextId`,
        }
      }
    }
    // The gateway's bound, then the caller's quotas: a run they refuse is a JSON-RPC error (503 or 429, with
    // Retry-After), not a rejected task. Overload first, so that a refused run takes no request token.
    const busy = admission.overloaded(found)
    if (busy !== undefined) return refused(busy)
    const checked = await admission.reserve(found)
    if ('refusal' in checked) return refused(checked.refusal)
    const contextId = isObject(message) ? message.contextId : undefined
    const call: CallState = {
      checked,
      parameters,
      streaming,
      ...(typeof contextId === 'string' && contextId !== '' ? { conversation: contextId } : {}),
    }
    state.set(CALL_STATE, call)
    return undefined
  }

  /** A streamed answer as server-sent events, pulled by the client; a pre-stream error is plain JSON-RPC. */
  async #stream(
    events: AsyncGenerator<RpcResponse, void, undefined>,
    id: unknown,
    mapError: (err: unknown) => unknown,
    agent: string,
    drainWhenLeft: boolean,
  ): Promise<Response> {
    let first: IteratorResult<RpcResponse, void>
    try {
      first = await events.next()
    } catch (err) {
      return Response.json({ jsonrpc: '2.0', id, error: mapError(err) })
    }
    const encoder = new TextEncoder()
    const event = (data: unknown, name?: string) =>
      encoder.encode(`${name === undefined ? '' : `event: ${name}\n`}data: ${JSON.stringify(data)}\n\n`)
    const log = this.#deps.log
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        if (first.done === true) controller.close()
        else controller.enqueue(event(first.value))
      },
      async pull(controller) {
        try {
          const next = await events.next()
          if (next.done === true) controller.close()
          else controller.enqueue(event(next.value))
        } catch (err) {
          log.error('A2A stream failed', { agent, error: messageOf(err) })
          controller.enqueue(event({ jsonrpc: '2.0', id, error: mapError(err) }, 'error'))
          controller.close()
        }
      },
      cancel() {
        // The client went away. The task goes on (A2A tasks outlive connections): a streamed send's events are
        // read to the end, so that its task is stored as it goes; a resubscription stops following. Neither is
        // awaited: a generator waiting for the next event ends only when one comes.
        if (drainWhenLeft) {
          void (async () => {
            for (;;) if ((await events.next()).done === true) return
          })().catch((err: unknown) => {
            log.warn('A2A stream ended with an error after its client left', { agent, error: messageOf(err) })
          })
        } else void events.return(undefined).catch(() => undefined)
      },
    })
    return new Response(body, {
      headers: {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      },
    })
  }
}

/** The SDK's view of a caller with an API key: authenticated, named by the key's id. */
class KeyUser implements User {
  readonly #id: string
  constructor(id: string) {
    this.#id = id
  }
  get isAuthenticated(): boolean {
    return true
  }
  get userName(): string {
    return this.#id
  }
}

function notServed(kind: A2ATarget['kind'], ref: ObjectRef): string {
  return `there is no ${kind === 'Team' ? 'team' : 'agent'} ${ref.namespace}/${ref.name}; GET /a2a lists what is served here`
}

function isV1(version: string | null): boolean {
  return version !== null && /^1\.0(\.\d+)?$/.test(version.trim())
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function methodOf(body: unknown): string | undefined {
  const method = isObject(body) ? body.method : undefined
  return typeof method === 'string' ? method : undefined
}

/** The request's id, echoed in errors ark answers itself; null when it has none a response may carry. */
function idOf(body: unknown): string | number | null {
  const id = isObject(body) ? body.id : undefined
  return typeof id === 'string' || typeof id === 'number' ? id : null
}

/** The push notification URLs a request registers, in either version's shape. */
function pushUrlsOf(body: Record<string, unknown>): string[] {
  const params = body.params
  if (!isObject(params)) return []
  const configuration = isObject(params.configuration) ? params.configuration : {}
  // Both spellings the SDK's parsers accept (camelCase and proto's snake_case).
  const url = (value: unknown): unknown => (isObject(value) ? value.url : undefined)
  const candidates = [
    params.url,
    url(params.pushNotificationConfig),
    url(params.push_notification_config),
    url(configuration.taskPushNotificationConfig),
    url(configuration.task_push_notification_config),
    url(configuration.pushNotificationConfig),
    url(configuration.push_notification_config),
  ]
  return candidates.filter((u): u is string => typeof u === 'string')
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** A JSON-RPC error answered by ark itself, before the SDK. */
export function rpcError(
  status: number,
  id: string | number | null,
  code: number,
  message: string,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return Response.json({ jsonrpc: '2.0', id, error: { code, message } }, { status, headers })
}
