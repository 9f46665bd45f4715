/**
 * How a kind of one dialect is described: its names, its schema (the single source of validation, types and
 * CRD), the pure adapter into the internal model, and the way internal status is written back.
 */
import type { Static, TObject, TProperties } from 'typebox'
import type { ObjectMeta } from './schema.ts'
import type { AnyResource, Kind, ObjectRef, SpecOf, Status } from './resources.ts'

export interface PrinterColumn {
  readonly name: string
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'date'
  readonly jsonPath: string
  readonly description?: string
  readonly priority?: number
}

/** Handed to an adapter: where the document is, and a way to report what is wrong with it. */
export interface AdaptContext {
  readonly namespace: string
  readonly name: string
  readonly meta: ObjectMeta
  /** The document cannot be used: it is rejected with this problem. */
  error(path: string, message: string): void
  /** The document is used, but something in it is ignored or suspicious. */
  warn(path: string, message: string): void
}

/** A resource an adapter creates beside the one it adapts (an ArkTeam's inline roles become Agents). */
export interface Generated<K extends Kind = Kind> {
  readonly kind: K
  readonly ref: ObjectRef
  readonly spec: SpecOf[K]
}

export interface Adapted<K extends Kind> {
  readonly spec: SpecOf[K]
  readonly generated?: readonly Generated[]
}

export interface KindDef<K extends Kind = Kind, P extends TProperties = TProperties> {
  readonly group: string
  readonly version: string
  readonly kind: string
  readonly plural: string
  readonly shortNames?: readonly string[]
  readonly internal: K
  /** Top-level fields besides apiVersion/kind/metadata (`spec` and `status`, or a ConfigMap's `data`). */
  readonly body: TObject<P>
  /** Served by a CRD (false for core kinds we only read). */
  readonly crd: boolean
  readonly printerColumns?: readonly PrinterColumn[]
  /** Paths for the scale subresource (`kubectl scale`). */
  readonly scale?: { readonly specReplicasPath: string; readonly statusReplicasPath: string }
  readonly adapt: (doc: Static<TObject<P>>, ctx: AdaptContext) => Adapted<K>
  /** Internal status as this dialect writes it. Absent: the kind has no status. */
  readonly toStatus?: (status: Status, resource: AnyResource) => Record<string, unknown>
}

export function apiVersionOf(def: Pick<KindDef, 'group' | 'version'>): string {
  return def.group === '' ? def.version : `${def.group}/${def.version}`
}

/** Identity helper that keeps the body's static type flowing into `adapt`. */
export function defineKind<K extends Kind, P extends TProperties>(def: KindDef<K, P>): KindDef<K, P> {
  return def
}
