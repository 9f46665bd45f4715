/**
 * Sends a fuzz request over real HTTP (node:http, so that the request line goes out exactly as generated:
 * bad percent-encoding, dot segments and odd methods are not normalized away as fetch would) and says what is
 * wrong with the answer: a 5xx, an error body not in OpenAI's shape, a status other than expected, a stream
 * that is not clean server-sent events.
 */
import type { Agent, IncomingHttpHeaders } from 'node:http'
import { request } from 'node:http'
import type { FuzzRequest } from './fuzz-requests.ts'

export interface Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Buffer
}

/** Read at most this much of an answer: enough for any error and any completion the mock writes. */
const MAX_ANSWER = 8 * 1024 * 1024

export function send(base: URL, req: FuzzRequest, agent: Agent, timeoutMs = 20_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...req.headers }
    if (req.body !== undefined && !req.chunked) headers['content-length'] = req.body.byteLength
    const r = request(
      { host: base.hostname, port: base.port, method: req.method, path: req.path, headers, agent },
      (res) => {
        const parts: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.byteLength
          if (size <= MAX_ANSWER) parts.push(chunk)
        })
        res.on('end', () => {
          clearTimeout(timer)
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) })
        })
        res.on('error', (err) => {
          clearTimeout(timer)
          reject(err)
        })
      },
    )
    // A liveness bound, not a performance claim: an answer that never comes is a hang to report.
    const timer = setTimeout(
      () => r.destroy(new Error(`no answer within ${String(timeoutMs)} ms`)),
      timeoutMs,
    )
    r.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    if (req.body !== undefined) {
      if (req.chunked) {
        // Two writes: the server reads a body without a length as a stream.
        const half = Math.floor(req.body.byteLength / 2)
        r.write(req.body.subarray(0, half))
        r.end(req.body.subarray(half))
      } else r.end(req.body)
    } else r.end()
  })
}

interface ErrorShape {
  message: string
  type: string
  param: string | null
  code: string | null
}

/** The OpenAI error body, or why it is not one. */
function errorOf(answer: Answer): ErrorShape | string {
  const type = answer.headers['content-type'] ?? ''
  if (!/^application\/json\b/i.test(type)) return `error content-type is ${JSON.stringify(type)}, not JSON`
  let json: unknown
  try {
    json = JSON.parse(answer.body.toString('utf8'))
  } catch {
    return 'error body is not JSON'
  }
  const error: unknown = (json as { error?: unknown } | null)?.error
  if (typeof error !== 'object' || error === null) return 'error body has no `error` object'
  const e = error as Record<string, unknown>
  const keys = Object.keys(json as object)
  if (keys.length !== 1) return `error body has fields beside \`error\`: ${keys.join(', ')}`
  if (typeof e.message !== 'string' || e.message === '') return 'error.message is not a non-empty string'
  if (typeof e.type !== 'string') return 'error.type is not a string'
  if (!(typeof e.param === 'string' || e.param === null)) return 'error.param is not a string or null'
  if (!(typeof e.code === 'string' || e.code === null)) return 'error.code is not a string or null'
  return e as unknown as ErrorShape
}

/** Every `data:` payload of a stream of server-sent events, or why it is not one. */
function streamEvents(text: string): string[] | string {
  if (!text.endsWith('\n\n')) return 'the stream does not end with a blank line'
  const out: string[] = []
  for (const event of text.split('\n\n').slice(0, -1)) {
    for (const line of event.split('\n')) {
      if (line.startsWith(':')) continue
      if (!line.startsWith('data: ')) return `a stream line is not data: ${JSON.stringify(line.slice(0, 80))}`
      out.push(line.slice(6))
    }
  }
  return out
}

function checkStream(answer: Answer): string[] {
  const type = answer.headers['content-type'] ?? ''
  if (!type.startsWith('text/event-stream'))
    return [`a stream answered with content-type ${JSON.stringify(type)}`]
  const events = streamEvents(answer.body.toString('utf8'))
  if (typeof events === 'string') return [events]
  if (events.at(-1) !== '[DONE]') return ['the stream does not end with data: [DONE]']
  for (const data of events.slice(0, -1)) {
    let chunk: { object?: unknown; error?: unknown }
    try {
      chunk = JSON.parse(data) as typeof chunk
    } catch {
      return [`a stream event is not JSON: ${data.slice(0, 80)}`]
    }
    // An error after a 200: the request was accepted and then failed, the 5xx of a stream.
    if (chunk.error !== undefined) return [`the stream carries an error: ${data.slice(0, 300)}`]
    if (chunk.object !== 'chat.completion.chunk')
      return [`a stream event is not a chunk: ${data.slice(0, 80)}`]
  }
  return []
}

function checkOk(req: FuzzRequest, answer: Answer): string[] {
  if (answer.status !== 200) return [`expected 200, got ${String(answer.status)}`]
  if (req.method === 'HEAD') return []
  const path = req.path.split('?')[0] ?? ''
  if (path === '/metrics') return answer.body.includes('# HELP') ? [] : ['/metrics is not Prometheus text']
  if (path === '/v1/chat/completions' && req.stream) return checkStream(answer)
  let json: { object?: unknown; choices?: unknown; status?: unknown }
  try {
    json = JSON.parse(answer.body.toString('utf8')) as typeof json
  } catch {
    return ['a 200 body is not JSON']
  }
  if (path === '/v1/chat/completions') {
    if (json.object !== 'chat.completion' || !Array.isArray(json.choices) || json.choices.length === 0)
      return ['a 200 completion is not a chat.completion with choices']
  } else if (path === '/v1/models') {
    if (json.object !== 'list') return ['GET /v1/models is not a list']
  } else if (path.startsWith('/v1/models/')) {
    if (json.object !== 'model') return ['GET /v1/models/<id> is not a model']
  } else if (typeof json.status !== 'string') return [`${path} has no status`]
  return []
}

/** What is wrong with `answer` to `req`; empty when nothing is. */
export function problemsOf(req: FuzzRequest, answer: Answer): string[] {
  const out: string[] = []
  if (answer.status >= 500) out.push(`a ${String(answer.status)}`)
  let error: ErrorShape | undefined
  if (answer.status >= 400 && req.method !== 'HEAD') {
    const e = errorOf(answer)
    if (typeof e === 'string') out.push(e)
    else error = e
  }
  const x = req.expect
  switch (x.kind) {
    case 'ok':
      out.push(...checkOk(req, answer))
      break
    case 'error':
      if (answer.status !== x.status) out.push(`expected ${String(x.status)}, got ${String(answer.status)}`)
      else if (error !== undefined) {
        if (x.param !== undefined && error.param !== x.param)
          out.push(`expected param ${JSON.stringify(x.param)}, got ${JSON.stringify(error.param)}`)
        if (x.code !== undefined && error.code !== x.code)
          out.push(`expected code ${x.code}, got ${JSON.stringify(error.code)}`)
      }
      break
    case 'client-error':
      if (answer.status < 400 || answer.status >= 500)
        out.push(`expected a 4xx, got ${String(answer.status)}`)
      break
    case 'any':
      break
  }
  return out
}

/** One line per request for the failure report: enough to replay it with curl. */
export function describe(req: FuzzRequest, answer: Answer | undefined, limit = 600): string {
  const body = req.body === undefined ? '' : Buffer.from(req.body).toString('utf8')
  const shown = body.length > limit ? `${body.slice(0, limit)}... (${String(body.length)} bytes)` : body
  const got =
    answer === undefined
      ? ''
      : `\n    -> ${String(answer.status)} ${answer.body.toString('utf8').slice(0, limit)}`
  return `#${String(req.index)} ${req.method} ${req.path.slice(0, 200)} ${JSON.stringify(req.headers)}${req.chunked ? ' (chunked)' : ''}\n    [${req.notes.join('; ')}]\n    ${shown}${got}`
}
