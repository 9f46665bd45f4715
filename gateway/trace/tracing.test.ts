import { ROOT_CONTEXT } from '@opentelemetry/api'
import { afterAll, describe, expect, it } from 'vitest'
import { createLogger, silentLogger } from '../log.ts'
import { startOtlpReceiver } from '../../test/fakes/otlp-receiver.ts'
import type { TraceCarrier } from './tracing.ts'
import { contextOf, inSpan, startTracing, tracer, tracingConfig, withCarrier } from './tracing.ts'

describe('tracingConfig: the OTEL_* variables', () => {
  const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }

  it('is off unless an endpoint or the otlp exporter is asked for, and when disabled', () => {
    expect(tracingConfig({}, 'ark-dev')).toBeUndefined()
    expect(tracingConfig({ OTEL_SERVICE_NAME: 'x' }, 'ark-dev')).toBeUndefined()
    expect(tracingConfig({ ...endpoint, OTEL_SDK_DISABLED: 'true' }, 'ark-dev')).toBeUndefined()
    expect(tracingConfig({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }, 'ark-dev')).toBeUndefined()
    expect(tracingConfig({ OTEL_TRACES_EXPORTER: 'otlp' }, 'ark-dev')).toBeDefined()
    expect(
      tracingConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }, 'ark-dev'),
    ).toBeDefined()
  })

  it('names the service, samples parent-based by default, and reads a ratio', () => {
    expect(tracingConfig(endpoint, 'ark-worker')).toEqual({
      serviceName: 'ark-worker',
      url: 'http://127.0.0.1:4318/v1/traces',
      protocol: 'http/json',
      headers: {},
      timeoutMillis: 10_000,
      scheduledDelayMillis: 5000,
      sampler: { kind: 'always_on', parentBased: true, ratio: 1 },
    })
    expect(
      tracingConfig(
        {
          ...endpoint,
          OTEL_SERVICE_NAME: 'agents',
          OTEL_TRACES_SAMPLER: 'traceidratio',
          OTEL_TRACES_SAMPLER_ARG: '0.25',
        },
        'ark-dev',
      ),
    ).toMatchObject({ serviceName: 'agents', sampler: { kind: 'ratio', parentBased: false, ratio: 0.25 } })
  })

  it('reads where to send, with which headers, as the OTLP exporter spec says', () => {
    expect(
      tracingConfig(
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector.example:4318/',
          OTEL_EXPORTER_OTLP_HEADERS: 'Authorization=Bearer%20abc,x-tenant=a',
          OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=b',
          OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
        },
        'ark-dev',
      ),
    ).toMatchObject({
      url: 'https://collector.example:4318/v1/traces',
      headers: { authorization: 'Bearer abc', 'x-tenant': 'b' },
      timeoutMillis: 2500,
    })
    expect(
      tracingConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:9/custom/path' }, 'ark-dev')?.url,
    ).toBe('http://c:9/custom/path')
  })

  it('refuses what it cannot honour, naming the variable', () => {
    const refused = (env: Record<string, string>) => () => tracingConfig({ ...endpoint, ...env }, 'ark-dev')
    expect(refused({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(/^OTEL_EXPORTER_OTLP_PROTOCOL: "grpc"/)
    expect(refused({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc' })).toThrow(
      /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "grpc" is not supported; ark sends OTLP over HTTP/,
    )
    expect(refused({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/^OTEL_TRACES_EXPORTER: "zipkin"/)
    expect(refused({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/^OTEL_TRACES_SAMPLER: "sometimes"/)
    expect(refused({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(
      /^OTEL_TRACES_SAMPLER_ARG/,
    )
    expect(refused({ OTEL_BSP_SCHEDULE_DELAY: 'soon' })).toThrow(/^OTEL_BSP_SCHEDULE_DELAY/)
    expect(refused({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /^OTEL_EXPORTER_OTLP_ENDPOINT: must be an http/,
    )
    // A header's value (often a token) is never repeated.
    expect(refused({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization' })).toThrow(
      /^OTEL_EXPORTER_OTLP_HEADERS: entry 1 is not name=value$/,
    )
    expect(refused({ OTEL_EXPORTER_OTLP_HEADERS: 'x=%E0%A4%A-secret' })).toThrow(
      /^OTEL_EXPORTER_OTLP_HEADERS: the value of x is not percent-encoded text$/,
    )
    // The traces' own protocol wins over the general one.
    expect(
      refused({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }),
    ).not.toThrow()
    expect(
      tracingConfig(
        {
          ...endpoint,
          OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        },
        'ark-dev',
      )?.protocol,
    ).toBe('http/protobuf')
  })
})

describe('with tracing on, in this process', () => {
  const receiver = startOtlpReceiver()
  afterAll(async () => {
    await (await receiver).close()
  })

  it('puts the span’s trace_id and span_id on log lines written inside it, and carries it in a task', async () => {
    const lines: string[] = []
    const log = createLogger('test', (l) => lines.push(l), 'info')
    log.info('before')
    const { url, spans } = await receiver
    const started = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: url }, 'ark-test', silentLogger)
    const t = tracer()
    expect(t).toBeDefined()
    if (t === undefined) return
    const ids = await inSpan(t, 'outer', {}, ROOT_CONTEXT, (span) => {
      log.info('inside')
      const queued: { id: string; trace?: TraceCarrier } = { id: 'task-1' }
      const task = withCarrier(queued)
      return Promise.resolve({ ...span.spanContext(), task })
    })
    log.info('after')
    const [before, inside, after] = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(before?.trace_id).toBeUndefined()
    expect(inside).toMatchObject({ msg: 'inside', trace_id: ids.traceId, span_id: ids.spanId })
    expect(after?.trace_id).toBeUndefined()
    // The task's carrier names the span it was queued in; read back, it is the parent of what runs it.
    expect(ids.task.trace?.traceparent).toBe(`00-${ids.traceId}-${ids.spanId}-01`)
    const parent = contextOf(ids.task.trace)
    const child = t.startSpan('child', {}, parent)
    expect(child.spanContext().traceId).toBe(ids.traceId)
    child.end()
    // A carrier that is not one (hostile or damaged queue content) starts a new trace, and throws nothing.
    const damaged = t.startSpan('x', {}, contextOf({ traceparent: 'not-a-traceparent', queuedAt: 0 }))
    expect(damaged.spanContext().traceId).not.toBe(ids.traceId)
    damaged.end()
    // Shut down, the process exports what it still held.
    await started?.shutdown()
    expect(tracer()).toBeUndefined()
    expect(spans.map((s) => s.name).sort()).toEqual(['child', 'outer', 'x'])
    expect(new Set(spans.map((s) => s.service))).toEqual(new Set(['ark-test']))
  })
})
