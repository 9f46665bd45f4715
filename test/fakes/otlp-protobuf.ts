/**
 * The receiver's reading of OTLP as protobuf (`application/x-protobuf`): the protobuf wire format, and of the
 * trace schema (opentelemetry/proto/collector/trace/v1) the fields the tests look at, turned into the shape
 * of OTLP's JSON encoding so that both encodings are read by the same code. Unknown fields are skipped, as
 * protobuf readers do.
 */

interface Field {
  readonly number: number
  /** A varint's or fixed64's value. */
  readonly int?: bigint
  /** A length-delimited field's bytes. */
  readonly bytes?: Uint8Array
  /** A fixed64 as a double (AnyValue.double_value). */
  readonly double?: number
}

function* fields(buf: Uint8Array): Generator<Field> {
  let at = 0
  const varint = (): bigint => {
    let result = 0n
    let shift = 0n
    for (;;) {
      const b = buf[at++]
      if (b === undefined) throw new Error('protobuf: a varint runs past the end')
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return result
      shift += 7n
    }
  }
  while (at < buf.length) {
    const key = Number(varint())
    const number = key >>> 3
    switch (key & 7) {
      case 0:
        yield { number, int: varint() }
        break
      case 1: {
        const view = new DataView(buf.buffer, buf.byteOffset + at, 8)
        yield { number, int: view.getBigUint64(0, true), double: view.getFloat64(0, true) }
        at += 8
        break
      }
      case 2: {
        const length = Number(varint())
        yield { number, bytes: buf.subarray(at, at + length) }
        at += length
        break
      }
      case 5:
        at += 4
        break
      default:
        throw new Error(`protobuf: wire type ${String(key & 7)} is not one OTLP uses`)
    }
  }
}

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b)
const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? new Uint8Array()).toString('hex')

type AnyValue = Record<string, unknown>

function anyValue(buf: Uint8Array): AnyValue {
  for (const f of fields(buf)) {
    if (f.number === 1) return { stringValue: text(f.bytes) }
    if (f.number === 2) return { boolValue: f.int === 1n }
    if (f.number === 3) return { intValue: BigInt.asIntN(64, f.int ?? 0n).toString() }
    if (f.number === 4) return { doubleValue: f.double }
    if (f.number === 5) {
      const values: AnyValue[] = []
      for (const v of fields(f.bytes ?? new Uint8Array()))
        if (v.number === 1 && v.bytes) values.push(anyValue(v.bytes))
      return { arrayValue: { values } }
    }
  }
  return {}
}

function keyValues(list: Field[]): { key: string; value: AnyValue }[] {
  return list.map((f) => {
    let key = ''
    let value: AnyValue = {}
    for (const kv of fields(f.bytes ?? new Uint8Array())) {
      if (kv.number === 1) key = text(kv.bytes)
      if (kv.number === 2 && kv.bytes) value = anyValue(kv.bytes)
    }
    return { key, value }
  })
}

const all = (buf: Uint8Array | undefined, number: number) =>
  [...fields(buf ?? new Uint8Array())].filter((f) => f.number === number)

/** An ExportTraceServiceRequest, as OTLP's JSON encoding would carry it. */
export function decodeTraceRequest(body: Uint8Array): unknown {
  return {
    resourceSpans: all(body, 1).map((rs) => ({
      resource: { attributes: keyValues(all(all(rs.bytes, 1)[0]?.bytes, 1)) },
      scopeSpans: all(rs.bytes, 2).map((ss) => ({
        spans: all(ss.bytes, 2).map((span) => {
          const f = (n: number) => all(span.bytes, n)
          return {
            traceId: hex(f(1)[0]?.bytes),
            spanId: hex(f(2)[0]?.bytes),
            parentSpanId: hex(f(4)[0]?.bytes),
            name: text(f(5)[0]?.bytes),
            kind: Number(f(6)[0]?.int ?? 0n),
            startTimeUnixNano: String(f(7)[0]?.int ?? 0n),
            endTimeUnixNano: String(f(8)[0]?.int ?? 0n),
            attributes: keyValues(f(9)),
            status: { code: Number(all(f(15)[0]?.bytes, 3)[0]?.int ?? 0n) },
          }
        }),
      })),
    })),
  }
}
