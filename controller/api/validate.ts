/**
 * Schema validation of whole documents, with errors a person can act on: the field path in the document's
 * own terms (`spec.tools[0].method`), what was expected, and what was found.
 */
import { Compile } from 'typebox/compile'
import Value from 'typebox/value'
import type { TSchema } from 'typebox'
import type { KindDef } from './define.ts'
import { ObjectMeta, Obj, Str } from './schema.ts'

export interface FieldIssue {
  readonly severity: 'error' | 'warning'
  readonly path: string
  readonly message: string
}

export interface TypeBoxError {
  readonly keyword: string
  readonly instancePath: string
  readonly params: Record<string, unknown>
  readonly message: string
}

type Validator = ReturnType<typeof Compile>

const compiled = new WeakMap<KindDef, { schema: TSchema; validator: Validator }>()

/** The whole document's schema: apiVersion, kind, metadata and the kind's body. */
export function documentSchema(def: KindDef): TSchema {
  return Obj({ apiVersion: Str(), kind: Str(), metadata: ObjectMeta, ...def.body.properties })
}

function compiledFor(def: KindDef) {
  let c = compiled.get(def)
  if (c === undefined) {
    const schema = documentSchema(def)
    c = { schema, validator: Compile(schema) }
    compiled.set(def, c)
  }
  return c
}

/**
 * Checks `doc` against the kind's schema. Returns the document with schema defaults applied, and the issues.
 * Unknown fields are warnings (Kubernetes prunes them); everything else is an error.
 */
export function validateDocument(def: KindDef, doc: unknown): { value: unknown; issues: FieldIssue[] } {
  const { schema, validator } = compiledFor(def)
  const value = Value.Default(schema, withoutStatus(def, Value.Clone(doc)))
  if (validator.Check(value)) return { value, issues: [] }
  const showValues = def.kind !== 'Secret'
  const issues = describeSchemaErrors(validator.Errors(value), value, { showValues })
  return { value, issues }
}

/**
 * `status` belongs to the controller: with the status subresource the apiserver ignores it on create and
 * update, and so do we (seed 002 shows a manifest with a status block, without lastTransitionTime).
 */
function withoutStatus(def: KindDef, doc: unknown): unknown {
  if (def.crd && typeof doc === 'object' && doc !== null && 'status' in doc) {
    const rest: Record<string, unknown> = { ...(doc as Record<string, unknown>) }
    delete rest.status
    return rest
  }
  return doc
}

/** JSON pointer `/spec/tools/0/name` to `spec.tools[0].name`. */
export function pointerToPath(pointer: string): string {
  let out = ''
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (/^[0-9]+$/.test(seg)) out += `[${seg}]`
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) out += out === '' ? seg : `.${seg}`
    else out += `[${JSON.stringify(seg)}]`
  }
  return out
}

function join(path: string, key: string): string {
  return pointerToPath(`${path}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`)
}

/**
 * TypeBox errors to issues a person can act on. Shared with the gateway, which validates tool arguments and
 * request bodies against JSON Schemas the same way. Unknown fields are warnings for documents (Kubernetes
 * prunes them) and errors where a closed schema means the field cannot be used (tool arguments).
 */
export function describeSchemaErrors(
  errors: readonly TypeBoxError[],
  doc: unknown,
  options: { showValues: boolean; unknownFields?: 'warning' | 'error' },
): FieldIssue[] {
  const { showValues } = options
  const unknownSeverity = options.unknownFields ?? 'warning'
  const out: FieldIssue[] = []
  const seen = new Set<string>()
  const add = (issue: FieldIssue) => {
    const id = `${issue.path}|${issue.message}`
    if (!seen.has(id)) {
      seen.add(id)
      out.push(issue)
    }
  }
  // A closed object reports an unknown field twice: `additionalProperties` on the object and `boolean`
  // (schema false) on the field. A map whose values have the wrong type reports `additionalProperties` too,
  // with the real error on the value; so only fields that also have the `boolean` report are unknown.
  const unknownFields = new Set(errors.filter((e) => e.keyword === 'boolean').map((e) => e.instancePath))
  for (const e of errors) {
    const path = pointerToPath(e.instancePath)
    const got = showValues ? gotText(doc, e.instancePath) : ''
    switch (e.keyword) {
      case 'boolean':
        // Emitted beside `additionalProperties` for the same field; that one carries the report.
        break
      case 'additionalProperties':
        for (const key of (e.params.additionalProperties as string[] | undefined) ?? []) {
          if (!unknownFields.has(`${e.instancePath}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`))
            continue
          add({
            severity: unknownSeverity,
            path: join(e.instancePath, key),
            message: unknownSeverity === 'warning' ? 'unknown field, ignored' : 'unknown field',
          })
        }
        break
      case 'required':
        for (const key of (e.params.requiredProperties as string[] | undefined) ?? []) {
          add({ severity: 'error', path: join(e.instancePath, key), message: 'is required' })
        }
        break
      case 'type':
        add({ severity: 'error', path, message: `must be ${article(String(e.params.type))}${got}` })
        break
      case 'enum':
        add({
          severity: 'error',
          path,
          message: `must be one of ${((e.params.allowedValues as unknown[] | undefined) ?? []).map((v) => JSON.stringify(v)).join(', ')}${got}`,
        })
        break
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        add({
          severity: 'error',
          path,
          message: `must be ${String(e.params.comparison)} ${String(e.params.limit)}${got}`,
        })
        break
      case 'minLength':
        add({
          severity: 'error',
          path,
          message:
            e.params.limit === 1
              ? 'must not be empty'
              : `must be at least ${String(e.params.limit)} characters`,
        })
        break
      case 'maxLength':
        add({ severity: 'error', path, message: `must be at most ${String(e.params.limit)} characters` })
        break
      case 'minItems':
        add({ severity: 'error', path, message: `must have at least ${String(e.params.limit)} item(s)` })
        break
      case 'pattern':
        add({ severity: 'error', path, message: `${patternHint(String(e.params.pattern))}${got}` })
        break
      default:
        add({ severity: 'error', path, message: `${e.message}${got}` })
    }
  }
  return out
}

const HINTS: Record<string, string> = {
  '^https?://': 'must be an http:// or https:// URL',
  '^https://': 'must be an https:// URL',
  '^[a-f0-9]{64}$': 'must be a sha256 digest: 64 lowercase hex characters',
}

function patternHint(pattern: string): string {
  const hint = HINTS[pattern]
  if (hint !== undefined) return hint
  if (pattern.includes('(ns|us|µs|ms|s|m|h)')) return 'must be a duration like 30s, 5m or 1h30m'
  if (pattern.startsWith('^[a-z0-9]([-a-z0-9]*[a-z0-9])?')) {
    return 'must be a lowercase RFC 1123 name: letters, digits and -, starting and ending with a letter or digit'
  }
  return `must match ${pattern}`
}

function article(type: string): string {
  const names: Record<string, string> = {
    string: 'a string',
    integer: 'an integer',
    number: 'a number',
    boolean: 'true or false',
    array: 'a list',
    object: 'an object (a map)',
  }
  return names[type] ?? type
}

/** `, got 51`: short, and only for kinds whose values may be shown. */
function gotText(doc: unknown, pointer: string): string {
  const v: unknown = Value.Pointer.Get(doc, pointer)
  if (v === undefined) return ''
  let text = Array.isArray(v)
    ? 'a list'
    : typeof v === 'object' && v !== null
      ? 'an object'
      : JSON.stringify(v)
  if (text.length > 60) text = `${text.slice(0, 57)}...`
  return `, got ${text}`
}
