/**
 * Resources read from a cluster instead of a folder, for `ark gateway`, `ark worker` and `ark get` with
 * --kubeconfig: a KubeStore and its catalog, read-only. Status comes from the cluster, as `ark controller`
 * (the only writer) left it; nothing here reconciles or writes. The data plane has no use for Queries and
 * Evaluations, so it does not watch them.
 */
import type { KindDef } from '../controller/api/index.ts'
import { Catalog, KubeStore } from '../controller/index.ts'
import { KubeClient } from '../controller/kube/client.ts'
import type { EmbeddedCatalog } from './embedded.ts'

/** A cluster's catalog, read-only; `refresh` and `settled` resolve at once (the watch is the refresh). */
export interface ClusterCatalog extends EmbeddedCatalog {
  /** Where it reads from, for logs. */
  readonly server: string
}

const CONTROL_PLANE_ONLY = new Set(['Query', 'Evaluation'])

export async function openClusterCatalog(options: {
  /** Absent: KUBECONFIG, ~/.kube/config, else the pod's ServiceAccount. */
  readonly kubeconfig?: string
  readonly namespaces?: readonly string[]
  /** The data plane skips Queries and Evaluations (default true). */
  readonly dataPlane?: boolean
  readonly onError?: (path: string, err: unknown) => void
}): Promise<ClusterCatalog> {
  const client = await KubeClient.connect({ path: options.kubeconfig })
  const store = new KubeStore(client, {
    ...(options.namespaces === undefined ? {} : { namespaces: options.namespaces }),
    ...(options.dataPlane === false ? {} : { kinds: (d: KindDef) => !CONTROL_PLANE_ONLY.has(d.internal) }),
    ...(options.onError === undefined ? {} : { onError: options.onError }),
  })
  await store.start()
  const catalog = new Catalog(store)
  return {
    store,
    catalog,
    server: client.server.origin,
    settled: () => Promise.resolve(),
    refresh: () => Promise.resolve(),
    async close() {
      catalog.close()
      await store.close()
      client.close()
    },
  }
}
