/**
 * controller/api: the resource model. Imports nothing else of ark; everyone may import it.
 *
 * - resources.ts: the one internal, dialect-neutral model (what everything downstream uses)
 * - ark/, arkonis/, core/: each dialect's kinds: schema, adapter, status writer
 * - decode.ts: a parsed document to internal resources, with located problems
 * - crd.ts: CustomResourceDefinitions generated from the same schemas
 */
export * from './resources.ts'
export type { Problem } from './problems.ts'
export { formatProblem } from './problems.ts'
export type { Decoded, DocumentInput, Identity } from './decode.ts'
export { decodeDocument } from './decode.ts'
export type { KindDef, PrinterColumn } from './define.ts'
export { apiVersionOf } from './define.ts'
export { KIND_DEFS, defOf, findKind } from './kinds.ts'
export { decodeStatus, encodeStatus } from './status.ts'
export { generateCrds, crdFileName, renderCrd } from './crd.ts'
export { formatDuration, parseDuration } from './adapt.ts'
export { base64Bytes } from './base64.ts'
export { DEFAULT_LIMITS } from './arkonis/group.ts'
export type { Reference } from './references.ts'
export { referencesOf } from './references.ts'
export type { FieldIssue, TypeBoxError } from './validate.ts'
export { describeSchemaErrors } from './validate.ts'
