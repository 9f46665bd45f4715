/**
 * controller: the control plane. One call wires a manifests folder into a store, a catalog and the
 * reconcilers; `ark validate`, `ark get` and (later) `ark dev` all start here.
 */
import type { FolderSourceOptions } from './store/index.ts'
import { Catalog, ManifestStore, folderSource } from './store/index.ts'
import type { Capabilities } from './reconcile/index.ts'
import { AvailabilityController } from './reconcile/index.ts'

export interface ControlPlane {
  readonly store: ManifestStore
  readonly catalog: Catalog
  readonly availability: AvailabilityController
  /** Rescans the folder and waits until every reconcile it caused has finished. */
  refresh(): Promise<void>
  /** Resolves when no reconcile is pending. */
  settled(): Promise<void>
  close(): Promise<void>
}

export interface ControlPlaneOptions extends FolderSourceOptions {
  readonly defaultNamespace?: string
  readonly capabilities?: Capabilities
}

export async function startControlPlane(
  manifests: string,
  options: ControlPlaneOptions = {},
): Promise<ControlPlane> {
  const ns = options.defaultNamespace === undefined ? {} : { defaultNamespace: options.defaultNamespace }
  const store = new ManifestStore(folderSource(manifests, options), ns)
  await store.start()
  const catalog = new Catalog(store, ns)
  const availability = new AvailabilityController(
    catalog,
    options.capabilities === undefined ? {} : { capabilities: options.capabilities },
  )
  await availability.start()
  return {
    store,
    catalog,
    availability,
    async refresh() {
      await store.refresh()
      await availability.idle()
    },
    settled: () => availability.idle(),
    async close() {
      availability.close()
      catalog.close()
      await store.close()
    },
  }
}

export * from './store/index.ts'
export * from './reconcile/index.ts'
