/**
 * controller: the control plane. Two separate steps, so that the data plane never writes status:
 * - opening a catalog from a source (a manifests folder here; a cluster through kube/) gives the read-only
 *   view gateways and workers use;
 * - starting reconcilers over that catalog, with a StatusWriter, is what only the control plane (and, with
 *   a folder, each process for its own in-memory status) does.
 * `startControlPlane` does both for a folder: `ark validate`, `ark get` and `ark dev` start there.
 */
import type { FolderSourceOptions, StatusWriter } from './store/index.ts'
import { Catalog, ManifestStore, folderSource } from './store/index.ts'
import type { Capabilities, ReconcileMetrics } from './reconcile/index.ts'
import { AvailabilityController } from './reconcile/index.ts'

export interface FolderCatalog {
  readonly store: ManifestStore
  readonly catalog: Catalog
  /** Rescans the folder; resolves when the changes it found were delivered. */
  refresh(): Promise<void>
  close(): Promise<void>
}

export interface CatalogOptions extends FolderSourceOptions {
  readonly defaultNamespace?: string
}

/** A manifests folder, read (and followed) into a catalog. Nothing is reconciled. */
export async function openFolderCatalog(
  manifests: string,
  options: CatalogOptions = {},
): Promise<FolderCatalog> {
  const ns = options.defaultNamespace === undefined ? {} : { defaultNamespace: options.defaultNamespace }
  const store = new ManifestStore(folderSource(manifests, options), ns)
  await store.start()
  const catalog = new Catalog(store, ns)
  return {
    store,
    catalog,
    refresh: () => store.refresh(),
    async close() {
      catalog.close()
      await store.close()
    },
  }
}

export interface Reconcilers {
  readonly availability: AvailabilityController
  /** Resolves when no reconcile is pending. */
  settled(): Promise<void>
  close(): void
}

export interface ReconcilerOptions {
  readonly capabilities?: Capabilities
  readonly metrics?: ReconcileMetrics
  readonly onError?: (key: string, err: unknown) => void
}

/** The reconcilers every control plane runs; resolves when their first pass has converged. */
export async function startReconcilers(
  catalog: Catalog,
  writer: StatusWriter,
  options: ReconcilerOptions = {},
): Promise<Reconcilers> {
  const availability = new AvailabilityController(catalog, writer, options)
  await availability.start()
  return {
    availability,
    settled: () => availability.idle(),
    close: () => availability.close(),
  }
}

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

export interface ControlPlaneOptions extends CatalogOptions {
  readonly capabilities?: Capabilities
}

/** A folder's catalog with its reconcilers, writing status into the folder store's memory. */
export async function startControlPlane(
  manifests: string,
  options: ControlPlaneOptions = {},
): Promise<ControlPlane> {
  const opened = await openFolderCatalog(manifests, options)
  const reconcilers = await startReconcilers(
    opened.catalog,
    opened.store,
    options.capabilities === undefined ? {} : { capabilities: options.capabilities },
  )
  return {
    store: opened.store,
    catalog: opened.catalog,
    availability: reconcilers.availability,
    async refresh() {
      await opened.refresh()
      await reconcilers.settled()
    },
    settled: () => reconcilers.settled(),
    async close() {
      reconcilers.close()
      await opened.close()
    },
  }
}

export * from './store/index.ts'
export * from './reconcile/index.ts'
