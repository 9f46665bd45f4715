/**
 * Small pure conversions shared by the dialect adapters: value sources, parameters, references, durations.
 * Each takes the field path it reads so that a problem names the exact place in the user's document.
 */
import type { Static } from 'typebox'
import type { AdaptContext } from './define.ts'
import type {
  Condition,
  KeyRef,
  NamedValue,
  ObjectRef,
  ProviderType,
  Status,
  ValueSource as InternalValueSource,
} from './resources.ts'
import type { Header, KeySelector, Parameter, ValueFrom, ValueSource } from './schema.ts'

type ValueFromDoc = Static<typeof ValueFrom>

function keyRef(k: Static<typeof KeySelector>): KeyRef {
  return k.optional === undefined
    ? { name: k.name, key: k.key }
    : { name: k.name, key: k.key, optional: k.optional }
}

/** `valueFrom` must name exactly one source. */
export function valueFrom(v: ValueFromDoc, path: string, ctx: AdaptContext): InternalValueSource | undefined {
  const sources = (['configMapKeyRef', 'secretKeyRef', 'serviceRef', 'queryParameterRef'] as const).filter(
    (k) => v[k] !== undefined,
  )
  if (sources.length !== 1) {
    ctx.error(
      path,
      sources.length === 0
        ? 'must set one of configMapKeyRef, secretKeyRef, serviceRef, queryParameterRef'
        : `sets ${sources.join(' and ')}; set exactly one`,
    )
    return undefined
  }
  if (v.configMapKeyRef) return { configMapKeyRef: keyRef(v.configMapKeyRef) }
  if (v.secretKeyRef) return { secretKeyRef: keyRef(v.secretKeyRef) }
  if (v.queryParameterRef) return { queryParameterRef: { name: v.queryParameterRef.name } }
  if (v.serviceRef) return { serviceRef: { ...v.serviceRef } }
  return undefined
}

/** `{value}` or `{valueFrom}`, exactly one. */
export function valueSource(
  v: { value?: string | undefined; valueFrom?: ValueFromDoc | undefined },
  path: string,
  ctx: AdaptContext,
): InternalValueSource | undefined {
  if (v.value !== undefined && v.valueFrom !== undefined) {
    ctx.error(path, 'sets both value and valueFrom; set one')
    return undefined
  }
  if (v.value !== undefined) return { value: v.value }
  if (v.valueFrom !== undefined) return valueFrom(v.valueFrom, `${path}.valueFrom`, ctx)
  ctx.error(path, 'must set value or valueFrom')
  return undefined
}

export function optionalValueSource(
  v: Static<typeof ValueSource> | undefined,
  path: string,
  ctx: AdaptContext,
): InternalValueSource | undefined {
  return v === undefined ? undefined : valueSource(v, path, ctx)
}

/** Named values must have unique names: the second `foo` would silently win otherwise. */
export function parameters(
  list: readonly Static<typeof Parameter>[] | undefined,
  path: string,
  ctx: AdaptContext,
): NamedValue[] {
  const out: NamedValue[] = []
  const seen = new Set<string>()
  ;(list ?? []).forEach((p, i) => {
    if (seen.has(p.name)) ctx.error(`${path}[${i}].name`, `duplicate name "${p.name}"`)
    seen.add(p.name)
    const source = valueSource(p, `${path}[${i}]`, ctx)
    if (source !== undefined) out.push({ name: p.name, source })
  })
  return out
}

export function headers(
  list: readonly Static<typeof Header>[] | undefined,
  path: string,
  ctx: AdaptContext,
): NamedValue[] {
  return (list ?? []).flatMap((h, i) => {
    const source = valueSource(h.value, `${path}[${i}].value`, ctx)
    return source === undefined ? [] : [{ name: h.name, source }]
  })
}

/** A map of ValueSources (ARK model `properties`). */
export function valueMap(
  map: Readonly<Record<string, Static<typeof ValueSource>>> | undefined,
  path: string,
  ctx: AdaptContext,
): NamedValue[] {
  return Object.entries(map ?? {}).flatMap(([name, v]) => {
    const source = valueSource(v, `${path}.${name}`, ctx)
    return source === undefined ? [] : [{ name, source }]
  })
}

export function ref(r: { name: string; namespace?: string | undefined }, ctx: AdaptContext): ObjectRef {
  return { namespace: r.namespace ?? ctx.namespace, name: r.name }
}

export function localRef(name: string, ctx: AdaptContext): ObjectRef {
  return { namespace: ctx.namespace, name }
}

const UNIT_SECONDS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }

/** Kubernetes/Go duration (`5m0s`, `720h`, `1.5h`, `250ms`) to seconds; the schema already checked the syntax. */
export function parseDuration(text: string): number {
  let total = 0
  for (const [, amount, unit] of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(amount) * (UNIT_SECONDS[unit ?? ''] ?? 0)
  }
  return total
}

/** Seconds to a Go-style duration, as Kubernetes prints them (`5m0s`, `720h0m0s`, `3.070165248s`). */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${trim(seconds)}s`
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds - h * 3600 - m * 60
  return `${h > 0 ? `${h}h` : ''}${m}m${trim(s)}s`
}

function trim(n: number): string {
  return Number(n.toFixed(9)).toString()
}

/**
 * Provider auto-detection for a bare model id, as ark-operator documents it: gpt-4o, gpt-4-turbo, o1-*, o3-*
 * go to OpenAI; claude-* to Anthropic; `mock` to the deterministic mock; anything else (llama3.2, mistral)
 * to an OpenAI-compatible server (OPENAI_BASE_URL).
 */
export function detectProvider(modelId: string): ProviderType {
  const id = modelId.toLowerCase()
  if (id === 'mock' || id.startsWith('mock-')) return 'mock'
  if (id.startsWith('claude')) return 'anthropic'
  return 'openai'
}

/** Renames the internal `Available` condition to the name a dialect uses for it. */
export function conditionsAs(status: Status, available: string): Record<string, unknown>[] {
  return status.conditions.map((c: Condition) => ({
    ...c,
    type: c.type === 'Available' ? available : c.type,
  }))
}
