/**
 * redact: what keeping a Model's secrets out of ark's output costs (gateway/runtime/redactor.ts), each
 * against a baseline measured in the same round, in process:
 *
 * - a 16 KB JSON answer (model/<name>, not streamed) searched for every form of a Model's key and a
 *   Secret-backed header (8 patterns), against one native `Buffer.indexOf` of the key over the same bytes:
 *   the least any search for the key can cost;
 * - a 200-event SSE stream through gateway/openai/sse-guard.ts with the Model's redactor, against the same
 *   guard with none: what a streamed model/<name> call pays;
 * - an agent's streamed completion (200 deltas and the answer) through the redacting provider wrapper,
 *   against the bare provider;
 * - a log line with three Models' secrets (36 patterns) known to the logger, against a logger that knows
 *   none.
 *
 * None of the inputs holds a secret: the common case, where redaction must cost close to nothing.
 */
import { createLogger } from '../../gateway/log.ts'
import { guardEvents } from '../../gateway/openai/sse-guard.ts'
import type { Completion, CompletionRequest, Provider } from '../../gateway/runtime/provider.ts'
import { withRedaction } from '../../gateway/runtime/providers/redacting.ts'
import { Redactor, SecretSet } from '../../gateway/runtime/redactor.ts'
import type { GateSession, Measure, RunContext, Scenario, ScenarioResult } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'

const KEY = 'sk-proj-Abc123Def456Ghi789Jkl012Mno345Pqr678Stu901Vwx'
const TENANT = 'tenant-token-5f3a9c2e7b1d'
const redactor = Redactor.of([KEY, TENANT])
const encoder = new TextEncoder()

const WORDS = 'the quick brown fox jumps over a lazy dog while models answer questions about secrets'.split(
  ' ',
)
const word = (i: number) => WORDS[i % WORDS.length] ?? ''

/** A chat completion of about `bytes` bytes, as an upstream sends it. */
function completionBody(bytes: number): Uint8Array {
  let content = ''
  for (let i = 0; content.length < bytes - 400; i++) content += `${word(i * 7)} `
  return encoder.encode(
    JSON.stringify({
      id: 'chatcmpl-abc123',
      object: 'chat.completion',
      created: 1_715_367_049,
      model: 'gpt-4o',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 12, completion_tokens: 900, total_tokens: 912 },
    }),
  )
}

const BODY = completionBody(16 * 1024)
const BODY_BUFFER = Buffer.from(BODY.buffer, BODY.byteOffset, BODY.length)
const KEY_BYTES = Buffer.from(KEY)

/** Microseconds per call of `fn`, over `n` calls. */
function timeSync(fn: () => unknown, n: number): number {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) fn()
  return ((performance.now() - t0) * 1000) / n
}

async function timeAsync(fn: () => Promise<unknown>, n: number): Promise<number> {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await fn()
  return ((performance.now() - t0) * 1000) / n
}

let sink = 0

const scanBody = () => (sink += redactor.bytes(BODY).length)
const indexOfBody = () => (sink += BODY_BUFFER.indexOf(KEY_BYTES))

/** 200 SSE events of a streamed completion, two events per network chunk. */
const EVENTS = (() => {
  const chunks: Uint8Array[] = []
  for (let i = 0; i < 200; i += 2) {
    const event = (n: number) =>
      `data: {"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1715367049,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"${word(n)} "},"finish_reason":null}]}\n\n`
    chunks.push(encoder.encode(event(i) + event(i + 1)))
  }
  chunks.push(encoder.encode('data: [DONE]\n\n'))
  return chunks
})()

async function passStream(r: Redactor): Promise<void> {
  let i = 0
  const upstream = new ReadableStream<Uint8Array>({
    pull(out) {
      const next = EVENTS[i++]
      if (next === undefined) out.close()
      else out.enqueue(next)
    },
  })
  const reader = guardEvents(upstream, (why) => `data: ${why}\n\n`, r).getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    sink += value.length
  }
}

/** A provider that streams 200 deltas, then answers with their text. */
const streaming: Provider = {
  provider: 'mock',
  model: 'bench',
  probe: () => Promise.resolve(),
  async complete(request: CompletionRequest): Promise<Completion> {
    let content = ''
    for (let i = 0; i < 200; i++) {
      const piece = `${word(i)} `
      content += piece
      await request.onDelta?.(piece)
    }
    return {
      message: { role: 'assistant', content },
      usage: { promptTokens: 10, completionTokens: 200, totalTokens: 210 },
      finishReason: 'stop',
    }
  },
}
const wrapped = withRedaction(streaming, redactor)
const neverAborted = new AbortController().signal
const completeWith = (p: Provider) => () =>
  p.complete({ messages: [], tools: [], signal: neverAborted, onDelta: (t) => void (sink += t.length) })

/** Three Models' secrets known to the logger, as in a gateway serving three Models. */
const known = new SecretSet()
for (const m of ['a', 'b', 'c'])
  known.add(Redactor.of([`sk-${m}-${KEY.slice(8)}`, `${TENANT}-${m}`, `az-${m}-0123456789abcdef`]))
const none = new SecretSet()
const noWrite = (line: string) => (sink += line.length)
const logRedacted = createLogger('bench', noWrite, 'info', known)
const logPlain = createLogger('bench', noWrite, 'info', none)
const FIELDS = { agent: 'agent/support', target: 'agent/support', error: 'model gpt-4o (openai) failed: 503' }
const lineRedacted = () => logRedacted.info('agent run failed', FIELDS)
const linePlain = () => logPlain.info('agent run failed', FIELDS)

interface Round {
  readonly scan: number
  readonly indexOf: number
  readonly stream: number
  readonly streamPlain: number
  readonly deltas: number
  readonly deltasPlain: number
  readonly log: number
  readonly logPlain: number
}

/** One round of every pair, each side right after the other so that the machine's mood lands on both. */
async function round(scale: number): Promise<Round> {
  return {
    scan: timeSync(scanBody, 2000 * scale),
    indexOf: timeSync(indexOfBody, 2000 * scale),
    stream: await timeAsync(() => passStream(redactor), 20 * scale),
    streamPlain: await timeAsync(() => passStream(Redactor.none), 20 * scale),
    deltas: await timeAsync(completeWith(wrapped), 50 * scale),
    deltasPlain: await timeAsync(completeWith(streaming), 50 * scale),
    log: timeSync(lineRedacted, 5000 * scale),
    logPlain: timeSync(linePlain, 5000 * scale),
  }
}

async function warm(): Promise<void> {
  for (let i = 0; i < 3; i++) await round(1)
}

const ratios = (r: Round) => ({
  'body scan/indexOf': r.scan / r.indexOf,
  'stream redacted/plain': r.stream / r.streamPlain,
  'agent deltas redacted/plain': r.deltas / r.deltasPlain,
  'log line redacted/plain': r.log / r.logPlain,
})

async function run(context: RunContext): Promise<ScenarioResult> {
  context.log('redact: warming up')
  await warm()
  const rounds: Round[] = []
  for (let i = 0; i < 9; i++) rounds.push(await round(2))
  const m = (k: keyof Round) => median(rounds.map((r) => r[k]))
  const ratio = (k: keyof ReturnType<typeof ratios>) => median(rounds.map((r) => ratios(r)[k]))
  const mbps = (us: number) => BODY.length / us
  const measures: Measure[] = [
    {
      name: 'body scan 16 KB',
      value: m('scan'),
      unit: 'us',
      note: `${mbps(m('scan')).toFixed(0)} MB/s; Buffer.indexOf of the key ${m('indexOf').toFixed(2)} us`,
    },
    { name: 'body scan / indexOf', value: ratio('body scan/indexOf'), unit: 'x' },
    {
      name: 'SSE stream, 200 events',
      value: m('stream'),
      unit: 'us',
      note: `guard without redactor ${m('streamPlain').toFixed(1)} us`,
    },
    { name: 'stream redacted / plain', value: ratio('stream redacted/plain'), unit: 'x' },
    {
      name: 'agent completion, 200 deltas',
      value: m('deltas'),
      unit: 'us',
      note: `bare provider ${m('deltasPlain').toFixed(1)} us`,
    },
    { name: 'agent deltas redacted / plain', value: ratio('agent deltas redacted/plain'), unit: 'x' },
    {
      name: 'log line, 3 Models known',
      value: m('log'),
      unit: 'us',
      note: `logger knowing no secret ${m('logPlain').toFixed(2)} us`,
    },
    { name: 'log line redacted / plain', value: ratio('log line redacted/plain'), unit: 'x' },
  ]
  if (sink === 0) throw new Error('redact: nothing was measured')
  return {
    measures,
    notes: [
      'Medians of 9 rounds; in each round ark and its baseline run back to back. No input holds a secret.',
      `Patterns: every form of a key and a header (${String(redactor.maxBytes)} bytes the longest): raw, JSON, URL and form encodings, base64 and base64url at three alignments.`,
    ],
  }
}

async function gate(context: RunContext): Promise<GateSession> {
  context.log('redact gate: redactor vs baselines')
  await warm()
  return {
    async sample() {
      // Twice the smallest round: the stream pair is short enough for one GC pause to skew it.
      return ratios(await round(2))
    },
    close: () => Promise.resolve(),
  }
}

const scenario: Scenario = {
  name: 'redact',
  summary:
    "keeping secrets out of ark's output: body scan, SSE stream, agent deltas, log lines vs the same without",
  run,
  gate,
}
export default scenario
