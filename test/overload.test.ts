/**
 * A bound on the runs one gateway admits at once (`--max-in-flight`), on the real `ark dev` through the
 * OpenAI SDK: past it a request is refused at once with 503 `overloaded` and Retry-After, the runs within it
 * are answered, and their slots are free again once they end (streamed or not, refused or not).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'

const MANIFESTS = `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec:
  provider: mock
  model: { value: mock-1 }
  config: { mock: { properties: { latencyMs: { value: "800" } } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: slow }
spec: { prompt: I take my time. }
`

let dir: string
let ark: ArkProcess

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ark-overload-'))
  await writeFile(join(dir, 'agents.yaml'), MANIFESTS)
  ark = await startArk(['dev', '-f', dir, '--port', '0', '--max-in-flight', '2'])
}, 30_000)

afterAll(async () => {
  await ark.stop()
  await rm(dir, { recursive: true, force: true })
})

const openai = () => new OpenAI({ baseURL: `${ark.url}/v1`, apiKey: 'unused', maxRetries: 0 })
const ask = (content: string, stream = false) =>
  stream
    ? openai()
        .chat.completions.create({ model: 'agent/slow', messages: [{ role: 'user', content }], stream: true })
        .then(async (s) => {
          let text = ''
          for await (const chunk of s) text += chunk.choices[0]?.delta.content ?? ''
          return text
        })
    : openai()
        .chat.completions.create({ model: 'agent/slow', messages: [{ role: 'user', content }] })
        .then((r) => r.choices[0]?.message.content ?? '')

describe('--max-in-flight', () => {
  it('refuses past the bound at once with 503 overloaded, answers the rest, and frees slots as runs end', async () => {
    const first = ask('one')
    const second = ask('two', true)
    await new Promise((r) => setTimeout(r, 150))
    const refused = ask('three').then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    )
    // At once: before the runs it was refused for end (not queued behind them).
    expect(await Promise.race([refused.then(() => 'refused'), first.then(() => 'first ended')])).toBe(
      'refused',
    )
    const third = await refused
    expect(third).toBeInstanceOf(OpenAI.InternalServerError)
    expect(third).toMatchObject({ status: 503, code: 'overloaded' })
    expect(third?.headers?.get('retry-after')).toBe('1')
    expect(third?.message).toContain('--max-in-flight')
    // A2A: a JSON-RPC error with HTTP 503 and Retry-After before any task begins, as quotas answer.
    const a2a = await fetch(`${ark.url}/a2a/agent/slow`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'a2a-version': '1.0' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'SendMessage',
        params: { message: { messageId: 'm1', role: 'ROLE_USER', parts: [{ text: 'x' }] } },
      }),
    })
    expect(a2a.status).toBe(503)
    expect(a2a.headers.get('retry-after')).toBe('1')
    expect(await a2a.json()).toMatchObject({
      id: 7,
      error: { code: -32000, message: expect.stringContaining('overloaded: ') as string },
    })
    expect(await first).toBe('You said: one')
    expect(await second).toBe('You said: two')
    // Both slots are free again; a refused request took none.
    expect(await Promise.all([ask('four'), ask('five', true)])).toEqual(['You said: four', 'You said: five'])
  })
})
