import { defOf } from './kinds.ts'
import type { AnyResource, Status } from './resources.ts'

/**
 * Internal status in the resource's own dialect: what a cluster backend PATCHes to the status subresource
 * and what `ark get -o yaml` shows. Kinds without status (ConfigMap, Secret) give undefined.
 */
export function encodeStatus(resource: AnyResource, status: Status): Record<string, unknown> | undefined {
  return defOf(resource.origin)?.toStatus?.(status, resource)
}
