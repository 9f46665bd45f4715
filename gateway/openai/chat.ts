/**
 * `POST /v1/chat/completions` for agent targets: check the request, resolve the target in the catalog (one
 * Map lookup), refuse what cannot run with the reason, submit a task to the agent's pool, and answer with
 * one completion or a stream of chunks. A client that goes away cancels its task, waiting or running.
 */
import type { Context } from 'hono'
import type { ResourceOf } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { QueueFullError, QueueUnavailableError } from '../pool/queue.ts'
import type { TaskQueue } from '../pool/queue.ts'
import type { AgentRuntime } from '../runtime/agent-runtime.ts'
import type { AgentEvent } from '../runtime/events.ts'
import type { PreparedAgent } from '../runtime/prepare.ts'
import { PrepareError } from '../runtime/prepare.ts'
import type { Task, TaskResult } from '../runtime/task.ts'
import { succeeded } from '../runtime/task.ts'
import { ChunkEncoder, completionBody, newIdentity, streamHeaders } from './completion.ts'
import type { CompletionIdentity } from './completion.ts'
import { errorBody, errorResponse, unavailable } from './errors.ts'
import type { ChatRequest } from './request.ts'
import { checkChatRequest } from './request.ts'
import { directCompletion } from './direct.ts'

export interface ChatDeps {
  readonly catalog: Catalog
  readonly runtime: AgentRuntime
  readonly queue: TaskQueue
  readonly metrics: Metrics
  readonly log: Logger
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number
}

/** Variables a handler leaves for the metrics middleware. */
export interface GatewayVariables {
  target: string | undefined
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

export async function chatCompletions(
  c: Context<{ Variables: GatewayVariables }>,
  deps: ChatDeps,
): Promise<Response> {
  const body = await readJson(c.req.raw, deps.maxBodyBytes)
  if (body instanceof Response) return body
  // A direct model call is checked only as far as its upstream needs: route it before the agent checks.
  const named = typeof body === 'object' && body !== null ? (body as { model?: unknown }).model : undefined
  if (typeof named === 'string') {
    const direct = deps.catalog.resolveTarget(named)
    if (direct?.kind === 'Model') {
      return directCompletion(
        c,
        deps,
        body as Record<string, unknown>,
        direct.resource as ResourceOf<'Model'>,
      )
    }
  }
  const checked = checkChatRequest(body)
  if (!checked.ok) return errorResponse(400, checked.message, { param: checked.param })
  const request = checked.value

  const target = deps.catalog.resolveTarget(request.model)
  if (target === undefined) {
    return errorResponse(
      404,
      `The model \`${request.model.slice(0, 200)}\` does not exist. Name an agent (agent/<name>), a team (team/<name>) or a model (model/<name>); GET /v1/models lists them.`,
      { param: 'model', code: 'model_not_found' },
    )
  }
  if (target.kind !== 'Agent') {
    return errorResponse(
      400,
      'Team targets need the team strategies, which this version of ark does not serve yet; call an agent (agent/<name>) or a model (model/<name>).',
      { param: 'model', code: 'unsupported_target' },
    )
  }
  const agent = target.resource as ResourceOf<'Agent'>
  const id = deps.catalog.targetId('Agent', agent.ref)
  c.set('target', id)

  const notAvailable = unavailable(deps.catalog, agent.key, id, { retry: false })
  if (notAvailable !== undefined) return notAvailable
  if (agent.spec.replicas === 0) {
    return errorResponse(503, `${id} is scaled to zero (replicas: 0); scale it up to serve requests`, {
      code: 'ScaledToZero',
      retry: false,
    })
  }
  let prepared: PreparedAgent
  try {
    prepared = deps.runtime.prepare(agent)
  } catch (err) {
    if (!(err instanceof PrepareError)) throw err
    return errorResponse(503, `${id} cannot run: ${err.message}`, { code: 'AgentNotReady', retry: false })
  }
  for (const name of prepared.queryParameters) {
    if (request.metadata[name] === undefined) {
      return errorResponse(
        400,
        `${id} needs the parameter "${name}": send it in the request's metadata, e.g. "metadata": {"${name}": "..."}`,
        { param: `metadata.${name}` },
      )
    }
  }

  const who = newIdentity(id)
  const task: Task = {
    id: who.id,
    agent: agent.ref,
    messages: request.messages,
    parameters: request.metadata,
    stream: request.stream,
    depth: 0,
  }
  const started = performance.now()
  const finished = (result: TaskResult) => {
    deps.metrics.invocation(
      `${agent.ref.namespace}/${agent.ref.name}`,
      succeeded(result) ? '' : result.outcome,
      (performance.now() - started) / 1000,
    )
    if (!succeeded(result) && result.outcome !== 'cancelled') {
      deps.log.warn('agent run failed', {
        agent: id,
        task: task.id,
        outcome: result.outcome,
        error: result.error,
      })
    }
  }
  // The run is cancelled when the client goes away, whether the response is streaming or not.
  const cancel = new AbortController()
  const onClientGone = () => cancel.abort(new DOMException('the client disconnected', 'AbortError'))
  if (c.req.raw.signal.aborted) onClientGone()
  else c.req.raw.signal.addEventListener('abort', onClientGone, { once: true })

  return request.stream
    ? stream(deps, task, request, who, cancel, finished)
    : once(deps, task, who, cancel, finished, () =>
        c.req.raw.signal.removeEventListener('abort', onClientGone),
      )
}

async function once(
  deps: ChatDeps,
  task: Task,
  who: CompletionIdentity,
  cancel: AbortController,
  finished: (r: TaskResult) => void,
  cleanup: () => void,
): Promise<Response> {
  try {
    const admission = await deps.queue.submit(task, { signal: cancel.signal })
    const result = await admission.result
    finished(result)
    if (succeeded(result)) {
      return Response.json(completionBody(who, result.content ?? '', 'stop', result.usage), {
        headers: { 'x-request-id': who.id },
      })
    }
    return failure(result)
  } catch (err) {
    return refused(deps, err)
  } finally {
    cleanup()
  }
}

async function stream(
  deps: ChatDeps,
  task: Task,
  request: ChatRequest,
  who: CompletionIdentity,
  cancel: AbortController,
  finished: (r: TaskResult) => void,
): Promise<Response> {
  const encoder = new TextEncoder()
  const chunks = new ChunkEncoder(who, request.includeUsage)
  let out: ReadableStreamDefaultController<Uint8Array> | undefined
  let open = true
  const send = (text: string) => {
    if (!open || out === undefined) return
    try {
      out.enqueue(encoder.encode(text))
    } catch {
      open = false
    }
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      out = controller
      send(chunks.role())
    },
    cancel() {
      open = false
      cancel.abort(new DOMException('the client disconnected', 'AbortError'))
    },
  })
  const onEvent = (e: AgentEvent) => {
    if (e.type === 'llm.delta') send(chunks.content(e.text))
  }
  let admission
  try {
    admission = await deps.queue.submit(task, { signal: cancel.signal, onEvent })
  } catch (err) {
    open = false
    void body.cancel()
    return refused(deps, err)
  }
  const end = () => {
    if (open) {
      open = false
      out?.close()
    }
  }
  admission.result
    .then((result) => {
      finished(result)
      if (succeeded(result)) {
        send(chunks.finish('stop'))
        if (request.includeUsage) send(chunks.usage(result.usage))
        send(chunks.done())
      } else {
        const { status, message, code } = failureOf(result)
        send(chunks.error(errorBody(status, message, { code })))
      }
    })
    .catch((err: unknown) => {
      deps.log.error('stream failed', {
        task: task.id,
        error: err instanceof Error ? err.message : String(err),
      })
      send(
        chunks.error(
          errorBody(500, 'the gateway failed while streaming; see its log', { code: 'internal_error' }),
        ),
      )
    })
    .finally(end)
  return new Response(body, {
    headers: streamHeaders(who.id),
  })
}

function failureOf(result: TaskResult): { status: number; message: string; code: string } {
  const message = result.error ?? `the run ended with ${result.outcome}`
  switch (result.outcome) {
    case 'timeout':
      return { status: 504, message, code: 'timeout' }
    case 'max_iterations':
      return { status: 422, message, code: 'max_iterations' }
    case 'token_limit':
      return { status: 422, message, code: 'token_limit_exceeded' }
    case 'invalid_output':
      return { status: 502, message, code: 'invalid_output' }
    case 'cancelled':
      // Nobody reads it; 499 is what proxies log for a client that closed the request.
      return { status: 499, message, code: 'cancelled' }
    default:
      return { status: 502, message, code: 'agent_error' }
  }
}

function failure(result: TaskResult): Response {
  const { status, message, code } = failureOf(result)
  return errorResponse(status, message, { code, retry: false })
}

function refused(deps: ChatDeps, err: unknown): Response {
  if (err instanceof QueueFullError) {
    deps.metrics.rejected(`${err.pool.namespace}/${err.pool.name}`)
    return errorResponse(429, err.message, {
      code: 'queue_full',
      headers: { 'retry-after': String(err.retryAfterSeconds) },
    })
  }
  if (err instanceof QueueUnavailableError) {
    return errorResponse(503, err.message, {
      code: 'queue_unavailable',
      headers: { 'retry-after': String(err.retryAfterSeconds) },
    })
  }
  throw err
}

/** The body as JSON, or the error response that says why it is not. */
async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const type = req.headers.get('content-type')
  if (type !== null && !/^application\/([\w.+-]*\+)?json\b/i.test(type.trim())) {
    return errorResponse(
      415,
      `Content-Type must be application/json, got ${JSON.stringify(type.slice(0, 100))} (curl: add -H 'Content-Type: application/json')`,
      { code: 'unsupported_media_type' },
    )
  }
  const bytes = await readBody(req, maxBytes)
  if (bytes === undefined) {
    return errorResponse(
      413,
      `the request body is larger than ${String(maxBytes)} bytes (ark dev --max-body-bytes, ARK_MAX_BODY_BYTES)`,
      { code: 'request_too_large' },
    )
  }
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return errorResponse(400, 'the request body is not valid UTF-8', { code: 'invalid_encoding' })
  }
  if (text.trim() === '')
    return errorResponse(400, 'the request body is empty; send a JSON object', { code: 'invalid_json' })
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err)
    return errorResponse(400, `the request body is not valid JSON: ${detail.slice(0, 200)}`, {
      code: 'invalid_json',
    })
  }
}

/**
 * Reads at most `maxBytes`; undefined when the body is larger. A too-large body is still read (and dropped)
 * up to a bound, because a server that answers while the client is still sending resets the connection and
 * the client never sees the 413 that says what to change.
 */
async function readBody(req: Request, maxBytes: number): Promise<Uint8Array | undefined> {
  const drainLimit = maxBytes + 16 * 1024 * 1024
  const length = req.headers.get('content-length')
  const declared = Number(length ?? 0)
  if (declared > drainLimit) return undefined
  // A declared length the HTTP parser holds the body to: read it whole. The runtime adapters read such a
  // body straight from the socket, while going through the stream costs a Request and a WHATWG stream
  // per call (on Node, as much CPU as the rest of a proxied request).
  if (length !== null && declared <= maxBytes) return new Uint8Array(await req.arrayBuffer())
  if (req.body === null) return new Uint8Array(0)
  const reader: ReadableStreamDefaultReader<Uint8Array> = req.body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > drainLimit) {
      await reader.cancel()
      return undefined
    }
    if (size <= maxBytes) parts.push(value)
  }
  if (size > maxBytes) return undefined
  if (parts.length === 1) return parts[0]
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}
