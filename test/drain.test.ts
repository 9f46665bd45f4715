/**
 * Graceful drain of the real `ark dev` on SIGTERM: readiness fails at once while requests are still served
 * (--drain-delay), then no new connection is taken and requests in flight, streamed or not, finish within the
 * grace (--shutdown-grace); what is still running at its end is cut, and a second signal stops at once. An
 * MCP session's notification stream, which never ends by itself, does not hold the drain up.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startArk } from './ark-process.ts'

const MANIFESTS = `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec:
  provider: mock
  model: { value: mock-1 }
  config: { mock: { properties: { latencyMs: { value: "1500" }, chunkDelayMs: { value: "50" } } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: slow }
spec: { prompt: I take my time. }
`

let dir: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ark-drain-'))
  await writeFile(join(dir, 'agents.yaml'), MANIFESTS)
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

const ask = (base: string, content: string) =>
  new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions.create({
    model: 'agent/slow',
    messages: [{ role: 'user', content }],
  })

describe('graceful drain on SIGTERM', () => {
  it('fails readiness first, then finishes what is in flight (streams too) and takes nothing new', async () => {
    const ark = await startArk([
      'dev',
      '-f',
      dir,
      '--port',
      '0',
      '--drain-delay',
      '1',
      '--shutdown-grace',
      '20',
    ])
    const base = ark.url
    expect((await fetch(`${base}/readyz`)).status).toBe(200)
    const inFlight = [1, 2, 3].map((i) => ask(base, `question ${String(i)}`))
    const words = Array.from({ length: 30 }, (_, i) => `w${String(i)}`).join(' ')
    const streamed = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions
      .create({
        model: 'agent/slow',
        messages: [{ role: 'user', content: `answer: ${words}` }],
        stream: true,
      })
      .then(async (stream) => {
        let text = ''
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
        return text
      })
    // An MCP session with its standalone GET stream open: the SDK's own, or this one if the SDK's is not
    // there yet (the server holds one per session and answers a second with 409).
    const mcp = new Client({ name: 'drain-test', version: '1.0.0' })
    const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`))
    await mcp.connect(transport)
    const notifications = await fetch(`${base}/mcp`, {
      headers: {
        accept: 'text/event-stream',
        'mcp-session-id': transport.sessionId ?? '',
        'mcp-protocol-version': transport.protocolVersion ?? '',
      },
    })
    expect([200, 409]).toContain(notifications.status)
    await new Promise((r) => setTimeout(r, 300))
    ark.signal('SIGTERM')
    await ark.waitFor((l) => l.msg === 'draining: readiness fails; still serving meanwhile', 5000)

    // The delay: not ready, still serving (a load balancer has not caught up yet).
    const readyz = await fetch(`${base}/readyz`)
    expect(readyz.status).toBe(503)
    expect(await readyz.json()).toEqual({ status: 'draining' })
    const late = ask(base, 'sent during the delay')

    // Then: nothing new is taken.
    await ark.waitFor((l) => l.msg === 'stopping', 5000)
    await expect(fetch(`${base}/healthz`)).rejects.toThrow()

    // What was in flight finishes, whole.
    const answers = await Promise.all(inFlight)
    expect(answers.map((a) => a.choices[0]?.message.content)).toEqual([
      'You said: question 1',
      'You said: question 2',
      'You said: question 3',
    ])
    expect((await late).choices[0]?.message.content).toBe('You said: sent during the delay')
    expect(await streamed).toBe(words)
    expect(await ark.exited).toEqual({ code: 0, signal: null })
    // Nothing was cut: the notification stream was ended when the grace began, not at its end (20 s).
    expect(ark.lines.some((l) => String(l.msg).includes('were cut'))).toBe(false)
    await notifications.body?.cancel().catch(() => undefined)
    await mcp.close().catch(() => undefined)
  }, 30_000)

  it('on Deno, counts the streams it cuts at the end of the grace', async () => {
    const ark = await startArk(['dev', '-f', dir, '--port', '0', '--shutdown-grace', '1'], {
      runtime: 'deno',
    })
    const words = Array.from({ length: 60 }, (_, i) => `w${String(i)}`).join(' ')
    const started: Promise<void>[] = []
    const stream = () => {
      let firstChunk: () => void = () => {}
      started.push(new Promise<void>((resolve) => (firstChunk = resolve)))
      return new OpenAI({ baseURL: `${ark.url}/v1`, apiKey: 'unused', maxRetries: 0 }).chat.completions
        .create({
          model: 'agent/slow',
          messages: [{ role: 'user', content: `answer: ${words}` }],
          stream: true,
        })
        .then(async (s) => {
          for await (const chunk of s) if (chunk.choices[0]?.delta.content) firstChunk()
        })
        .catch(() => undefined)
    }
    const streams = [stream(), stream()]
    // Both streaming (their first words arrived): the grace cannot see them as anything but in flight.
    await Promise.all(started)
    ark.signal('SIGTERM')
    expect(await ark.exited).toEqual({ code: 0, signal: null })
    // Both were still streaming (their answers take over 4 s) when the 1 s grace ended.
    expect(ark.lines.find((l) => String(l.msg).includes('were cut'))).toMatchObject({ requests: 2 })
    await Promise.all(streams)
  }, 30_000)

  it('cuts what is still running at the end of the grace, and stops at once on a second signal', async () => {
    const ark = await startArk(['dev', '-f', dir, '--port', '0', '--shutdown-grace', '0'])
    const cut = ask(ark.url, 'too slow').then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    await new Promise((r) => setTimeout(r, 200))
    ark.signal('SIGTERM')
    expect(await ark.exited).toEqual({ code: 0, signal: null })
    // Cut at the end of the grace (none): it did not wait for the run's answer.
    expect(await cut).toBeInstanceOf(OpenAI.APIConnectionError)
    expect(ark.lines.find((l) => String(l.msg).includes('were cut'))).toMatchObject({ requests: 1 })

    const patient = await startArk(['dev', '-f', dir, '--port', '0', '--shutdown-grace', '60'])
    const pending = ask(patient.url, 'never finished').catch(() => undefined)
    await new Promise((r) => setTimeout(r, 200))
    patient.signal('SIGTERM')
    await patient.waitFor((l) => l.msg === 'stopping', 5000)
    patient.signal('SIGTERM')
    expect(await patient.exited).toEqual({ code: 0, signal: null })
    expect(
      patient.lines.some((l) => l.msg === 'stopped at a second signal: requests in flight were cut'),
    ).toBe(true)
    await pending
  }, 30_000)
})
