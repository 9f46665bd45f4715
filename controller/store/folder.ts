/**
 * A folder of manifests on disk as a `ManifestSource`: walked recursively, parsed as multi-document YAML
 * (parse.ts, within its limits; large files in a worker thread, parse-thread.ts), and watched. Every scan is
 * level-based, as in controller-runtime: it lists the whole folder and diffs it against what was delivered
 * before, so fs events only say "look again" and their content is never trusted.
 * Only `node:fs`, `node:fs/promises`, `node:path`, `node:worker_threads` and Web globals (TextDecoder,
 * crypto.subtle) are used, so that the module runs on Deno as well (checked with Deno 2.9, including the
 * recursive fs watch and the parse worker).
 */
import { constants, watch, type Dirent, type FSWatcher, type Stats } from 'node:fs'
import { lstat, open, readdir, readlink, realpath, stat, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import type { Problem } from '../api/problems.ts'
import { ManifestParser } from './parse-thread.ts'
import type { FileState, ManifestSource, SourceBatch } from './source.ts'

export interface FolderSourceOptions {
  /** Max bytes per manifest file; default 3 MiB (kube-apiserver's own request limit). */
  maxFileBytes?: number
  /** Also rescan on this interval as a safety net for missed fs events; default 2000 ms; 0 disables. */
  pollIntervalMs?: number
  /** Quiet period to coalesce bursts of fs events (editors write files in several steps); default 50 ms. */
  debounceMs?: number
  /** Watch for changes at all (false for one-shot loads like `ark validate`); default true. */
  watch?: boolean
  /**
   * Called with errors that are not the folder's fault and must not stop the source: a throwing batch
   * listener, a failing fs watcher (the source falls back to polling). Default: ignore.
   */
  onError?: (err: unknown) => void
}

const MiB = 1024 * 1024
const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json']
/** A burst of fs events that never pauses still gets a scan after this many debounce periods. */
const MAX_DEBOUNCE_PERIODS = 20
/**
 * A file modified this recently may be written again within the same timestamp tick (coarse kernel clocks,
 * 2 s on FAT) with the same size, leaving (size, mtime, ino) unchanged: such "racily clean" stamps are not
 * trusted and the file is re-read (and hashed) on the next scan, as git does for its index.
 */
const RACY_WINDOW_MS = 2000

export function folderSource(root: string, options: FolderSourceOptions = {}): ManifestSource {
  return new FolderSource(root, options)
}

/** One-shot read of a folder or single file, no watching. */
export async function readManifests(
  pathToFolderOrFile: string,
  options: Pick<FolderSourceOptions, 'maxFileBytes' | 'onError'> = {},
): Promise<SourceBatch> {
  const source = folderSource(pathToFolderOrFile, { ...options, watch: false })
  const batches: SourceBatch[] = []
  await source.start((batch) => batches.push(batch))
  await source.close()
  // start() always delivers a first batch; the fallback only keeps the types honest.
  return batches[0] ?? { changes: [], folderProblems: [] }
}

/** What decides whether a file must be read again. */
interface Stamp {
  readonly size: number
  readonly mtimeMs: number
  readonly ino: number
}

/** A manifest file found by a scan. */
interface FoundFile {
  readonly abs: string
  readonly stamp: Stamp
}

/** What a scan saw on disk, before any file was read. */
interface Listing {
  /** Keyed by the file's name in `FileState` (relative to the root with `/`, or the root itself). */
  readonly files: Map<string, FoundFile>
  readonly problems: Problem[]
}

/** What the source last delivered for a file. */
interface KnownFile {
  readonly stamp: Stamp
  /** The stamp cannot be trusted yet (see RACY_WINDOW_MS). */
  readonly racy: boolean
  /** Identifies the delivered state: a content hash, or the reason the file could not be read. */
  readonly hash: string
}

type Loaded =
  { readonly kind: 'gone' } | { readonly kind: 'read'; readonly hash: string; readonly state: FileState }

interface WatchTarget {
  readonly dir: string
  readonly recursive: boolean
  /** When the root is a single file its folder is watched (editors replace files by renaming over them). */
  readonly onlyName?: string
  /** Identity of the watched folder: a folder deleted and recreated needs a new watcher. */
  readonly key: string
}

class FolderSource implements ManifestSource {
  readonly #root: string
  readonly #maxFileBytes: number
  readonly #pollIntervalMs: number
  readonly #debounceMs: number
  readonly #watch: boolean
  readonly #onError: (err: unknown) => void
  readonly #parser = new ManifestParser()

  #listener: ((batch: SourceBatch) => void) | undefined
  #closed = false
  readonly #known = new Map<string, KnownFile>()
  /** Folder problems of the last delivered batch, serialized; undefined before the first batch. */
  #deliveredProblems: string | undefined

  /** The scan in progress, and the one that will run right after it: scans never overlap. */
  #running: Promise<void> | undefined
  #queued: Promise<void> | undefined

  #watcher: { readonly fsWatcher: FSWatcher; readonly key: string } | undefined
  /** fs.watch is unsupported here or failed: rely on polling from now on. */
  #watchBroken = false
  #debounceTimer: ReturnType<typeof setTimeout> | undefined
  #burstStartedAt: number | undefined
  #pollTimer: ReturnType<typeof setInterval> | undefined

  constructor(root: string, options: FolderSourceOptions) {
    this.#root = root
    this.#maxFileBytes = options.maxFileBytes ?? 3 * MiB
    this.#pollIntervalMs = options.pollIntervalMs ?? 2000
    this.#debounceMs = options.debounceMs ?? 50
    this.#watch = options.watch ?? true
    this.#onError = options.onError ?? (() => undefined)
  }

  async start(onBatch: (batch: SourceBatch) => void): Promise<void> {
    if (this.#listener !== undefined) throw new Error('folderSource: start() was already called')
    if (this.#closed) throw new Error('folderSource: start() after close()')
    this.#listener = onBatch
    // Started first so that close() during the first scan clears it; a tick during a scan just queues one.
    if (this.#watch && this.#pollIntervalMs > 0) {
      this.#pollTimer = setInterval(() => void this.#requestScan(), this.#pollIntervalMs)
    }
    await this.#requestScan()
  }

  async rescan(): Promise<void> {
    if (this.#listener === undefined && !this.#closed)
      throw new Error('folderSource: rescan() before start()')
    await this.#requestScan()
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#debounceTimer)
    clearInterval(this.#pollTimer)
    this.#stopWatcher()
    // Also ends a parse in flight, so that the scan under way finishes without waiting for it.
    await this.#parser.close()
    // A scan already under way finishes (it delivers nothing now), so nothing runs after close resolves.
    await (this.#queued ?? this.#running)
  }

  /** Runs a scan now, or once more after the running one if a scan is in progress. Never rejects. */
  #requestScan(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    if (this.#queued !== undefined) return this.#queued
    if (this.#running !== undefined) {
      // The running scan may have listed the folder before the change that prompted this request.
      this.#queued = this.#running.then(() => {
        this.#queued = undefined
        return this.#requestScan()
      })
      return this.#queued
    }
    this.#running = this.#scan().finally(() => {
      this.#running = undefined
    })
    return this.#running
  }

  async #scan(): Promise<void> {
    try {
      await this.#syncWatcher()
      const startedAt = Date.now()
      const listing = await listRoot(this.#root)
      const changes = await this.#diff(listing.files, startedAt)
      this.#deliver({ changes, folderProblems: listing.problems })
    } catch (err) {
      // Not expected (every fs error is turned into a problem), but a bug must not kill the source.
      this.#onError(err)
    }
  }

  /** Compares the listing with what was delivered, reading only files whose stamp changed. */
  async #diff(found: Map<string, FoundFile>, startedAt: number): Promise<FileState[]> {
    const files = [...new Set([...this.#known.keys(), ...found.keys()])].sort(compareStrings)
    const changes: FileState[] = []
    for (const file of files) {
      const change = await this.#diffFile(file, found.get(file), startedAt)
      if (change !== undefined) changes.push(change)
    }
    return changes
  }

  async #diffFile(
    file: string,
    found: FoundFile | undefined,
    startedAt: number,
  ): Promise<FileState | undefined> {
    const known = this.#known.get(file)
    if (found === undefined) return this.#forget(file)
    if (known !== undefined && !known.racy && sameStamp(known.stamp, found.stamp)) return undefined
    const loaded = await loadFile(file, found, this.#maxFileBytes, this.#parser)
    // Deleted between the listing and the read: the file is simply not there any more.
    if (loaded.kind === 'gone') return this.#forget(file)
    const racy = found.stamp.mtimeMs >= startedAt - RACY_WINDOW_MS
    this.#known.set(file, { stamp: found.stamp, racy, hash: loaded.hash })
    // Touched or rewritten with the same bytes: nothing to tell.
    return known?.hash === loaded.hash ? undefined : loaded.state
  }

  #forget(file: string): FileState | undefined {
    if (!this.#known.delete(file)) return undefined
    return { file, status: 'removed' }
  }

  #deliver(batch: SourceBatch): void {
    const problems = JSON.stringify(batch.folderProblems)
    const first = this.#deliveredProblems === undefined
    if (!first && batch.changes.length === 0 && problems === this.#deliveredProblems) return
    if (this.#closed || this.#listener === undefined) return
    this.#deliveredProblems = problems
    try {
      this.#listener(batch)
    } catch (err) {
      this.#onError(err)
    }
  }

  /**
   * Keeps one fs watcher on the root (or on the folder of a root file), recreating it when the root was
   * deleted and recreated: Node's watcher goes silent, without an error, once its folder is deleted.
   */
  async #syncWatcher(): Promise<void> {
    if (!this.#watch || this.#watchBroken) return
    const target = await watchTarget(this.#root)
    if (this.#closed) return
    if (target !== undefined && this.#watcher?.key === target.key) return
    this.#stopWatcher()
    if (target !== undefined) this.#startWatcher(target)
  }

  #startWatcher(target: WatchTarget): void {
    let fsWatcher: FSWatcher
    try {
      fsWatcher = watch(target.dir, { recursive: target.recursive }, (_event, filename) => {
        if (isRelevantEvent(filename, target.onlyName)) this.#onFsEvent()
      })
    } catch (err) {
      // Gone since watchTarget looked: the next scan tries again. Anything else (no recursive watch on this
      // platform, inotify limits): polling only.
      if (!isGone(err)) {
        this.#watchBroken = true
        this.#onError(err)
      }
      return
    }
    fsWatcher.on('error', (err) => {
      this.#watchBroken = true
      this.#stopWatcher()
      this.#onError(err)
      // Whatever broke the watcher (the root deleted?) is something a scan will see.
      this.#onFsEvent()
    })
    this.#watcher = { fsWatcher, key: target.key }
  }

  #stopWatcher(): void {
    this.#watcher?.fsWatcher.close()
    this.#watcher = undefined
  }

  /** Debounces fs events: a scan once they pause for debounceMs, or at the latest after a long burst. */
  #onFsEvent(): void {
    if (this.#closed) return
    const now = Date.now()
    this.#burstStartedAt ??= now
    const deadline = this.#burstStartedAt + this.#debounceMs * MAX_DEBOUNCE_PERIODS
    clearTimeout(this.#debounceTimer)
    this.#debounceTimer = setTimeout(
      () => {
        this.#debounceTimer = undefined
        this.#burstStartedAt = undefined
        void this.#requestScan()
      },
      Math.max(0, Math.min(this.#debounceMs, deadline - now)),
    )
  }
}

async function watchTarget(root: string): Promise<WatchTarget | undefined> {
  try {
    const rootStats = await stat(root)
    if (rootStats.isDirectory()) return { dir: root, recursive: true, key: identity(root, rootStats) }
    const dir = path.dirname(root)
    const dirStats = await stat(dir)
    return { dir, recursive: false, onlyName: path.basename(root), key: identity(dir, dirStats) }
  } catch {
    // Missing or inaccessible: the scan reports it, polling notices when it is back.
    return undefined
  }
}

/** A folder deleted and recreated between two scans may get the same inode back; its birth time differs. */
function identity(dir: string, stats: Stats): string {
  return `${dir}:${stats.ino}:${stats.birthtimeMs}`
}

/** Events about hidden files (editor swap files, .git) and node_modules cannot change the result. */
function isRelevantEvent(filename: string | null, onlyName: string | undefined): boolean {
  if (filename === null || filename === '') return true
  if (onlyName !== undefined) return filename === onlyName
  return !filename.split(/[\\/]/).some(isSkippedName)
}

/** Lists the manifest files under the root (or the root file itself) with their stamps. */
async function listRoot(root: string): Promise<Listing> {
  const listing: Listing = { files: new Map(), problems: [] }
  let rootStats: Stats
  try {
    rootStats = await stat(root)
  } catch (err) {
    const message = isGone(err) ? 'no such file or folder' : `cannot access: ${errorText(err)}`
    listing.problems.push({ severity: 'error', file: root, message })
    return listing
  }
  if (rootStats.isFile()) {
    // Named explicitly, so read whatever its extension.
    listing.files.set(root, { abs: root, stamp: stampOf(rootStats) })
  } else if (rootStats.isDirectory()) {
    await walkRoot(root, listing)
  } else {
    const what = specialFileKind(rootStats) ?? 'something else'
    listing.problems.push({ severity: 'error', file: root, message: `${what}, not a regular file or folder` })
  }
  return listing
}

async function walkRoot(root: string, listing: Listing): Promise<void> {
  let real: string
  try {
    real = await realpath(root)
  } catch (err) {
    // Replaced since it was stat'ed: the next scan sees what it became.
    if (!isGone(err))
      listing.problems.push({ severity: 'error', file: root, message: `cannot access: ${errorText(err)}` })
    return
  }
  await walkDir(root, '', [real], listing)
}

/**
 * Walks one folder. `ancestors` holds the real paths of the folders on the way down from the root: a
 * symlinked folder that resolves to one of them is a loop. Folders reached twice through symlinks that do
 * not loop (two links to one folder) are walked twice, and their files appear under both names.
 */
async function walkDir(
  abs: string,
  rel: string,
  ancestors: readonly string[],
  listing: Listing,
): Promise<void> {
  let entries: Dirent[]
  try {
    entries = await readdir(abs, { withFileTypes: true })
  } catch (err) {
    // Deleted while we walk: its files are simply gone.
    if (!isGone(err)) listing.problems.push(warning(rel, `cannot read folder: ${errorText(err)}; skipped`))
    return
  }
  entries.sort((a, b) => compareStrings(a.name, b.name))
  for (const entry of entries) {
    if (isSkippedName(entry.name)) continue
    const child = { abs: path.join(abs, entry.name), rel: rel === '' ? entry.name : `${rel}/${entry.name}` }
    if (entry.isSymbolicLink()) {
      await visitSymlink(child, ancestors, listing)
    } else if (entry.isDirectory()) {
      // Not a link, so its real path is its parent's plus its name.
      const real = path.join(ancestors[ancestors.length - 1] ?? abs, entry.name)
      await walkDir(child.abs, child.rel, [...ancestors, real], listing)
    } else if (entry.isFile() && isManifestName(entry.name)) {
      await addFile(child, listing)
    } else if (isManifestName(entry.name)) {
      // Named like a manifest but not a file: say so rather than leave the user wondering. Never opened: a
      // FIFO would block the read until something writes to it. Deno's Dirent does not tell a FIFO or a
      // socket from other files; lstat does.
      const what = specialFileKind(entry) ?? (await lstatKind(child.abs))
      if (what !== undefined)
        listing.problems.push(warning(child.rel, `${what}, not a regular file; skipped`))
    }
  }
}

async function visitSymlink(
  link: { abs: string; rel: string },
  ancestors: readonly string[],
  listing: Listing,
): Promise<void> {
  let target: Stats
  try {
    target = await stat(link.abs)
  } catch (err) {
    listing.problems.push(warning(link.rel, await brokenLinkMessage(link.abs, err)))
    return
  }
  if (target.isDirectory()) {
    let real: string
    try {
      real = await realpath(link.abs)
    } catch (err) {
      if (!isGone(err))
        listing.problems.push(warning(link.rel, `cannot resolve symbolic link: ${errorText(err)}`))
      return
    }
    if (ancestors.includes(real)) {
      listing.problems.push(
        warning(link.rel, 'symbolic link loop: it points to a folder that contains it; skipped'),
      )
      return
    }
    await walkDir(link.abs, link.rel, [...ancestors, real], listing)
  } else if (isManifestName(path.basename(link.rel))) {
    if (target.isFile()) {
      listing.files.set(link.rel, { abs: link.abs, stamp: stampOf(target) })
    } else {
      const what = specialFileKind(target)
      if (what !== undefined)
        listing.problems.push(warning(link.rel, `symbolic link to ${what}, not to a regular file; skipped`))
    }
  }
}

async function brokenLinkMessage(abs: string, err: unknown): Promise<string> {
  if (errorCode(err) === 'ELOOP') return 'symbolic link loop: the link resolves to itself; skipped'
  if (!isGone(err)) return `cannot follow symbolic link: ${errorText(err)}; skipped`
  try {
    return `broken symbolic link: its target "${await readlink(abs)}" does not exist; skipped`
  } catch {
    return 'broken symbolic link: its target does not exist; skipped'
  }
}

async function addFile(file: { abs: string; rel: string }, listing: Listing): Promise<void> {
  try {
    listing.files.set(file.rel, { abs: file.abs, stamp: stampOf(await stat(file.abs)) })
  } catch (err) {
    if (!isGone(err)) listing.problems.push(warning(file.rel, `cannot access: ${errorText(err)}; skipped`))
  }
}

/** Reads and parses one file; too large, unreadable or special files are reported, not read. */
async function loadFile(
  file: string,
  found: FoundFile,
  maxFileBytes: number,
  parser: ManifestParser,
): Promise<Loaded> {
  if (found.stamp.size > maxFileBytes) return tooLarge(file, found.stamp.size, maxFileBytes)
  let read: Uint8Array<ArrayBuffer> | Loaded
  try {
    read = await readBounded(file, found.abs, maxFileBytes)
  } catch (err) {
    if (isGone(err)) return { kind: 'gone' }
    const problem: Problem = { severity: 'error', file, message: `cannot read file: ${errorText(err)}` }
    return {
      kind: 'read',
      hash: `error:${errorText(err)}`,
      state: { file, status: 'unreadable', problems: [problem] },
    }
  }
  if (!(read instanceof Uint8Array)) return read
  return { kind: 'read', hash: await sha256(read), state: await parser.parse(read, file) }
}

/**
 * The file's bytes, or why it was not read. Opened without blocking and checked once open: a file replaced
 * by a FIFO since it was listed would otherwise block the read until a writer comes, that is forever. Never
 * reads more than the limit, should the file have grown since it was listed.
 */
async function readBounded(
  file: string,
  abs: string,
  maxFileBytes: number,
): Promise<Uint8Array<ArrayBuffer> | Loaded> {
  // O_NONBLOCK is undefined on Windows, where `| undefined` leaves the flags as they are (and FIFOs do not
  // exist in the file system).
  const handle = await open(abs, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) {
      const what = specialFileKind(stats) ?? 'something else'
      const problem: Problem = { severity: 'warning', file, message: `${what}, not a regular file; not read` }
      return {
        kind: 'read',
        hash: `special:${what}`,
        state: { file, status: 'unreadable', problems: [problem] },
      }
    }
    const bytes = await readUpTo(handle, stats.size, maxFileBytes + 1)
    return bytes.length > maxFileBytes
      ? tooLarge(file, Math.max(bytes.length, stats.size), maxFileBytes)
      : bytes
  } finally {
    await handle.close()
  }
}

/** Reads until the end of the file or `limit` bytes, whichever comes first; `sizeHint` is the expected size. */
async function readUpTo(
  handle: FileHandle,
  sizeHint: number,
  limit: number,
): Promise<Uint8Array<ArrayBuffer>> {
  // One byte more than expected, so that the read that finds the end needs no larger buffer.
  let buffer = new Uint8Array(Math.min(sizeHint + 1, limit))
  let length = 0
  for (;;) {
    if (length === buffer.length) {
      if (length >= limit) break
      const grown = new Uint8Array(Math.min(buffer.length * 2, limit))
      grown.set(buffer)
      buffer = grown
    }
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
    if (bytesRead === 0) break
    length += bytesRead
  }
  return buffer.slice(0, length)
}

function tooLarge(file: string, size: number, maxFileBytes: number): Loaded {
  const message =
    `file is ${formatMiB(size)} MiB, over the ${formatMiB(maxFileBytes)} MiB limit for one manifest file ` +
    `(the Kubernetes API server rejects larger requests too); split it into several smaller files`
  return {
    kind: 'read',
    hash: `too-large:${size}`,
    state: { file, status: 'unreadable', problems: [{ severity: 'error', file, message }] },
  }
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  // Web Crypto rather than node:crypto: the same call works on Node and Deno.
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')
}

function formatMiB(bytes: number): string {
  return (bytes / MiB).toFixed(1).replace(/\.0$/, '')
}

function stampOf(stats: Stats): Stamp {
  return { size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino }
}

function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino
}

/** What a file that is neither a regular file, a folder nor a link is, for messages. */
function specialFileKind(entry: Dirent | Stats): string | undefined {
  if (entry.isFIFO()) return 'a FIFO (named pipe)'
  if (entry.isSocket()) return 'a socket'
  if (entry.isCharacterDevice()) return 'a character device'
  if (entry.isBlockDevice()) return 'a block device'
  return undefined
}

async function lstatKind(abs: string): Promise<string | undefined> {
  try {
    return specialFileKind(await lstat(abs))
  } catch {
    // Gone since the listing: nothing to report.
    return undefined
  }
}

function isSkippedName(name: string): boolean {
  return name.startsWith('.') || name === 'node_modules'
}

function isManifestName(name: string): boolean {
  return MANIFEST_EXTENSIONS.some((ext) => name.endsWith(ext))
}

/** Folder problems are warnings: the rest of the folder still loads. `rel` '' is the root folder itself. */
function warning(rel: string, message: string): Problem {
  return { severity: 'warning', file: rel === '' ? '.' : rel, message }
}

/** Plain code-unit order: deterministic whatever the locale. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined
  return typeof err.code === 'string' ? err.code : undefined
}

/** The file or folder is not there (any more), possibly because a parent was replaced by a file. */
function isGone(err: unknown): boolean {
  const code = errorCode(err)
  return code === 'ENOENT' || code === 'ENOTDIR'
}

/** "EACCES: permission denied" from Node's "EACCES: permission denied, open '/abs/path'". */
function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  return errorCode(err) === undefined ? err.message : (err.message.split(',')[0] ?? err.message)
}
