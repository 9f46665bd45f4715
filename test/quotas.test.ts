/**
 * Quotas on the real `ark dev`, through the real clients: a key's runs a second and tokens a day, and a
 * namespace's, set in the keys file beside the keys. Past a limit the OpenAI SDK gets 429 RateLimitError with
 * Retry-After and the `x-ratelimit-*` headers (which admitted answers carry too), an A2A client a JSON-RPC
 * error with HTTP 429, an MCP host a tool error; a bucket refills at its rate; a day's tokens reset at midnight
 * UTC (unit-tested with a clock: gateway/auth/quotas.test.ts); limits change live with the file.
 */
import { writeFile } from 'node:fs/promises'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { newKey } from '../gateway/index.ts'
import type { KeyedArk } from './keyed-ark.ts'
import { keysFile, refusal, startKeyedArk } from './keyed-ark.ts'

const MANIFESTS = `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper, annotations: { ark.mckinsey.com/mcp-tool: "true" } }
spec: { prompt: I help. }
---
apiVersion: v1
kind: Namespace
metadata: { name: busy }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: busy }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: worker, namespace: busy }
spec: { prompt: I work. }
`

const slow = newKey()
const thrifty = newKey()
const free = newKey()
const other = newKey()

const keys = (slowLimits: string) =>
  keysFile(
    [
      { id: 'slow', sha256: slow.sha256, more: `    limits: ${slowLimits}\n` },
      { id: 'thrifty', sha256: thrifty.sha256, more: '    limits: { tokensPerDay: 40 }\n' },
      { id: 'free', sha256: free.sha256 },
      { id: 'other', sha256: other.sha256 },
    ],
    '  busy: { requestsPerSecond: 0.01, burst: 2 }\n',
  )

let keyed: KeyedArk
let base: string

beforeAll(async () => {
  keyed = await startKeyedArk('quotas', MANIFESTS, keys('{ requestsPerSecond: 2, burst: 2 }'))
  base = keyed.ark.url
}, 30_000)

afterAll(async () => {
  await keyed.stop()
})

const openai = (key: string) => new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 })
const ask = (key: string, model = 'agent/helper', content = 'hi') =>
  openai(key)
    .chat.completions.create({ model, messages: [{ role: 'user', content }] })
    .withResponse()

describe('quotas', () => {
  it("refuses a key's runs past its rate with 429, Retry-After and x-ratelimit headers; the bucket refills", async () => {
    const first = await ask(slow.key)
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2')
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('1')
    expect(first.response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+ms$/)
    await ask(slow.key)
    const refused = await refusal(ask(slow.key))
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError)
    expect(refused).toMatchObject({ status: 429, code: 'rate_limit_exceeded', type: 'rate_limit_error' })
    expect(refused?.headers?.get('retry-after')).toBe('1')
    expect(refused?.headers?.get('x-ratelimit-remaining-requests')).toBe('0')
    expect(refused?.message).toContain('the API key "slow" may start 2 runs a second (2 at once)')
    // Other keys are not held back by it.
    await ask(free.key)
    // A direct model call takes from the same bucket (model/ runs no pool, but it is a request).
    const direct = await refusal(ask(slow.key, 'model/default'))
    expect(direct).toBeInstanceOf(OpenAI.RateLimitError)
    expect(direct?.message).toContain('the API key "slow" may start 2 runs a second')
    // At 2 a second, a token is back within half a second.
    await vi.waitFor(
      async () => expect((await ask(slow.key)).data.choices[0]?.message.content).toBeTruthy(),
      {
        timeout: 5000,
        interval: 250,
      },
    )
  })

  it("refuses a namespace's runs past its rate whoever makes them, on every face", async () => {
    await ask(free.key, 'agent/busy/worker')
    await ask(other.key, 'agent/busy/worker')
    const refused = await refusal(ask(free.key, 'agent/busy/worker'))
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError)
    expect(refused?.message).toContain('namespace busy may start 0.01 runs a second (2 at once)')
    expect(Number(refused?.headers?.get('retry-after'))).toBeGreaterThan(60)
    // The default namespace is not limited by it.
    await ask(free.key)

    // A2A: a JSON-RPC error, with HTTP 429 and Retry-After, not a rejected task.
    const a2a = await fetch(`${base}/a2a/agent/busy/worker`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'a2a-version': '1.0',
        authorization: `Bearer ${other.key}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 3,
        method: 'SendMessage',
        params: { message: { messageId: 'm1', role: 'ROLE_USER', parts: [{ text: 'x' }] } },
      }),
    })
    expect(a2a.status).toBe(429)
    expect(Number(a2a.headers.get('retry-after'))).toBeGreaterThan(60)
    expect(await a2a.json()).toMatchObject({
      id: 3,
      error: {
        code: -32000,
        message: expect.stringContaining('rate_limit_exceeded: namespace busy') as string,
      },
    })

    // MCP: the tool call fails, saying why.
    const mcp = new McpClient({ name: 'quotas-test', version: '1.0.0' })
    await mcp.connect(
      new StreamableHTTPClientTransport(new URL(`${base}/mcp/agent/busy/worker`), {
        requestInit: { headers: { authorization: `Bearer ${other.key}` } },
      }),
    )
    const result = await mcp.callTool({ name: 'busy__worker', arguments: { message: 'x' } })
    expect(result.isError).toBe(true)
    expect(JSON.stringify(result.content)).toContain('rate_limit_exceeded')
    await mcp.close()
  })

  it("refuses a key whose day's tokens are spent, saying when they reset, and tells the SDK not to retry", async () => {
    const first = await ask(thrifty.key, 'agent/helper', 'a short message')
    expect(first.response.headers.get('x-ratelimit-limit-tokens')).toBe('40')
    expect(first.response.headers.get('x-ratelimit-remaining-tokens')).toBe('40')
    expect(first.response.headers.get('x-ratelimit-reset-tokens')).toMatch(/^(\d+h)?\d+m\d+s$|^\d+(\.\d)?s$/)
    const used = first.data.usage?.total_tokens ?? 0
    expect(used).toBeGreaterThan(0)
    expect(used).toBeLessThan(40)
    // Counted as the run ends: the next run is told what is left.
    const second = await ask(thrifty.key)
    expect(second.response.headers.get('x-ratelimit-remaining-tokens')).toBe(String(40 - used))
    // Spend the rest: a run that starts with tokens left may end past the limit, and the next is refused.
    let admitted = 2
    while ((await refusal(ask(thrifty.key, 'agent/helper', 'spend spend spend spend'))) === undefined)
      expect(++admitted).toBeLessThan(20)
    const spent = await refusal(ask(thrifty.key))
    expect(spent).toBeInstanceOf(OpenAI.RateLimitError)
    expect(spent).toMatchObject({ code: 'daily_token_quota_exceeded' })
    expect(spent?.headers?.get('x-should-retry')).toBe('false')
    expect(spent?.headers?.get('x-ratelimit-remaining-tokens')).toBe('0')
    const retryAfter = Number(spent?.headers?.get('retry-after'))
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(86_400)
  })

  it('follows the keys file: a limit lifted there is lifted at once', async () => {
    // Use up the bucket, then raise the limit.
    for (let i = 0; i < 3; i++) await refusal(ask(slow.key))
    expect(await refusal(ask(slow.key))).toBeInstanceOf(OpenAI.RateLimitError)
    await writeFile(keyed.keysPath, keys('{ requestsPerSecond: 1000, burst: 1000 }'))
    // Taken once the file is read again (each second): the answers then carry the new limit.
    await vi.waitFor(
      async () => {
        const r = await ask(slow.key).catch(() => undefined)
        expect(r?.response.headers.get('x-ratelimit-limit-requests')).toBe('1000')
      },
      { timeout: 10_000, interval: 200 },
    )
    for (let i = 0; i < 5; i++) expect((await ask(slow.key)).response.status).toBe(200)
  })
})
