/**
 * `POST /v1/chat/completions`: the OpenAI face of admission. The body arrives parsed (gateway/http/body.ts);
 * this checks it as OpenAI does, hands `model/<name>` to the direct model route, and otherwise renders what
 * admission (gateway/admission.ts) decides: a refusal as OpenAI's error body, a run as one completion or a
 * stream of chunks. A client that goes away, or stops reading its stream, cancels its run.
 */
import type { Context } from 'hono'
import type { Catalog } from '../../controller/store/index.ts'
import type { Admission, Checked, Refusal, Run } from '../admission.ts'
import type { Principal } from '../auth/scope.ts'
import { failureOf } from '../admission.ts'
import type { BodyVariables } from '../http/body.ts'
import type { StreamLimits } from '../http/response-stream.ts'
import { ResponseStream } from '../http/response-stream.ts'
import type { Logger } from '../log.ts'
import type { ConnectionBindings } from '../serve.ts'
import type { Metrics } from '../metrics.ts'
import type { AgentRuntime } from '../runtime/agent-runtime.ts'
import type { AgentEvent } from '../runtime/events.ts'
import { succeeded } from '../runtime/task.ts'
import { ChunkEncoder, completionBody, newIdentity, streamHeaders } from './completion.ts'
import type { CompletionIdentity } from './completion.ts'
import { cutStreamEvent, errorBody, errorResponse, renderRefusal, streamFailure } from './errors.ts'
import { checkChatRequest } from './request.ts'
import type { ChatRequest } from './request.ts'
import { followClient } from '../http/client-gone.ts'
import { directModel, directModelOf, plainResponse } from './direct.ts'

export interface ChatDeps {
  readonly catalog: Catalog
  readonly runtime: AgentRuntime
  readonly admission: Admission
  readonly metrics: Metrics
  readonly log: Logger
  readonly stream: StreamLimits
}

/**
 * Variables handlers leave for the middleware around them. Read with `c.get(name)`: Hono's `c.var` builds a
 * new object of all of them on every read (Object.fromEntries), a cost on every request.
 */
export interface GatewayVariables extends BodyVariables {
  /** The target a handler resolved (`agent/x`), for the metrics label. */
  target: string | undefined
  /** Who the request comes from (http/authenticate.ts): the API key's id and scope, when keys are required. */
  principal: Principal | undefined
}

/** The gateway app's Hono environment: the adapter's connection bindings, and the variables above. */
export interface GatewayEnv {
  Bindings: ConnectionBindings | undefined
  Variables: GatewayVariables
}

export async function chatCompletions(c: Context<GatewayEnv>, deps: ChatDeps): Promise<Response> {
  const body = c.get('body')
  // A direct model call is checked only as far as its upstream needs: route it before the agent checks.
  const model = directModelOf(deps.catalog, body)
  if (model !== undefined) {
    const { target, answer } = await directModel(
      deps,
      body as Record<string, unknown>,
      model,
      c.get('principal'),
      { signal: c.req.raw.signal, drop: c.env?.drop },
    )
    if (target !== undefined) c.set('target', target)
    return 'plain' in answer ? plainResponse(answer.plain) : answer.response
  }
  const checked = checkChat(c, deps.admission)
  if (checked instanceof Response) return checked
  const { request, admissible } = checked
  // The model the client sees is the target as clients name it (agent/x), whatever spelling it sent.
  const who = newIdentity(admissible.target)

  // The run is cancelled when the client goes away, whether the response is streaming or not, and when a
  // streaming client stops reading.
  const { cancel, cleanup } = followClient(c.req.raw)
  const conversation = request.metadata.conversation_id
  const task = {
    id: who.id,
    via: 'openai' as const,
    messages: request.messages,
    parameters: request.metadata,
    stream: request.stream,
    signal: cancel.signal,
    abort: (reason: unknown) => cancel.abort(reason),
    // OpenAI's chat API has no conversation of its own: `metadata.conversation_id` names ark's.
    ...(conversation === undefined ? {} : { conversation: { id: conversation } }),
  }

  if (!request.stream) {
    const admitted = await deps.admission.submit(admissible, task)
    if ('run' in admitted) return once(admitted.run, who, cleanup)
    cleanup()
    return renderRefusal(inOpenAITerms(admitted.refusal))
  }

  const chunks = new ChunkEncoder(who, request.includeUsage)
  const out = new ResponseStream(
    deps.stream,
    (why) => {
      cancel.abort(why)
      return cutStreamEvent(why)
    },
    c.env?.drop,
  )
  // First, before the run can emit anything; dropped with the stream if the queue refuses the task.
  void out.write(chunks.role())
  const admitted = await deps.admission.submit(admissible, {
    ...task,
    // Answer text goes out as it comes; the promise a slow client leaves pauses the run.
    onEvent: (e: AgentEvent) => (e.type === 'llm.delta' ? out.write(chunks.content(e.text)) : undefined),
  })
  if ('refusal' in admitted) {
    cleanup()
    return renderRefusal(inOpenAITerms(admitted.refusal))
  }
  void stream(deps, admitted.run, out, chunks, request.includeUsage).finally(cleanup)
  return new Response(out.body, { headers: { ...admitted.run.headers, ...streamHeaders(who.id) } })
}

/**
 * A chat body checked as OpenAI checks it, and its target as admission finds it (the metrics label set
 * either way); or the response that refuses it. The agent faces that take OpenAI's body share it.
 */
export function checkChat(
  c: Context<GatewayEnv>,
  admission: Admission,
): { request: ChatRequest; admissible: Checked } | Response {
  const checked = checkChatRequest(c.get('body'))
  if (!checked.ok) return errorResponse(400, checked.message, { param: checked.param })
  const request = checked.value
  const admissible = admission.check(request.model, request.metadata, c.get('principal'))
  if ('refusal' in admissible) {
    if (admissible.refusal.target !== undefined) c.set('target', admissible.refusal.target)
    return renderRefusal(admissible.refusal)
  }
  c.set('target', admissible.target)
  return { request, admissible }
}

/** A refusal's `param` as this API names the field: the conversation id is `metadata.conversation_id` here. */
function inOpenAITerms(refusal: Refusal): Refusal {
  return refusal.param === 'conversation_id' ? { ...refusal, param: 'metadata.conversation_id' } : refusal
}

async function once(run: Run, who: CompletionIdentity, cleanup: () => void): Promise<Response> {
  try {
    const result = await run.result
    if (succeeded(result)) {
      // Headers as a plain record, not Response.json's Headers: on Node, @hono/node-server writes a record
      // straight to the socket, where a Headers object is built and checked header by header first.
      return new Response(JSON.stringify(completionBody(who, result.content ?? '', 'stop', result.usage)), {
        headers: { 'content-type': 'application/json', ...run.headers, 'x-request-id': who.id },
      })
    }
    const { status, message, code, retryAfterSeconds, retry } = failureOf(result)
    // A failed run would fail the same way again, at full cost: the SDKs are told not to retry it (a spent
    // daily budget says when it resets, for whoever retries by hand). One that never started may be retried.
    return errorResponse(status, message, {
      code,
      ...(retry === true ? {} : { retry: false }),
      ...(retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(retryAfterSeconds) } }),
    })
  } finally {
    cleanup()
  }
}

async function stream(
  deps: ChatDeps,
  run: Run,
  out: ResponseStream,
  chunks: ChunkEncoder,
  includeUsage: boolean,
): Promise<void> {
  try {
    const result = await run.result
    // The last chunks are small and the stream ends after them: they are not waited for.
    if (succeeded(result)) {
      void out.write(chunks.finish('stop'))
      if (includeUsage) void out.write(chunks.usage(result.usage))
      void out.write(chunks.done())
    } else {
      const { status, message, code } = failureOf(result)
      void out.write(chunks.error(errorBody(status, message, { code })))
    }
  } catch (err) {
    void out.write(chunks.error(streamFailure(deps.log, run.id, err)))
  } finally {
    out.close()
  }
}
