/**
 * The parse worker's entry point: parses manifest files sent by ManifestParser (parse-thread.ts), one at a
 * time, so that a large file costs the main thread nothing but a copy of its bytes and of the result.
 */
import { parentPort } from 'node:worker_threads'
import { parseManifestBytes } from './parse.ts'
import type { ParseRequest, ParseResponse } from './parse-thread.ts'

const port = parentPort
if (port === null) throw new Error('parse-worker.ts runs as a worker thread (see parse-thread.ts)')

port.on('message', (request: ParseRequest) => {
  const response: ParseResponse = { id: request.id, state: parseManifestBytes(request.bytes, request.file) }
  port.postMessage(response)
})
