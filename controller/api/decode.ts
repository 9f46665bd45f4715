/**
 * One parsed manifest document in, internal resources and problems out. Pure: the same document always
 * decodes the same way, so any store (a folder, a cluster informer) can use it.
 */
import type { AdaptContext } from './define.ts'
import { apiVersionOf } from './define.ts'
import { findKind, knownApiVersionsOf, knownKindsOf } from './kinds.ts'
import type { Problem } from './problems.ts'
import type { AnyResource, Meta, Origin } from './resources.ts'
import { resourceKey } from './resources.ts'
import type { ObjectMeta } from './schema.ts'
import { validateDocument } from './validate.ts'

export interface DocumentInput {
  readonly value: unknown
  readonly file?: string
  readonly index?: number
  readonly line?: number
}

export interface Identity {
  readonly apiVersion: string
  readonly kind: string
  readonly namespace: string
  readonly name: string
}

export interface Decoded {
  readonly resources: AnyResource[]
  readonly problems: Problem[]
  /** Who the document claims to be, even when it was rejected (lets a store keep the last good version). */
  readonly identities: Identity[]
}

/** API groups that ark owns: an unknown kind or version in them is a mistake, not someone else's resource. */
const OWN_GROUPS = new Set(['ark.mckinsey.com', 'arkonis.dev'])

export function decodeDocument(input: DocumentInput, defaultNamespace = 'default'): Decoded {
  const out: Decoded = { resources: [], problems: [], identities: [] }
  decodeInto(out, input, '', defaultNamespace)
  return out
}

function decodeInto(out: Decoded, input: DocumentInput, prefix: string, defaultNamespace: string): void {
  const where = {
    ...(input.file === undefined ? {} : { file: input.file }),
    ...(input.index === undefined ? {} : { index: input.index }),
    ...(input.line === undefined ? {} : { line: input.line }),
  }
  const at = (path: string) => (prefix === '' ? path : path === '' ? prefix.slice(0, -1) : `${prefix}${path}`)
  const doc = input.value
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    out.problems.push({
      ...where,
      severity: 'error',
      ...(prefix === '' ? {} : { path: at('') }),
      message: 'a manifest must be a mapping with apiVersion, kind and metadata',
    })
    return
  }
  const { apiVersion, kind } = doc as { apiVersion?: unknown; kind?: unknown }
  const meta = (doc as { metadata?: unknown }).metadata
  const metaName = typeof meta === 'object' && meta !== null ? (meta as { name?: unknown }).name : undefined
  const name = typeof metaName === 'string' ? metaName : undefined

  if (typeof apiVersion !== 'string' || typeof kind !== 'string') {
    out.problems.push({
      ...where,
      severity: 'error',
      ...(name === undefined ? {} : { name }),
      path: at(typeof apiVersion !== 'string' ? 'apiVersion' : 'kind'),
      message: 'is required',
    })
    return
  }

  // kubectl's `kind: List` (e.g. `kubectl get -o yaml` output).
  if (kind === 'List' && apiVersion === 'v1') {
    const items = (doc as { items?: unknown }).items
    if (!Array.isArray(items)) {
      out.problems.push({ ...where, severity: 'error', kind, path: at('items'), message: 'must be a list' })
      return
    }
    items.forEach((item: unknown, i) => {
      decodeInto(out, { ...input, value: item }, `${prefix}items[${i}].`, defaultNamespace)
    })
    return
  }

  const def = findKind(apiVersion, kind)
  if (def === undefined) {
    const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : ''
    const versions = knownApiVersionsOf(kind)
    const kinds = knownKindsOf(apiVersion)
    let message: string
    let severity: Problem['severity'] = 'error'
    if (versions.length > 0) {
      message = `apiVersion ${apiVersion} does not serve ${kind}; use ${versions.join(' or ')}`
    } else if (kinds.length > 0) {
      message = `kind ${kind} is not part of ${apiVersion}; it has ${kinds.join(', ')}`
    } else if (OWN_GROUPS.has(group)) {
      message = `unknown apiVersion ${apiVersion}`
    } else {
      severity = 'warning'
      message = `${apiVersion} ${kind} is not a kind ark reads; ignored`
    }
    out.problems.push({
      ...where,
      severity,
      kind,
      ...(name === undefined ? {} : { name }),
      path: at(versions.length > 0 || kinds.length === 0 ? 'apiVersion' : 'kind'),
      message,
    })
    return
  }

  const rawNs =
    typeof meta === 'object' && meta !== null ? (meta as { namespace?: unknown }).namespace : undefined
  const namespace = typeof rawNs === 'string' && rawNs !== '' ? rawNs : defaultNamespace
  const subject = { kind, namespace, ...(name === undefined ? {} : { name }) }
  if (name !== undefined) out.identities.push({ apiVersion, kind, namespace, name })

  const { value, issues } = validateDocument(def, doc)
  let rejected = false
  for (const issue of issues) {
    if (issue.severity === 'error') rejected = true
    out.problems.push({
      ...where,
      ...subject,
      severity: issue.severity,
      path: at(issue.path),
      message: issue.message,
    })
  }
  if (rejected || name === undefined) return

  const validated = value as { metadata: ObjectMeta } & Record<string, unknown>
  const adapterErrors: Problem[] = []
  const ctx: AdaptContext = {
    namespace,
    name,
    meta: validated.metadata,
    error(path, message) {
      adapterErrors.push({ ...where, ...subject, severity: 'error', path: at(path), message })
    },
    warn(path, message) {
      out.problems.push({ ...where, ...subject, severity: 'warning', path: at(path), message })
    },
  }
  const adapted = def.adapt(validated, ctx)
  if (adapterErrors.length > 0) {
    out.problems.push(...adapterErrors)
    return
  }

  const m = validated.metadata
  const resourceMeta: Meta = {
    labels: { ...m.labels },
    annotations: { ...m.annotations },
    ...(m.uid === undefined ? {} : { uid: m.uid }),
    ...(m.generation === undefined ? {} : { generation: m.generation }),
    ...(m.resourceVersion === undefined ? {} : { resourceVersion: m.resourceVersion }),
    ...(m.creationTimestamp === undefined ? {} : { creationTimestamp: m.creationTimestamp }),
  }
  const origin: Origin = {
    apiVersion: apiVersionOf(def),
    kind: def.kind,
    ...(input.file === undefined ? {} : { file: input.file }),
    ...(input.index === undefined ? {} : { index: input.index }),
  }
  const key = resourceKey(def.internal, namespace, name)
  out.resources.push({
    kind: def.internal,
    key,
    ref: { namespace, name },
    meta: resourceMeta,
    origin,
    spec: adapted.spec,
  } as AnyResource)
  for (const g of adapted.generated ?? []) {
    out.resources.push({
      kind: g.kind,
      key: resourceKey(g.kind, g.ref.namespace, g.ref.name),
      ref: g.ref,
      meta: { labels: { ...m.labels }, annotations: {} },
      origin: { ...origin, ownerKey: key },
      spec: g.spec,
    } as AnyResource)
  }
}
