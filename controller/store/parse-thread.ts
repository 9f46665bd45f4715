/**
 * Where manifest files are parsed. `ark dev` runs the folder source in the process that serves requests, and
 * even within parse.ts's limits a file of a few megabytes takes a second or two to parse: large files go to
 * one long-lived worker thread, so that requests keep being answered meanwhile. Small files, nearly all real
 * manifests, are parsed on the calling thread, where they cost less than a message round trip would.
 *
 * The worker holds no state but the code, so whatever goes wrong with it (a parse over the time bound, a
 * crash, running out of its heap) is reported as a problem of the file being parsed, and the worker is
 * replaced by a fresh one for the next file. It is not stopped when idle: Node does not give a terminated
 * worker's memory back to the system (it reuses it for the next one), so that would only cost restarts. It
 * never keeps the process alive: it is unref'ed, and the timer of a parse in flight is what keeps the event
 * loop up until the answer comes.
 * `node:worker_threads` works on Deno 2 as well (resourceLimits excepted, which Deno ignores).
 */
import { Worker } from 'node:worker_threads'
import { failed, parseManifestBytes } from './parse.ts'
import type { FileState } from './source.ts'

export interface ManifestParserOptions {
  /** Files up to this many bytes are parsed on the calling thread; default 8 KiB. */
  readonly inlineMaxBytes?: number
  /** A parse in the worker still running after this long is abandoned and the worker replaced; default 10 s. */
  readonly timeoutMs?: number
  /** Heap limit of the worker in MB (Node only); default 512. */
  readonly workerHeapMb?: number
}

/** A message to the worker. */
export interface ParseRequest {
  readonly id: number
  readonly file: string
  readonly bytes: Uint8Array
}

/** The worker's answer. */
export interface ParseResponse {
  readonly id: number
  readonly state: FileState
}

/** parse-worker.ts beside this file, or parse-worker.js in a compiled build: tsc rewrites imports, not URLs. */
const WORKER_URL = new URL(
  `./parse-worker${import.meta.url.slice(import.meta.url.lastIndexOf('.'))}`,
  import.meta.url,
)

/**
 * Real manifests are a few kilobytes (the largest ark example is 2.3 KB and parses in 1-7 ms here); 8 KiB
 * of the worst shape for the yaml package, a dense flow sequence, takes 20-50 ms on this 2-CPU machine.
 */
const DEFAULT_INLINE_MAX_BYTES = 8 * 1024
/** Parsing at the limits of parse.ts takes up to 2 s here; five times that is still only a broken file. */
const DEFAULT_TIMEOUT_MS = 10_000
/**
 * Within parse.ts's limits the worst file measured (500,000 line breaks) took the process 180 MB more; the
 * heap limit is a backstop whatever the yaml package does, not the expected bound.
 */
const DEFAULT_WORKER_HEAP_MB = 512

interface Job {
  readonly id: number
  readonly file: string
  readonly resolve: (state: FileState) => void
  readonly timer: ReturnType<typeof setTimeout>
}

export class ManifestParser {
  readonly #inlineMaxBytes: number
  readonly #timeoutMs: number
  readonly #workerHeapMb: number
  #worker: Worker | undefined
  #job: Job | undefined
  /** The worker parses one file at a time, so that a job's time bound measures its own parse only. */
  #tail: Promise<unknown> = Promise.resolve()
  #nextId = 0
  #closed = false

  constructor(options: ManifestParserOptions = {}) {
    this.#inlineMaxBytes = options.inlineMaxBytes ?? DEFAULT_INLINE_MAX_BYTES
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    this.#workerHeapMb = options.workerHeapMb ?? DEFAULT_WORKER_HEAP_MB
  }

  /** Parses one file's bytes. Never rejects: every failure is a problem of the file. */
  parse(bytes: Uint8Array, file: string): Promise<FileState> {
    if (bytes.length <= this.#inlineMaxBytes) return Promise.resolve(parseManifestBytes(bytes, file))
    const run = this.#tail.then(() => this.#parseInWorker(bytes, file))
    this.#tail = run
    return run
  }

  /** Stops the worker; a parse in flight resolves with a problem, later ones too. */
  async close(): Promise<void> {
    this.#closed = true
    this.#finish(this.#job?.id, (file) => failed(file, 'not parsed: the manifest source was closed'))
    const worker = this.#worker
    this.#worker = undefined
    await worker?.terminate()
  }

  #parseInWorker(bytes: Uint8Array, file: string): Promise<FileState> {
    if (this.#closed) return Promise.resolve(failed(file, 'not parsed: the manifest source was closed'))
    let worker: Worker
    try {
      worker = this.#worker ?? this.#startWorker()
    } catch {
      // No threads here (a runtime without worker support, thread limits): better a stall than no manifests.
      return Promise.resolve(parseManifestBytes(bytes, file))
    }
    return new Promise((resolve) => {
      const id = ++this.#nextId
      const timer = setTimeout(() => {
        const seconds = String(this.#timeoutMs / 1000)
        this.#finish(id, () =>
          failed(
            file,
            `parsing took longer than ${seconds} s, the limit for one manifest file, and was stopped; simplify or split the file (it is read again when it changes)`,
          ),
        )
        this.#discard(worker)
      }, this.#timeoutMs)
      this.#job = { id, file, resolve, timer }
      // Copied, not transferred: the caller keeps its bytes.
      const request: ParseRequest = { id, file, bytes }
      worker.postMessage(request)
    })
  }

  #startWorker(): Worker {
    const worker = new Worker(WORKER_URL, {
      resourceLimits: { maxOldGenerationSizeMb: this.#workerHeapMb },
    })
    worker.unref()
    worker.on('message', (response: ParseResponse) => {
      this.#finish(response.id, () => response.state)
    })
    worker.on('error', (err: Error) => {
      this.#finish(this.#job?.id, (file) => failed(file, this.#crashMessage(err)))
      this.#discard(worker)
    })
    worker.on('exit', (code) => {
      // Expected after terminate(); otherwise the worker died under the job it was running.
      if (this.#worker !== worker) return
      this.#worker = undefined
      this.#finish(this.#job?.id, (file) =>
        failed(file, `the YAML parser stopped with exit code ${String(code)} while parsing this file`),
      )
    })
    this.#worker = worker
    return worker
  }

  #crashMessage(err: Error): string {
    if ('code' in err && err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return `parsing needed more than ${String(this.#workerHeapMb)} MB of memory, the limit for one manifest file; split it into several smaller files`
    }
    return `the YAML parser crashed while parsing this file: ${err.message}`
  }

  /** Resolves the job in flight, if it is still the one with this id. */
  #finish(id: number | undefined, state: (file: string) => FileState): void {
    const job = this.#job
    if (job === undefined || job.id !== id) return
    this.#job = undefined
    clearTimeout(job.timer)
    job.resolve(state(job.file))
  }

  /** Drops a worker that timed out or crashed; the next job starts a fresh one. */
  #discard(worker: Worker): void {
    if (this.#worker === worker) this.#worker = undefined
    void worker.terminate()
  }
}
