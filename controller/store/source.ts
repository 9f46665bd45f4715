import type { Problem } from '../api/problems.ts'

/** One YAML/JSON document of a file, before it is decoded into a resource. */
export interface RawDocument {
  /** 0-based position of the document in its file. */
  readonly index: number
  /** 1-based line where the document starts. */
  readonly line: number
  /** The parsed value (plain JSON-compatible data); `null` for an empty document. */
  readonly value: unknown
}

/** What one file holds right now. */
export type FileState =
  | {
      readonly file: string
      readonly status: 'loaded'
      readonly documents: readonly RawDocument[]
      /** Problems of the file itself (a YAML syntax error in one document, ...). */
      readonly problems: readonly Problem[]
    }
  /**
   * The file exists but could not be read as a whole (too large, unreadable, YAML stream broken before any
   * document could be separated). Whoever consumes this keeps what the file last held, as Kubernetes keeps
   * the last applied object when a new apply is rejected.
   */
  | { readonly file: string; readonly status: 'unreadable'; readonly problems: readonly Problem[] }
  | { readonly file: string; readonly status: 'removed' }

/** A set of file changes observed together (one scan). */
export interface SourceBatch {
  readonly changes: readonly FileState[]
  /** Problems of the folder itself (symlink loops, unreadable directories). Replaces the previous list. */
  readonly folderProblems: readonly Problem[]
}

/**
 * A folder of manifests, read recursively and watched. The first batch (delivered before `start()`
 * resolves) holds every file; later batches hold only the files that changed.
 */
export interface ManifestSource {
  start(onBatch: (batch: SourceBatch) => void): Promise<void>
  /** Rescan now (used by tests and by a SIGHUP handler); resolves when the resulting batch was delivered. */
  rescan(): Promise<void>
  close(): Promise<void>
}
