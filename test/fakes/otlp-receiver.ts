/**
 * An OTLP/HTTP trace receiver for tests: what an OpenTelemetry Collector's `otlphttp` receiver accepts on
 * POST /v1/traces, as JSON or protobuf (ExportTraceServiceRequest, by its content type), kept as flat spans to
 * assert on. Anything else gets 404 or 400, as a collector would answer.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { decodeTraceRequest } from './otlp-protobuf.ts'

type AnyValue = {
  stringValue?: string
  intValue?: string | number
  doubleValue?: number
  boolValue?: boolean
  arrayValue?: { values?: AnyValue[] }
}

export interface ReceivedSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string
  readonly name: string
  /** OTLP's SpanKind number: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  readonly attributes: Readonly<Record<string, unknown>>
  /** OTLP's status code: 0 unset, 1 ok, 2 error. */
  readonly status: number
  readonly startNs: bigint
  readonly endNs: bigint
}

export interface OtlpReceiver {
  /** The endpoint base, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly url: string
  readonly spans: ReceivedSpan[]
  /** Content types of the export requests received. */
  readonly contentTypes: string[]
  close(): Promise<void>
}

function valueOf(v: AnyValue | undefined): unknown {
  if (v === undefined) return undefined
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf)
  return undefined
}

const attributesOf = (list: { key: string; value?: AnyValue }[] | undefined) =>
  Object.fromEntries((list ?? []).map((a) => [a.key, valueOf(a.value)]))

interface ExportRequest {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value?: AnyValue }[] }
    scopeSpans?: {
      spans?: {
        traceId: string
        spanId: string
        parentSpanId?: string
        name: string
        kind: number
        attributes?: { key: string; value?: AnyValue }[]
        status?: { code?: number }
        startTimeUnixNano: string
        endTimeUnixNano: string
      }[]
    }[]
  }[]
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  const contentTypes: string[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      const type = req.headers['content-type'] ?? ''
      contentTypes.push(type)
      let body: ExportRequest
      try {
        const bytes = Buffer.concat(chunks)
        body = (
          type.startsWith('application/x-protobuf')
            ? decodeTraceRequest(bytes)
            : JSON.parse(bytes.toString('utf8'))
        ) as ExportRequest
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"message":"not OTLP"}')
        return
      }
      for (const rs of body.resourceSpans ?? []) {
        const name = attributesOf(rs.resource?.attributes)['service.name']
        const service = typeof name === 'string' ? name : ''
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({
              service,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              name: s.name,
              kind: s.kind,
              attributes: attributesOf(s.attributes),
              status: s.status?.code ?? 0,
              startNs: BigInt(s.startTimeUnixNano),
              endNs: BigInt(s.endTimeUnixNano),
            })
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${String(port)}`,
    spans,
    contentTypes,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
