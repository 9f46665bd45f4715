/**
 * Traces, with the OpenTelemetry GenAI semantic conventions: a span for each request the gateway serves, the
 * time a task waited in its pool's queue, the agent's or team's run (`invoke_agent`), each team turn, each
 * model call (`chat`) and each tool call (`execute_tool`). A caller's `traceparent` is the parent; a task
 * carries its context across the queue (Redis included) to the worker that runs it; every call out (models,
 * webhook tools, MCP servers, remote A2A agents) sends it on.
 *
 * Attributes hold names, ids, counts and outcomes, and a failure's message as its caller is told it (already
 * free of secrets); never prompts, answers or tool arguments.
 *
 * Off unless the standard variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT`,
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `OTEL_TRACES_EXPORTER=otlp`); then spans go out as OTLP over HTTP
 * (JSON), batched. Off, the SDK is not loaded (only the small API package is) and every hook below is a
 * test of one variable: the hot path pays nothing else.
 *
 * The tracer is process-wide, as OpenTelemetry's own API is: one process serves one set of variables.
 */
import type { Context, Span, SpanOptions, Tracer } from '@opentelemetry/api'
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api'
import type { MiddlewareHandler } from 'hono'
import { routePath } from 'hono/route'
import type { Logger } from '../log.ts'

/** A task's trace context as it crosses a queue: W3C trace context, and when it was queued. */
export interface TraceCarrier {
  readonly traceparent?: string
  readonly tracestate?: string
  /** Epoch milliseconds: the start of its queue-wait span. */
  readonly queuedAt: number
}

let active: Tracer | undefined

/** The tracer, or undefined when tracing is off (the common case: test it and do nothing else). */
export function tracer(): Tracer | undefined {
  return active
}

/** What the OTEL_* variables ask for: nothing (off), or where and how spans go. */
export interface TracingConfig {
  readonly serviceName: string
  /** Where spans are posted: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces. */
  readonly url: string
  /** How they are encoded (OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL; default http/json). */
  readonly protocol: 'http/json' | 'http/protobuf'
  /** OTEL_EXPORTER_OTLP_(TRACES_)HEADERS: often a collector's token, so never logged. */
  readonly headers: Readonly<Record<string, string>>
  /** OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT, ms (default 10000). */
  readonly timeoutMillis: number
  /** Milliseconds between batch exports (OTEL_BSP_SCHEDULE_DELAY, default 5000). */
  readonly scheduledDelayMillis: number
  /** Head sampling ratio of root spans (OTEL_TRACES_SAMPLER traceidratio and parentbased_traceidratio). */
  readonly sampler: {
    readonly kind: 'always_on' | 'always_off' | 'ratio'
    readonly parentBased: boolean
    readonly ratio: number
  }
}

const SAMPLERS = new Set([
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
])

/**
 * Reads the variables; undefined when tracing is off. Throws, naming the variable, on a value ark cannot
 * honour (a protocol other than http/json, an unknown sampler, a bad number): a collector that silently gets
 * nothing is worse than a process that will not start.
 */
export function tracingConfig(
  env: Readonly<Record<string, string | undefined>>,
  defaultService: string,
): TracingConfig | undefined {
  const set = (name: string) => {
    const v = env[name]?.trim()
    return v === undefined || v === '' ? undefined : v
  }
  if (set('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined
  const exporters = (set('OTEL_TRACES_EXPORTER') ?? '').split(',').map((e) => e.trim().toLowerCase())
  if (exporters.includes('none')) return undefined
  const endpoint = set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? set('OTEL_EXPORTER_OTLP_ENDPOINT')
  if (endpoint === undefined && !exporters.includes('otlp')) return undefined
  for (const e of exporters)
    if (e !== '' && e !== 'otlp')
      throw new Error(
        `OTEL_TRACES_EXPORTER: "${e.slice(0, 40)}" is not supported; ark exports otlp (or none)`,
      )
  let protocol: TracingConfig['protocol'] = 'http/json'
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    const asked = set(name)
    if (asked === undefined) continue
    if (asked !== 'http/json' && asked !== 'http/protobuf')
      throw new Error(
        `${name}: "${asked.slice(0, 40)}" is not supported; ark sends OTLP over HTTP, as http/json or http/protobuf (a collector's OTLP receiver takes both on port 4318)`,
      )
    protocol = asked
    break
  }
  const samplerName = (set('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on').toLowerCase()
  if (!SAMPLERS.has(samplerName))
    throw new Error(
      `OTEL_TRACES_SAMPLER: "${samplerName.slice(0, 40)}" is not one of ${[...SAMPLERS].join(', ')}`,
    )
  const arg = set('OTEL_TRACES_SAMPLER_ARG')
  const ratio = arg === undefined ? 1 : Number(arg)
  if (!(ratio >= 0 && ratio <= 1)) throw new Error('OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1')
  const delay = set('OTEL_BSP_SCHEDULE_DELAY')
  const scheduledDelayMillis = delay === undefined ? 5000 : Number(delay)
  if (!(Number.isInteger(scheduledDelayMillis) && scheduledDelayMillis >= 0))
    throw new Error('OTEL_BSP_SCHEDULE_DELAY: must be a whole number of milliseconds')
  const base = samplerName.replace('parentbased_', '')
  const tracesEndpoint = set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
  const url =
    tracesEndpoint ??
    `${(set('OTEL_EXPORTER_OTLP_ENDPOINT') ?? 'http://localhost:4318').replace(/\/+$/, '')}/v1/traces`
  const urlVariable =
    tracesEndpoint === undefined ? 'OTEL_EXPORTER_OTLP_ENDPOINT' : 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new Error(`${urlVariable}: not a URL`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new Error(`${urlVariable}: must be an http or https URL`)
  const timeout = set('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT') ?? set('OTEL_EXPORTER_OTLP_TIMEOUT')
  const timeoutMillis = timeout === undefined ? 10_000 : Number(timeout)
  if (!(Number.isInteger(timeoutMillis) && timeoutMillis > 0))
    throw new Error('OTEL_EXPORTER_OTLP_TIMEOUT: must be a whole number of milliseconds above 0')
  return {
    serviceName: set('OTEL_SERVICE_NAME') ?? defaultService,
    url,
    protocol,
    headers: {
      ...headerList(set('OTEL_EXPORTER_OTLP_HEADERS'), 'OTEL_EXPORTER_OTLP_HEADERS'),
      ...headerList(set('OTEL_EXPORTER_OTLP_TRACES_HEADERS'), 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'),
    },
    timeoutMillis,
    scheduledDelayMillis,
    sampler: {
      kind: base === 'traceidratio' ? 'ratio' : (base as 'always_on' | 'always_off'),
      parentBased: samplerName.startsWith('parentbased_'),
      ratio,
    },
  }
}

/** `key1=value1,key2=value2`, values percent-encoded (the OTLP exporter spec); the error never shows a value. */
function headerList(text: string | undefined, variable: string): Record<string, string> {
  const out: Record<string, string> = {}
  if (text === undefined) return out
  for (const [i, pair] of text.split(',').entries()) {
    const at = pair.indexOf('=')
    const name = at < 0 ? '' : pair.slice(0, at).trim()
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new Error(`${variable}: entry ${String(i + 1)} is not name=value`)
    try {
      out[name.toLowerCase()] = decodeURIComponent(pair.slice(at + 1).trim())
    } catch {
      throw new Error(`${variable}: the value of ${name} is not percent-encoded text`)
    }
  }
  return out
}

export interface Tracing {
  /** Exports what is still batched, then stops (at shutdown: a process's last spans are not lost). */
  shutdown(): Promise<void>
}

/**
 * Starts tracing when the variables ask for it: loads the SDK, registers the tracer, the W3C propagator and
 * an AsyncLocalStorage context (so that a model call made inside a span carries it). Undefined when off.
 */
export async function startTracing(
  env: Readonly<Record<string, string | undefined>>,
  defaultService: string,
  log: Logger,
): Promise<Tracing | undefined> {
  const config = tracingConfig(env, defaultService)
  if (config === undefined) return undefined
  const [
    sdk,
    { OTLPTraceExporter },
    resources,
    { AsyncLocalStorageContextManager },
    { W3CTraceContextPropagator },
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace'),
    // The two exporters take the same options; only the one asked for is loaded.
    config.protocol === 'http/protobuf'
      ? import('@opentelemetry/exporter-trace-otlp-proto')
      : import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
  ])
  const { kind, parentBased, ratio } = config.sampler
  const root =
    kind === 'always_on'
      ? new sdk.AlwaysOnSampler()
      : kind === 'always_off'
        ? new sdk.AlwaysOffSampler()
        : new sdk.TraceIdRatioBasedSampler(ratio)
  const exporter = new OTLPTraceExporter({
    url: config.url,
    headers: { ...config.headers },
    timeoutMillis: config.timeoutMillis,
  })
  const provider = new sdk.TracerProvider({
    // OTEL_RESOURCE_ATTRIBUTES, then the service name, which OTEL_SERVICE_NAME sets over them (as the spec says).
    resource: resources
      .detectResources({ detectors: [resources.resourceAttributesEnvDetector] })
      .merge(resources.resourceFromAttributes({ 'service.name': config.serviceName })),
    sampler: parentBased ? new sdk.ParentBasedSampler({ root }) : root,
    spanProcessors: [
      new sdk.BatchSpanProcessor({ exporter, scheduledDelayMillis: config.scheduledDelayMillis }),
    ],
  })
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(provider)
  active = trace.getTracer('ark')
  log.info('tracing', { service: config.serviceName, sampler: `${parentBased ? 'parentbased_' : ''}${kind}` })
  return {
    async shutdown() {
      active = undefined
      await provider.shutdown().catch((err: unknown) => {
        log.warn('the last spans could not be exported', {
          error: err instanceof Error ? err.message : String(err),
        })
      })
    },
  }
}

/**
 * `task` with the trace context of whatever queues it (a request's span, a tool call's) and the time, for the
 * worker that will run it, here or on another process; `task` itself when tracing is off.
 */
export function withCarrier<T extends { readonly trace?: TraceCarrier }>(task: T): T {
  if (active === undefined) return task
  const fields: { traceparent?: string; tracestate?: string } = {}
  propagation.inject(context.active(), fields)
  return { ...task, trace: { ...fields, queuedAt: Date.now() } }
}

/** The context a carrier names (a task's, read back on a worker): its parent, or none. */
export function contextOf(carrier: TraceCarrier | undefined): Context {
  if (carrier === undefined) return ROOT_CONTEXT
  // A carrier comes from a queue: only its two strings are read, and the propagator checks their format.
  const fields: Record<string, string> = {}
  if (typeof carrier.traceparent === 'string') fields.traceparent = carrier.traceparent
  if (typeof carrier.tracestate === 'string') fields.tracestate = carrier.tracestate
  return propagation.extract(ROOT_CONTEXT, fields)
}

/** Adds `traceparent` (and `tracestate`) of the active span to outgoing request headers, when tracing is on. */
export function injectInto(headers: Record<string, string>): void {
  if (active === undefined) return
  propagation.inject(context.active(), headers)
}

/** As injectInto, on a Headers object (the SDKs' fetch wrappers build one anyway). */
export function injectIntoHeaders(headers: Headers): void {
  if (active === undefined) return
  propagation.inject(context.active(), headers, { set: (h, name, value) => h.set(name, value) })
}

/**
 * Runs `fn` inside a new span (the active one while it runs, so that calls it makes carry it), ends the span
 * when it settles, and marks it failed when it throws. Callers test `tracer()` first: this allocates.
 */
export async function inSpan<T>(
  t: Tracer,
  name: string,
  options: SpanOptions,
  parent: Context,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const span = t.startSpan(name, options, parent)
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span))
  } catch (err) {
    failed(span, err instanceof Error ? err.name : 'Error', err instanceof Error ? err.message : String(err))
    throw err
  } finally {
    span.end()
  }
}

/** Marks a span failed, with OpenTelemetry's `error.type` and a description. */
export function failed(span: Span, type: string, message: string): void {
  span.setAttribute('error.type', type)
  span.setStatus({ code: SpanStatusCode.ERROR, message })
}

/** The trace and span ids of the active span, for log lines; undefined when there is none. */
export function activeIds(): { trace_id: string; span_id: string } | undefined {
  if (active === undefined) return undefined
  const span = trace.getActiveSpan()
  if (span === undefined) return undefined
  const { traceId, spanId } = span.spanContext()
  return { trace_id: traceId, span_id: spanId }
}

/**
 * A Hono middleware that serves each request in a SERVER span, child of the caller's `traceparent`, named by
 * its route (`POST /v1/chat/completions`) and carrying the HTTP semantic conventions' attributes. What the
 * request queues and calls runs inside it. Only installed when tracing is on.
 */
export function traceRequests(t: Tracer): MiddlewareHandler {
  return async (c, next) => {
    const headers: Record<string, string> = {}
    const traceparent = c.req.header('traceparent')
    if (traceparent !== undefined) headers.traceparent = traceparent
    const tracestate = c.req.header('tracestate')
    if (tracestate !== undefined) headers.tracestate = tracestate
    const parent = propagation.extract(ROOT_CONTEXT, headers)
    const method = c.req.method
    const span = t.startSpan(
      method,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'url.path': c.req.path } },
      parent,
    )
    try {
      await context.with(trace.setSpan(parent, span), next)
    } finally {
      // The route is known once routing is done: unmatched paths share one name (paths are client input).
      const route = routePath(c)
      const named = route === '/*' || route === '*' ? method : `${method} ${route}`
      span.updateName(named)
      span.setAttribute('http.route', route)
      const status = c.res.status
      span.setAttribute('http.response.status_code', status)
      if (status >= 500) failed(span, String(status), `answered ${String(status)}`)
      span.end()
    }
  }
}
