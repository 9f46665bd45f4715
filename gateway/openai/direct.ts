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
import type { Context } from 'hono'
import type { ResourceOf } from '../../controller/api/index.ts'
import type { Provider } from '../runtime/provider.ts'
import { ProviderError } from '../runtime/provider.ts'
import { PrepareError } from '../runtime/prepare.ts'
import { Redactor } from '../runtime/redactor.ts'
import type { ChatDeps, GatewayEnv } from './chat.ts'
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

export async function directCompletion(
  c: Context<GatewayEnv>,
  deps: ChatDeps,
  body: Record<string, unknown>,
  model: ResourceOf<'Model'>,
): Promise<Response> {
  const id = deps.catalog.targetId('Model', model.ref)
  c.set('target', id)

  const notAvailable = unavailable(deps.catalog, model.key, id)
  // A Model that is not reachable now may be soon (a probe, a rate limit): the SDKs may retry, unlike an
  // agent that is misconfigured.
  if (notAvailable !== undefined) return renderRefusal({ ...notAvailable, retry: true })
  let provider: Provider
  try {
    provider = deps.runtime.modelProvider(model)
  } catch (err) {
    if (!(err instanceof PrepareError)) throw err
    return errorResponse(503, `${id} cannot serve: ${err.message}`, { code: 'ModelNotReady', retry: false })
  }
  const signal = c.req.raw.signal
  const started = performance.now()
  const done = (error: boolean) => {
    deps.metrics.modelCall(provider.provider, provider.model, error, (performance.now() - started) / 1000)
  }

  if (provider.forward !== undefined && provider.standIn === undefined) {
    const checked = checkForwardedRequest(body)
    if (!checked.ok) return errorResponse(400, checked.message, { param: checked.param })
    let upstream: Response
    try {
      upstream = await provider.forward(body, signal)
    } catch (err) {
      done(true)
      return upstreamFailure(id, provider, err)
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
        return upstreamFailure(id, provider, err)
      }
      if (whole === 'too_large') {
        return errorResponse(
          502,
          `${id} (${provider.provider}): the upstream's answer is larger than ${String(MAX_ANSWER_BYTES)} bytes; ask for fewer tokens or stream it`,
          { code: 'bad_upstream_response', retry: false },
        )
      }
      // Empty as no body: a 204 or 304 may not have one, not even an empty one.
      const bytes = redactor.bytes(whole)
      return new Response(bytes.byteLength === 0 ? null : bytes, { status: upstream.status, headers })
    }
    if (upstream.body === null) return new Response(null, { status: upstream.status, headers })
    headers['cache-control'] = 'no-cache'
    headers['x-accel-buffering'] = 'no'
    // Pulled at the client's pace, bounded and timed like every stream ark writes (a stalled client is cut
    // and the upstream request closed).
    const out = new ResponseStream(deps.stream, cutStreamEvent, c.env?.drop)
    void out.pipeFrom(guardEvents(upstream.body, (why) => streamError(id, why), redactor))
    return new Response(out.body, { status: upstream.status, headers })
  }

  const checked = checkMappedRequest(body)
  if (!checked.ok) return errorResponse(400, checked.message, { param: checked.param })
  const who = newIdentity(provider.model)
  return checked.value.stream
    ? mappedStream(id, provider, checked.value, who, signal, done, deps.stream, c.env?.drop)
    : mappedOnce(id, provider, checked.value, who, signal, done)
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
