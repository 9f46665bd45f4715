/**
 * `POST /v1/chat/completions` with `model: "model/<name>"`: ark as an OpenAI-compatible model gateway.
 *
 * Upstreams that speak OpenAI's wire format (openai, azure, any compatible server) get the client's body as
 * is, with only `model` replaced, and the answer comes back unread: a JSON body is piped through untouched;
 * a stream is passed on event by event, each checked to be JSON, so that a broken upstream ends the
 * client's stream with an error it can parse instead of bytes it cannot. Other providers (anthropic, the
 * mock) are mapped through the runtime's provider interface, client tools and response_format included.
 *
 * Whatever the upstream sends, the Model's secrets do not leave: the forwarded body (JSON or not, whole or
 * streamed, error events included), the headers passed on, and ark's own error messages all go through the
 * provider's redactor; mapped answers and errors come out of the provider redacted already.
 */
import type { ResourceOf } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import { notAllowedMessage } from '../auth/scope.ts'
import type { Principal } from '../auth/scope.ts'
import type { Provider } from '../runtime/provider.ts'
import { ProviderError } from '../runtime/provider.ts'
import { PrepareError } from '../runtime/prepare.ts'
import { Redactor } from '../runtime/redactor.ts'
import type { ChatDeps } from './chat.ts'
import { ChunkEncoder, completionBody, newIdentity, streamHeaders } from './completion.ts'
import type { CompletionIdentity } from './completion.ts'
import { cutStreamEvent, errorBody, errorEvent, errorResponse, renderRefusal } from './errors.ts'
import { unavailable } from '../admission.ts'
import { checkForwardedRequest, checkMappedRequest } from './request.ts'
import { guardEvents } from './sse-guard.ts'
import { readAtMost } from '../http/body.ts'
import type { StreamLimits } from '../http/response-stream.ts'
import { ResponseStream } from '../http/response-stream.ts'
import type { DirectRequest } from './request.ts'

/**
 * The largest non-streamed answer passed on. A completion of 100k tokens is about 400 KB; an upstream that
 * sends more is broken or hostile, and the gateway would hold all of it.
 */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024

/**
 * A non-streamed answer passed on as it came: status, headers and bytes. The app makes a Response of it; the
 * Node lane (node-lane.ts) writes it to the socket as is.
 */
export interface PlainAnswer {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  /** null: no body at all (a 204 or 304 may not have one, not even an empty one). */
  readonly bytes: Uint8Array | null
}

/** What a direct call answers: bytes passed on, or a Response ark made (refusals, mapped answers, streams). */
export type DirectAnswer = { readonly plain: PlainAnswer } | { readonly response: Response }

/** The connection a direct call is answered on. */
export interface DirectConnection {
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal
  /** Closes the connection now (a stalled stream); absent where the runtime cannot. */
  readonly drop?: (() => void) | undefined
}

/** The Model a chat body names as `model/<name>` (or any spelling of it), if it names one. */
export function directModelOf(catalog: Catalog, body: unknown): ResourceOf<'Model'> | undefined {
  const named = typeof body === 'object' && body !== null ? (body as { model?: unknown }).model : undefined
  if (typeof named !== 'string') return undefined
  const target = catalog.resolveTarget(named)
  return target?.kind === 'Model' ? (target.resource as ResourceOf<'Model'>) : undefined
}

/**
 * A chat body that names a Model, answered: the caller's scope, admission (quotas, in-flight bounds), then
 * the call. `target` is the metrics label, once the Model is known to the caller.
 */
export async function directModel(
  deps: ChatDeps,
  body: Record<string, unknown>,
  model: ResourceOf<'Model'>,
  who: Principal | undefined,
  connection: DirectConnection,
): Promise<{ readonly target: string | undefined; readonly answer: DirectAnswer }> {
  const id = deps.catalog.targetId('Model', model.ref)
  if (who !== undefined && !who.allowsTarget('Model', model.ref)) {
    const response = errorResponse(403, notAllowedMessage(who, id), {
      param: 'model',
      code: 'target_not_allowed',
      retry: false,
    })
    return { target: undefined, answer: { response } }
  }
  const pending = deps.admission.admitDirect(who, model.ref.namespace, id)
  const slot = pending instanceof Promise ? await pending : pending
  if ('refusal' in slot) return { target: undefined, answer: { response: renderRefusal(slot.refusal) } }
  try {
    return { target: id, answer: await directCompletion(deps, body, model, id, connection) }
  } finally {
    slot.release()
  }
}

async function directCompletion(
  deps: ChatDeps,
  body: Record<string, unknown>,
  model: ResourceOf<'Model'>,
  id: string,
  connection: DirectConnection,
): Promise<DirectAnswer> {
  const notAvailable = unavailable(deps.catalog, model.key, id)
  // A Model that is not reachable now may be soon (a probe, a rate limit): the SDKs may retry, unlike an
  // agent that is misconfigured.
  if (notAvailable !== undefined) return { response: renderRefusal({ ...notAvailable, retry: true }) }
  let provider: Provider
  try {
    provider = deps.runtime.modelProvider(model)
  } catch (err) {
    if (!(err instanceof PrepareError)) throw err
    return {
      response: errorResponse(503, `${id} cannot serve: ${err.message}`, {
        code: 'ModelNotReady',
        retry: false,
      }),
    }
  }
  const { signal, drop } = connection
  const started = performance.now()
  const done = (error: boolean) => {
    deps.metrics.modelCall(provider.provider, provider.model, error, (performance.now() - started) / 1000)
  }

  if (provider.forward !== undefined && provider.standIn === undefined) {
    const checked = checkForwardedRequest(body)
    if (!checked.ok) return { response: errorResponse(400, checked.message, { param: checked.param }) }
    let upstream: Response
    try {
      upstream = await provider.forward(body, signal)
    } catch (err) {
      done(true)
      return { response: upstreamFailure(id, provider, err) }
    }
    done(false)
    const redactor = provider.redactor ?? Redactor.none
    const headers: Record<string, string> = {
      'content-type': redactor.text(upstream.headers.get('content-type') ?? 'application/json'),
    }
    const requestId = upstream.headers.get('x-request-id')
    if (requestId !== null) headers['x-request-id'] = redactor.text(requestId)
    if (!checked.value.stream) {
      // Whole, not piped: a non-streamed answer is small, and bytes are written in one go with their length
      // (the Node adapter writes a Uint8Array body directly; an ArrayBuffer would go through a stream).
      // Searched as bytes, whether JSON or not: no parse, and no copy when there is nothing to hide.
      let whole: Uint8Array | 'too_large'
      try {
        whole = await readAnswer(upstream)
      } catch (err) {
        return { response: upstreamFailure(id, provider, err) }
      }
      if (whole === 'too_large') {
        return {
          response: errorResponse(
            502,
            `${id} (${provider.provider}): the upstream's answer is larger than ${String(MAX_ANSWER_BYTES)} bytes; ask for fewer tokens or stream it`,
            { code: 'bad_upstream_response', retry: false },
          ),
        }
      }
      const bytes = redactor.bytes(whole)
      return { plain: { status: upstream.status, headers, bytes: bytes.byteLength === 0 ? null : bytes } }
    }
    if (upstream.body === null) return { plain: { status: upstream.status, headers, bytes: null } }
    headers['cache-control'] = 'no-cache'
    headers['x-accel-buffering'] = 'no'
    // Pulled at the client's pace, bounded and timed like every stream ark writes (a stalled client is cut
    // and the upstream request closed).
    const out = new ResponseStream(deps.stream, cutStreamEvent, drop)
    void out.pipeFrom(guardEvents(upstream.body, (why) => streamError(id, why), redactor))
    return { response: new Response(out.body, { status: upstream.status, headers }) }
  }

  const checked = checkMappedRequest(body)
  if (!checked.ok) return { response: errorResponse(400, checked.message, { param: checked.param }) }
  const who = newIdentity(provider.model)
  return {
    response: checked.value.stream
      ? mappedStream(id, provider, checked.value, who, signal, done, deps.stream, drop)
      : await mappedOnce(id, provider, checked.value, who, signal, done),
  }
}

/** A PlainAnswer as a Response, for the app. */
export function plainResponse(plain: PlainAnswer): Response {
  return new Response(plain.bytes, { status: plain.status, headers: plain.headers })
}

/**
 * A non-streamed answer, whole, within MAX_ANSWER_BYTES. With a Content-Length in bounds the HTTP client holds
 * the body to it, so it is read in one go (on Node, without ever building a stream: the upstream fetch
 * buffers it); without one (chunked), it is read through the stream and cut at the bound.
 */
async function readAnswer(upstream: Response): Promise<Uint8Array | 'too_large'> {
  const length = upstream.headers.get('content-length')
  if (length !== null && /^\d+$/.test(length) && Number(length) <= MAX_ANSWER_BYTES)
    return new Uint8Array(await upstream.arrayBuffer())
  const body = upstream.body
  if (body === null) return new Uint8Array(0)
  return readAtMost(body.getReader(), MAX_ANSWER_BYTES)
}

async function mappedOnce(
  id: string,
  provider: Provider,
  request: DirectRequest,
  who: CompletionIdentity,
  signal: AbortSignal,
  done: (error: boolean) => void,
): Promise<Response> {
  try {
    const completion = await provider.complete({ ...request, signal })
    done(false)
    const m = completion.message
    return Response.json(
      completionBody(who, m.content, completion.finishReason, completion.usage, m.tool_calls),
      {
        headers: { 'x-request-id': who.id },
      },
    )
  } catch (err) {
    done(true)
    return upstreamFailure(id, provider, err)
  }
}

function mappedStream(
  id: string,
  provider: Provider,
  request: DirectRequest,
  who: CompletionIdentity,
  signal: AbortSignal,
  done: (error: boolean) => void,
  limits: StreamLimits,
  drop: (() => void) | undefined,
): Response {
  const chunks = new ChunkEncoder(who, request.includeUsage)
  const cancel = new AbortController()
  const out = new ResponseStream(
    limits,
    (why) => {
      cancel.abort(why)
      return cutStreamEvent(why)
    },
    drop,
  )
  void out.write(chunks.role())
  const run = async () => {
    try {
      const completion = await provider.complete({
        ...request,
        signal: AbortSignal.any([signal, cancel.signal]),
        // The provider waits for a slow reader before it reads on from its upstream.
        onDelta: (text) => out.write(chunks.content(text)),
      })
      done(false)
      const calls = completion.message.tool_calls
      if (calls !== undefined && calls.length > 0) void out.write(chunks.toolCalls(calls))
      void out.write(chunks.finish(completion.finishReason))
      if (request.includeUsage) void out.write(chunks.usage(completion.usage))
      void out.write(chunks.done())
    } catch (err) {
      done(true)
      const { status, message, code } = failureOf(id, provider, err)
      void out.write(chunks.error(errorBody(status, message, { code })))
    } finally {
      out.close()
    }
  }
  void run()
  return new Response(out.body, { headers: streamHeaders(who.id) })
}

/** The upstream's failure in OpenAI's shape, with the upstream's status; ark's own (timeout, unreachable) as 504/502. */
function failureOf(
  id: string,
  provider: Provider,
  err: unknown,
): { status: number; message: string; code: string } {
  // The provider redacts what it throws; this is the exit, so it is checked here once more.
  const redactor = provider.redactor ?? Redactor.none
  const redact = (text: string) => redactor.text(text)
  if (err instanceof ProviderError) {
    const status = err.status ?? (err.code === 'timeout' ? 504 : 502)
    return { status, message: redact(`${id} (${provider.provider}): ${err.message}`), code: redact(err.code) }
  }
  if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) {
    return { status: 499, message: `${id}: the request was cancelled`, code: 'cancelled' }
  }
  return {
    status: 502,
    message: redact(
      `${id} (${provider.provider}) failed: ${err instanceof Error ? err.message : String(err)}`,
    ),
    code: 'upstream_error',
  }
}

function upstreamFailure(id: string, provider: Provider, err: unknown): Response {
  const { status, message, code } = failureOf(id, provider, err)
  const type = status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : undefined
  // ark already retried 5xx upstream; the client's SDK retrying too would multiply the calls.
  return errorResponse(status, message, {
    code,
    ...(type === undefined ? {} : { type }),
    ...(status >= 500 ? { retry: false } : {}),
  })
}

function streamError(id: string, why: string): string {
  return errorEvent(
    errorBody(502, `${id}: the upstream stream broke: ${why}`, { code: 'bad_upstream_stream' }),
  )
}
