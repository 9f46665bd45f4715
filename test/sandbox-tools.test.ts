/**
 * Webhook and Wasm tools end to end: manifests in a folder, `ark dev`'s embedded system, the real OpenAI SDK
 * calling /v1/chat/completions, the mock model calling the tools, a local HTTP server as the webhook.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Embedded } from '../bin/embedded.ts'
import { startEmbedded } from '../bin/embedded.ts'
import { serve, silentLogger } from '../gateway/index.ts'
import { wasm } from '../sandbox/testdata/plugins.ts'
import { metric } from './gateway-suite.ts'

const TOKEN = 'tok-3f9a-secret'

interface Seen {
  readonly method: string
  readonly url: string
  readonly auth: string | undefined
  readonly body: string
}

describe('sandboxed tools through /v1/chat/completions', () => {
  let dir: string
  let system: Embedded
  let url: string
  let close: () => Promise<void>
  let client: OpenAI
  const seen: Seen[] = []
  /** Every answer the suite got: none may hold the Secret the webhooks send. */
  const answers: string[] = []
  let web: ReturnType<typeof createServer>

  beforeAll(async () => {
    web = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body })
        const path = req.url ?? ''
        if (path.startsWith('/weather/')) {
          if (req.headers.authorization !== `Bearer ${TOKEN}`) {
            res.writeHead(401).end('missing token')
            return
          }
          const city = decodeURIComponent(path.slice('/weather/'.length).split('?')[0] ?? '')
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ city, sky: 'clear' }))
        } else if (path === '/orders') res.writeHead(201).end(`ordered ${body}`)
        else if (path === '/news') res.writeHead(200).end(`headlines about ${body}`)
        else if (path === '/slow') setTimeout(() => res.writeHead(200).end('late'), 3000)
        else res.writeHead(500).end('boom')
      })
    })
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${String((web.address() as AddressInfo).port)}`

    dir = await mkdtemp(join(tmpdir(), 'ark-sandbox-'))
    await writeFile(join(dir, 'loop.wasm'), await wasm('loop'))
    const echo = Buffer.from(await wasm('seven')).toString('base64')
    await writeFile(
      join(dir, 'tools.yaml'),
      `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: v1
kind: Secret
metadata: { name: weather-api }
type: Opaque
stringData: { token: "Bearer ${TOKEN}" }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: weather }
spec:
  type: http
  description: Current weather of a city.
  inputSchema: { type: object, properties: { city: { type: string } }, required: [city] }
  http:
    url: "${base}/weather/{{city}}"
    headers:
      - name: Authorization
        value: { valueFrom: { secretKeyRef: { name: weather-api, key: token } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: order }
spec:
  type: http
  inputSchema: { type: object, properties: { item: { type: string } }, required: [item] }
  http:
    url: "${base}/orders"
    method: POST
    body: '{"item": "{{item}}", "channel": "{{channel}}"}'
    bodyParameters: [{ name: channel, value: agents }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: profile }
spec:
  type: http
  inputSchema: { type: object, properties: { id: { type: string } }, required: [id] }
  http:
    url: "${base}/users/{{id}}/profile"
    headers:
      - name: Authorization
        value: { valueFrom: { secretKeyRef: { name: weather-api, key: token } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: slow }
spec:
  type: http
  http: { url: "${base}/slow", timeout: 1s }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: broken-hook }
spec:
  type: http
  http: { url: "${base}/fail" }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: stats }
spec:
  type: wasm
  description: Counts words.
  inputSchema: { type: object, properties: { text: { type: string } }, required: [text] }
  wasm:
    module: { builtin: text-stats }
    config: [{ name: minLength, value: "4" }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: spinner }
spec:
  type: wasm
  wasm:
    module: { path: ${join(dir, 'loop.wasm')} }
    limits: { timeoutMs: 300 }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: plugins }
binaryData:
  seven.wasm: ${echo}
  broken.wasm: ${Buffer.from('definitely not wasm').toString('base64')}
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: seven }
spec:
  type: wasm
  wasm: { module: { configMapKeyRef: { name: plugins, key: seven.wasm } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: broken }
spec:
  type: wasm
  wasm: { module: { configMapKeyRef: { name: plugins, key: broken.wasm } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: tooler }
spec:
  prompt: Use your tools.
  tools:
    - { type: custom, name: weather }
    - { type: custom, name: order }
    - { type: custom, name: profile }
    - { type: custom, name: slow }
    - { type: custom, name: broken-hook }
    - { type: custom, name: stats }
    - { type: custom, name: spinner }
    - { type: custom, name: seven }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: uses-broken }
spec:
  prompt: Never runs.
  tools: [{ type: custom, name: broken }]
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: newsroom }
spec:
  model: mock
  systemPrompt: You read the news.
  tools:
    - name: fetch_news
      description: Fetch the latest news headlines for a given topic.
      url: "${base}/news"
      method: POST
      inputSchema: |
        {"type":"object","properties":{"topic":{"type":"string"}},"required":["topic"]}
`,
    )
    system = await startEmbedded({ manifests: dir, watch: false, log: silentLogger, probeIntervalSeconds: 0 })
    await system.toolModules?.idle()
    await system.controlPlane.settled()
    const server = await serve(system.gateway.fetch, { host: '127.0.0.1', port: 0 })
    url = `http://127.0.0.1:${String(server.port)}`
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 })
    close = async () => {
      await server.close()
      await system.close()
    }
  })

  afterAll(async () => {
    await close()
    web.closeAllConnections()
    await new Promise<void>((resolve) => web.close(() => resolve()))
    await rm(dir, { recursive: true, force: true })
  })

  const ask = async (model: string, content: string): Promise<string> => {
    const completion = await client.chat.completions.create({ model, messages: [{ role: 'user', content }] })
    const answer = completion.choices[0]?.message.content ?? ''
    answers.push(answer)
    return answer
  }

  it('a webhook fills its URL template and sends the header from the Secret', async () => {
    const answer = await ask('agent/tooler', 'weather {"city": "São Paulo"}')
    expect(answer).toBe('weather: {"city":"São Paulo","sky":"clear"}')
    const request = seen.find((s) => s.url.startsWith('/weather/'))
    expect(request?.url).toBe('/weather/S%C3%A3o%20Paulo')
    expect(request?.auth).toBe(`Bearer ${TOKEN}`)
  })

  it('a body template gets the arguments, JSON-escaped, and the fixed body parameters', async () => {
    const answer = await ask('agent/tooler', 'order {"item": "tea \\"green\\""}')
    expect(answer).toBe('order: ordered {"item": "tea \\"green\\"", "channel": "agents"}')
  })

  it("the model cannot override the Tool's fixed body values", async () => {
    const answer = await ask('agent/tooler', 'order {"item": "tea", "channel": "evil"}')
    expect(answer).toBe('order: ordered {"item": "tea", "channel": "agents"}')
  })

  it('an argument cannot climb out of the path the Tool names', async () => {
    const before = seen.length
    const answer = await ask('agent/tooler', 'profile {"id": ".."}')
    expect(answer).toBe('profile: error: argument id may not be "..": it would change the URL\'s path')
    expect(seen.length).toBe(before)
    // An id with a slash is one path segment, encoded.
    await ask('agent/tooler', 'profile {"id": "../admin"}')
    expect(seen.at(-1)?.url).toBe('/users/..%2Fadmin/profile')
  })

  it('arguments that do not match inputSchema never reach the webhook', async () => {
    const before = seen.length
    const answer = await ask('agent/tooler', 'weather {"town": "Oslo"}')
    expect(answer).toMatch(/^weather: error: invalid arguments for weather: .*city/)
    expect(seen.length).toBe(before)
  })

  it('webhook errors and timeouts come back to the model as tool errors', async () => {
    expect(await ask('agent/tooler', 'broken-hook {}')).toBe('broken-hook: error: HTTP 500: boom')
    const slow = await ask('agent/tooler', 'slow {}')
    expect(slow).toMatch(/^slow: error: slow: the plugin did not finish within 1000 ms/)
  })

  it('an ArkAgent inline webhook tool posts its arguments as JSON', async () => {
    expect(await ask('agent/newsroom', 'fetch_news {"topic": "wasm"}')).toBe(
      'fetch_news: headlines about {"topic":"wasm"}',
    )
  })

  it('a custom AssemblyScript tool runs in the tool loop, with its config', async () => {
    const answer = await ask('agent/tooler', 'stats {"text": "tea and more tea, then more tea"}')
    expect(JSON.parse(answer.replace(/^stats: /, ''))).toEqual({
      words: 7,
      lines: 1,
      characters: 31,
      // The first of the longest words.
      longest: 'more',
      // minLength 4 leaves "tea" (3 letters) out.
      top: 'more',
    })
    expect(await ask('agent/tooler', 'seven {}')).toBe('seven: \u0007')
  })

  it('a plugin stuck in a loop is stopped at its timeout while other requests keep being answered', async () => {
    const spinning = ask('agent/tooler', 'spinner {}')
    const others = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ask('agent/tooler', `stats {"text": "call ${String(i)}"}`)),
    )
    for (const o of others) expect(o).toMatch(/^stats: \{"words":2,/)
    expect(await spinning).toMatch(/^spinner: error: spinner: the plugin did not finish within 300 ms/)
    expect(await metric(url, 'ark_tool_calls_total', { tool: 'spinner', outcome: 'timeout' })).toBe(1)
    expect(
      await metric(url, 'ark_tool_calls_total', { tool: 'stats', outcome: 'ok' }),
    ).toBeGreaterThanOrEqual(20)
  })

  it('a malformed module makes its Tool, and its agents, unavailable at load, with the reason', async () => {
    const store = system.controlPlane.store
    const tool = [...store.list()].find((r) => r.kind === 'Tool' && r.ref.name === 'broken')
    const available = store.status(tool?.key ?? '')?.conditions.find((c) => c.type === 'Available')
    expect(available?.status).toBe('False')
    expect(available?.reason).toBe('ModuleRejected')
    expect(available?.message).toMatch(/not a valid WebAssembly module|not a WebAssembly module/)
    const good = [...store.list()].find((r) => r.kind === 'Tool' && r.ref.name === 'seven')
    const loaded = store.status(good?.key ?? '')?.conditions.find((c) => c.type === 'ModuleLoaded')
    expect(loaded).toMatchObject({ status: 'True', reason: 'ModuleLoaded' })
    await expect(ask('agent/uses-broken', 'hello')).rejects.toMatchObject({ status: 503 })
  })

  it('no tool result, error or metric ever held the Secret', async () => {
    expect(answers.length).toBeGreaterThan(10)
    for (const a of answers) expect(a).not.toContain(TOKEN)
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).not.toContain(TOKEN)
  })

  it('exposes the sandbox metrics', async () => {
    expect(await metric(url, 'ark_sandbox_threads')).toBeGreaterThan(0)
    expect(await metric(url, 'ark_sandbox_instances')).toBeGreaterThan(0)
    expect(await metric(url, 'ark_sandbox_module_loads_total', { result: 'hit' })).toBeGreaterThan(0)
    expect(await metric(url, 'ark_sandbox_module_loads_total', { result: 'rejected' })).toBeGreaterThan(0)
    expect(await metric(url, 'ark_sandbox_calls_total', { outcome: 'timeout' })).toBeGreaterThanOrEqual(2)
  })
})
