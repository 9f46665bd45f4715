/**
 * controller/store: where resources come from (a manifests folder today, a cluster informer later) and the
 * catalog the gateway reads.
 */
export type {
  DerivedWriter,
  ResourceStore,
  ResourceView,
  StatusUpdate,
  StatusWriter,
  StoreEvent,
  StoreListener,
} from './store.ts'
export { ManifestStore, sameResource } from './store.ts'
export type { Resolved, Target, TargetKind } from './catalog.ts'
export { Catalog } from './catalog.ts'
export type { FileState, ManifestSource, RawDocument, SourceBatch } from './source.ts'
export type { FolderSourceOptions } from './folder.ts'
export { folderSource, readManifests } from './folder.ts'
export type { KubeStoreOptions, Rejection } from './kube-store.ts'
export { KubeStore, collectionPath } from './kube-store.ts'
