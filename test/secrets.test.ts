/**
 * The secret canary: Models whose keys and a header come from Secrets (stringData, base64 `data:`, a
 * `headers` entry with secretKeyRef) and an ArkAgent on the environment's key, in front of fake upstreams
 * (openai, azure, anthropic) that echo the credential they were sent back: raw, base64, base64url,
 * URL-encoded and form-encoded; in a JSON answer, a non-JSON answer, an error, a response header, an SSE
 * event, a non-JSON SSE event (ark's bad_upstream_stream quotes it), an SSE error event, and an event split
 * across two TCP writes inside the value; and in the answer to a probe. The real `openai` SDK drives
 * `model/<name>` and agent targets, streamed and not.
 *
 * No canary may appear in anything ark writes: response bodies and headers as they crossed the wire, log
 * lines, /metrics, resource status. The same runs go to ark in this process (its status read from the
 * store, its log lines captured) and to `ark dev` as a process (its stdout, where condition changes are
 * logged with their messages).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Embedded } from '../bin/embedded.ts'
import { startEmbedded } from '../bin/embedded.ts'
import type { ServeHandle } from '../gateway/index.ts'
import { createLogger, serve } from '../gateway/index.ts'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { FakeUpstream as FakeAnthropic } from './fakes/anthropic-upstream.ts'
import { startFakeAnthropic } from './fakes/anthropic-upstream.ts'
import type { EchoForm, EchoPlace } from './fakes/echo.ts'
import { encodeEcho } from './fakes/echo.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'

// Characters that URL and form encoding change, so that those forms differ from the raw one.
const salt = () => `${randomBytes(6).toString('hex')}+/=${randomBytes(4).toString('hex')}`
// Random enough that no two share 12 characters (the detector's window).
const KEY_OA = `sk-oa-${salt()}`
const KEY_AZ = `az-${salt()}`
const KEY_AN = `sk-ant-${salt()}`
const KEY_ENV = `sk-env-${salt()}`
const TENANT = `tn-${salt()}`
const TENANT_AZ = `tz-${salt()}`
const CANARIES = [KEY_OA, KEY_AZ, KEY_AN, KEY_ENV, TENANT, TENANT_AZ]

const FORMS: readonly EchoForm[] = ['raw', 'base64', 'base64url', 'url', 'form']
const ONCE: readonly EchoPlace[] = ['json', 'text', 'error', 'header']
const STREAMED: readonly EchoPlace[] = [
  'sse-data',
  'sse-raw',
  'sse-error',
  'sse-split',
  'text',
  'error',
  'header',
]

/**
 * Where the canary went, if it is in `text` in a form a reader could take back: any 12 characters of it as
 * they are, after URL decoding, or in what a base64 run decodes to at any alignment.
 */
function leaked(text: string): string | undefined {
  const decoded = [text]
  for (const t of [text, text.replaceAll('+', ' ')]) {
    try {
      decoded.push(decodeURIComponent(t))
    } catch {
      // A lone % in ark's own text: nothing to decode.
    }
  }
  for (const run of text.match(/[A-Za-z0-9+/_-]{16,}/g) ?? []) {
    for (let cut = 0; cut < 4; cut++) {
      const piece = run.slice(cut)
      decoded.push(Buffer.from(piece, 'base64').toString('latin1'))
      decoded.push(Buffer.from(piece, 'base64url').toString('latin1'))
    }
  }
  for (const canary of CANARIES) {
    for (let i = 0; i + 12 <= canary.length; i++) {
      const window = canary.slice(i, i + 12)
      if (decoded.some((d) => d.includes(window))) return `${canary} (${JSON.stringify(window)})`
    }
  }
  return undefined
}

let openai: FakeUpstream
let anthropic: FakeAnthropic
let dir: string

function manifests(round: number): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64')
  const tenant = (secret: string, key: string) =>
    `headers: [{ name: X-Tenant, value: { valueFrom: { secretKeyRef: { name: ${secret}, key: ${key} } } } }]`
  return `apiVersion: v1
kind: Secret
metadata: { name: canary-keys }
stringData: { openai: "${KEY_OA}", anthropic: "${KEY_AN}", tenant: "${TENANT}", round: "${String(round)}" }
---
apiVersion: v1
kind: Secret
metadata: { name: canary-data }
data: { azure: ${b64(KEY_AZ)}, tenant: ${b64(TENANT_AZ)}, round: ${b64(String(round))} }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: oa }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config:
    openai:
      baseUrl: { value: "${openai.url}" }
      apiKey: { valueFrom: { secretKeyRef: { name: canary-keys, key: openai } } }
      ${tenant('canary-keys', 'tenant')}
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: az }
spec:
  provider: azure
  model: { value: gpt-4o-deploy }
  pollInterval: 1h
  config:
    azure:
      baseUrl: { value: "${openai.origin}" }
      apiKey: { valueFrom: { secretKeyRef: { name: canary-data, key: azure } } }
      apiVersion: { value: "2024-10-21" }
      ${tenant('canary-data', 'tenant')}
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: an }
spec:
  provider: anthropic
  model: { value: claude-opus-4-7 }
  pollInterval: 1h
  config:
    anthropic:
      baseUrl: { value: "${anthropic.url}" }
      apiKey: { valueFrom: { secretKeyRef: { name: canary-keys, key: anthropic } } }
      ${tenant('canary-keys', 'tenant')}
---
${['oa', 'az', 'an']
  .map(
    (m) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: on-${m} }
spec:
  prompt: You answer.
  modelRef: { name: ${m} }
---
`,
  )
  .join('')}apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: on-env }
spec:
  model: gpt-4o
  systemPrompt: You answer.
`
}

async function writeManifests(round: number): Promise<void> {
  await writeFile(join(dir, 'all.yaml'), manifests(round))
}

/** The process environment's key goes to the ArkAgent's model id; the Models bring their own. */
const env = () => ({ OPENAI_API_KEY: KEY_ENV, OPENAI_BASE_URL: openai.url })

/** One ark under test, however it runs. */
interface Ark {
  readonly url: string
  /** Every log line it wrote so far. */
  logs(): string
  /** Its logs tell condition changes with their messages (the CLI does; an embedder's logger need not). */
  readonly logsConditions: boolean
  /** Resource status as ark keeps it (in process), or as its API shows it. */
  status(): Promise<string>
  /** Reads the manifests again and waits until probes have run on them. */
  reload(until: (models: ModelList) => boolean): Promise<void>
  close(): Promise<void>
}

type ModelList = { data: { id: string; ark: { available: string; reason?: string } }[] }

async function models(url: string): Promise<ModelList> {
  return (await (await fetch(`${url}/v1/models`)).json()) as ModelList
}

/** Polls (the manifests folder is watched) until `until` holds; the deadline is the test's. */
async function poll(url: string, until: (models: ModelList) => boolean): Promise<void> {
  while (!until(await models(url))) await new Promise((resolve) => setTimeout(resolve, 50))
}

async function inProcess(): Promise<Ark> {
  const lines: string[] = []
  const system: Embedded = await startEmbedded({
    manifests: dir,
    watch: false,
    log: createLogger('test', (line) => lines.push(line)),
    providers: { env: env(), withoutKey: 'unavailable', timeoutMs: 5000, maxRetries: 0 },
    probeIntervalSeconds: 3600,
  })
  const lane = system.gateway.lane
  const server: ServeHandle = await serve(system.gateway.fetch, {
    host: '127.0.0.1',
    port: 0,
    ...(lane === undefined ? {} : { lane }),
  })
  const settled = async () => {
    for (let i = 0; i < 3; i++) {
      await system.probes?.idle()
      await system.controlPlane.settled()
    }
  }
  await settled()
  const store = system.controlPlane.store
  const url = `http://127.0.0.1:${String(server.port)}`
  const status = () =>
    JSON.stringify([...store.list()].map((r) => [store.status(r.key), store.dialectStatus(r.key)]))
  return {
    url,
    logs: () => lines.join('\n'),
    logsConditions: false,
    status: () => Promise.resolve(status()),
    async reload(until) {
      await system.controlPlane.refresh()
      await settled()
      if (!until(await models(url))) throw new Error(`not as expected after a reload: ${status()}`)
    },
    async close() {
      await server.close()
      await system.close()
    },
  }
}

async function asProcess(): Promise<Ark> {
  const ark: ArkProcess = await startArk(
    ['dev', '-f', dir, '--port', '0', '--probe-interval', '3600', '--provider-retries', '0'],
    { env: env() },
  )
  await poll(ark.url, allAvailable)
  return {
    url: ark.url,
    logs: () => ark.lines.map((l) => JSON.stringify(l)).join('\n'),
    logsConditions: true,
    status: async () => JSON.stringify(await models(ark.url)),
    reload: (until) => poll(ark.url, until),
    close: () => ark.stop(),
  }
}

const MODELS = ['model/oa', 'model/az', 'model/an']
const allAvailable = (list: ModelList) =>
  MODELS.every((id) => list.data.find((m) => m.id === id)?.ark.available === 'True')
const allRefused = (list: ModelList) =>
  MODELS.every((id) => list.data.find((m) => m.id === id)?.ark.reason === 'Unauthorized')

interface Target {
  /** What the client names. */
  readonly model: string
  readonly fake: () => { next: FakeUpstream['next']; calls: readonly { path: string }[] }
  /** The request header the key travels in (what the fake echoes by default). */
  readonly keyHeader: string
  /** The Model's X-Tenant header holds a canary too (ArkAgent model ids have no headers). */
  readonly tenant: boolean
  /** ark passes the upstream's answer on unparsed (model/<name> on openai and azure). */
  readonly forwarded: boolean
}

const fakeOpenAI = () => openai
const fakeAnthropic = () => anthropic
const TARGETS: readonly Target[] = [
  { model: 'model/oa', fake: fakeOpenAI, keyHeader: 'authorization', tenant: true, forwarded: true },
  { model: 'model/az', fake: fakeOpenAI, keyHeader: 'api-key', tenant: true, forwarded: true },
  { model: 'model/an', fake: fakeAnthropic, keyHeader: 'x-api-key', tenant: true, forwarded: false },
  { model: 'agent/on-oa', fake: fakeOpenAI, keyHeader: 'authorization', tenant: true, forwarded: false },
  { model: 'agent/on-az', fake: fakeOpenAI, keyHeader: 'api-key', tenant: true, forwarded: false },
  { model: 'agent/on-an', fake: fakeAnthropic, keyHeader: 'x-api-key', tenant: true, forwarded: false },
  { model: 'agent/on-env', fake: fakeOpenAI, keyHeader: 'authorization', tenant: false, forwarded: false },
]

const isCompletionCall = (c: { path: string }) =>
  c.path.endsWith('/chat/completions') || c.path === '/v1/messages'

/** A client whose every response is also kept as it crossed the wire: status, headers, body. */
function recordingClient(url: string): { client: OpenAI; wire: string[] } {
  const wire: string[] = []
  const client = new OpenAI({
    apiKey: 'unused',
    baseURL: `${url}/v1`,
    maxRetries: 0,
    fetch: async (input: string | URL | Request, init?: RequestInit) => {
      const res = await fetch(input, init)
      const headers = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n')
      wire.push(`${String(res.status)}\n${headers}\n\n${await res.clone().text()}`)
      return res
    },
  })
  return { client, wire }
}

/** Runs every echo against one target, streamed or not; the problems found, in words. */
async function runEchoes(ark: Ark, target: Target, stream: boolean): Promise<string[]> {
  const { client, wire } = recordingClient(ark.url)
  const problems: string[] = []
  const fake = target.fake()
  for (const header of target.tenant ? [target.keyHeader, 'x-tenant'] : [target.keyHeader]) {
    for (const form of FORMS) {
      for (const place of stream ? STREAMED : ONCE) {
        const name = `${target.model} ${stream ? 'streamed' : 'once'} ${header} ${form} ${place}`
        wire.length = 0
        const seen: string[] = []
        fake.next({ echo: place, form, header })
        const before = fake.calls.filter(isCompletionCall).length
        try {
          const messages = [{ role: 'user' as const, content: 'hello' }]
          if (stream) {
            const s = await client.chat.completions.create({ model: target.model, messages, stream: true })
            for await (const chunk of s) seen.push(JSON.stringify(chunk))
          } else {
            seen.push(JSON.stringify(await client.chat.completions.create({ model: target.model, messages })))
          }
        } catch (err) {
          seen.push(String(err))
          if (err instanceof OpenAI.APIError)
            seen.push(JSON.stringify(err.error), JSON.stringify(err.headers))
        }
        if (fake.calls.filter(isCompletionCall).length !== before + 1) {
          problems.push(`${name}: the upstream was not called once; ark answered ${seen.join(' ')}`)
          continue
        }
        const leak = leaked([...wire, ...seen].join('\n'))
        if (leak !== undefined) problems.push(`${name}: leaked ${leak}\n${wire.join('\n')}`)
        // Where ark passes the upstream's answer on, the echo is there to see, redacted.
        if (target.forwarded && !wire.join('\n').includes('[REDACTED]'))
          problems.push(`${name}: no [REDACTED] where the echo was\n${wire.join('\n')}`)
      }
    }
  }
  return problems
}

beforeAll(async () => {
  // Any key is accepted: the canaries are what the fakes echo, not what they check.
  openai = await startFakeOpenAI()
  anthropic = await startFakeAnthropic()
  dir = await mkdtemp(join(tmpdir(), 'ark-secrets-'))
  await writeManifests(0)
})

afterAll(async () => {
  await openai.close()
  await anthropic.close()
  await rm(dir, { recursive: true, force: true })
})

it('the detector finds every echo of every canary the fakes can send (the suite can fail)', async () => {
  for (const canary of CANARIES) {
    for (const form of FORMS) {
      expect(leaked(`x ${encodeEcho(`Bearer ${canary}`, form)} y`)).toContain(canary)
      expect(leaked(`x ${encodeEcho(canary, form)} y`)).toContain(canary)
    }
  }
  // And the fakes do echo: straight to one, without ark, the key comes back.
  openai.next({ echo: 'sse-split', form: 'base64' })
  const direct = await fetch(`${openai.url}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY_OA}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }], stream: true }),
  })
  expect(leaked(await direct.text())).toContain(KEY_OA)
})

describe.each([
  ['ark in this process', inProcess],
  ['ark dev as a process', asProcess],
])('%s', (_, start) => {
  let ark: Ark

  beforeAll(async () => {
    await writeManifests(0)
    ark = await start()
  }, 30_000)

  afterAll(async () => {
    await ark.close()
  })

  describe.each(TARGETS)('$model', (target) => {
    it.each([false, true])('stream %s: no echo of a key leaves ark', async (stream) => {
      const problems = await runEchoes(ark, target, stream)
      expect(problems).toEqual([])
    })
  })

  it('a probe answered with the key echoed leaves it out of status and logs', async () => {
    let round = 0
    /** A changed Secret makes every Model probe again. */
    const probeAgain = async (until: (list: ModelList) => boolean) => {
      round++
      await writeManifests(round)
      await ark.reload(until)
    }
    for (const form of FORMS) {
      for (const header of [undefined, 'x-tenant']) {
        openai.modelsEcho = { form, ...(header === undefined ? {} : { header }) }
        anthropic.modelsEcho = openai.modelsEcho
        await probeAgain(allRefused)
        const status = await ark.status()
        expect(status).toContain('Unauthorized')
        expect(leaked(status)).toBeUndefined()
        // A refused Model's callers are told why, from its status.
        for (const model of [...MODELS, 'agent/on-oa']) {
          const res = await fetch(`${ark.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
          })
          expect(res.status).toBe(503)
          expect(leaked(await res.text())).toBeUndefined()
        }
        // Back to healthy, so that the next round's verdict is a new one.
        openai.modelsEcho = undefined
        anthropic.modelsEcho = undefined
        await probeAgain(allAvailable)
      }
    }
  }, 60_000)

  it('nothing ark logged or counts holds a canary', async () => {
    const logs = ark.logs()
    // The runs above failed in many ways: there is something to read.
    expect(logs).toContain('[REDACTED]')
    // The probes' verdicts, messages and all, when the logs tell them.
    if (ark.logsConditions) expect(logs).toContain('Unauthorized')
    expect(leaked(logs)).toBeUndefined()
    const metrics = await (await fetch(`${ark.url}/metrics`)).text()
    expect(metrics).toContain('gen_ai_client_operation_duration_seconds')
    expect(leaked(metrics)).toBeUndefined()
    expect(leaked(await ark.status())).toBeUndefined()
  })
})
