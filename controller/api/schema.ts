/**
 * Building blocks for the dialect schemas. A schema here is plain JSON Schema (TypeBox), and it is the single
 * source of three things: runtime validation (validate.ts), the TypeScript type of a document (`Static`),
 * and the CRD's openAPIV3Schema (crd.ts). So every helper produces JSON Schema that is also a valid
 * Kubernetes *structural* schema: a `type` everywhere, no `anyOf` between types, and
 * `x-kubernetes-preserve-unknown-fields` where a field is free-form.
 *
 * Objects are closed (`additionalProperties: false`) so that a misspelt field is reported; the validator
 * turns those reports into warnings (Kubernetes prunes unknown fields rather than rejecting them), and the
 * CRD generator drops the flag.
 */
import Type from 'typebox'
import type { Static, TSchema, TProperties, TObject } from 'typebox'

export type { Static, TSchema }
export { Type }

/** A closed object: unknown fields are reported. */
export function Obj<P extends TProperties>(properties: P, options: Record<string, unknown> = {}): TObject<P> {
  return Type.Object(properties, { additionalProperties: false, ...options })
}

export const Opt = Type.Optional

export function Str(options: Record<string, unknown> = {}) {
  return Type.String(options)
}

/** A non-empty string (Kubernetes `MinLength=1`). */
export function Name(description?: string) {
  return Type.String({ minLength: 1, ...(description === undefined ? {} : { description }) })
}

export function Int(options: Record<string, unknown> = {}) {
  return Type.Integer(options)
}

export function Bool(options: Record<string, unknown> = {}) {
  return Type.Boolean(options)
}

/** A string restricted to `values`; a `type: string` enum, as structural schemas require. */
export function Enum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options })
}

export function List<S extends TSchema>(items: S, options: Record<string, unknown> = {}) {
  return Type.Array(items, options)
}

/** `map[string]string`. */
export function StringMap(options: Record<string, unknown> = {}) {
  return Type.Unsafe<Record<string, string>>({
    type: 'object',
    additionalProperties: { type: 'string' },
    ...options,
  })
}

/** A free-form object kept as written (JSON Schemas, provider properties). */
export function FreeObject(description?: string) {
  return Type.Unsafe<Record<string, unknown>>({
    type: 'object',
    'x-kubernetes-preserve-unknown-fields': true,
    ...(description === undefined ? {} : { description }),
  })
}

/** Any JSON value (a string or a list of messages, a name or an object, ...); the adapter checks the shape. */
export function AnyValue(description?: string) {
  return Type.Unsafe<unknown>({
    'x-kubernetes-preserve-unknown-fields': true,
    ...(description === undefined ? {} : { description }),
  })
}

/** A Kubernetes duration (`5m`, `1h30m`, `720h0m0s`, `30s`, `250ms`). */
export function Duration(options: Record<string, unknown> = {}) {
  return Type.String({ pattern: '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$', ...options })
}

// ---------------------------------------------------------------------------------------------------------
// Shared Kubernetes shapes

export const KeySelector = Obj({
  name: Name('Name of the ConfigMap or Secret in the resource namespace.'),
  key: Name('Key inside it.'),
  optional: Opt(Bool()),
})

export const ServiceRef = Obj({
  name: Name(),
  namespace: Opt(Str()),
  port: Opt(Str({ description: 'Port name; defaults to the only or first port.' })),
  path: Opt(Str({ description: 'Path appended to the address, e.g. `mcp` or `sse`.' })),
})

export const QueryParameterRef = Obj({ name: Name('Name of a parameter of the Query.') })

/** ARK's ValueSource: `value` or `valueFrom` (exactly one; checked by the adapter). */
export const ValueFrom = Obj({
  configMapKeyRef: Opt(KeySelector),
  secretKeyRef: Opt(KeySelector),
  serviceRef: Opt(ServiceRef),
  queryParameterRef: Opt(QueryParameterRef),
})
export const ValueSource = Obj({ value: Opt(Str()), valueFrom: Opt(ValueFrom) })

export const Parameter = Obj({ name: Name(), value: Opt(Str()), valueFrom: Opt(ValueFrom) })

export const Header = Obj({ name: Name(), value: ValueSource })

export const NamespacedRef = Obj({ name: Name(), namespace: Opt(Str()) })

export const LocalRef = Obj({ name: Name() })

export const Condition = Obj({
  type: Str(),
  status: Enum(['True', 'False', 'Unknown']),
  reason: Str(),
  message: Str(),
  lastTransitionTime: Str({ format: 'date-time' }),
  observedGeneration: Opt(Int()),
})

export const Conditions = List(Condition, {
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
})

// RFC 1123 subdomain, as Kubernetes requires for most object names.
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'

/** What we read of `metadata`. The CRD leaves metadata to the apiserver; we check what it would. */
export const ObjectMeta = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN }),
  namespace: Opt(Type.String({ minLength: 1, maxLength: 63, pattern: DNS_LABEL })),
  labels: Opt(StringMap()),
  annotations: Opt(StringMap()),
  uid: Opt(Str()),
  generation: Opt(Int()),
  resourceVersion: Opt(Str()),
  creationTimestamp: Opt(Str()),
  finalizers: Opt(List(Str())),
})
export type ObjectMeta = Static<typeof ObjectMeta>
