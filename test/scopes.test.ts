/**
 * API key scopes on the real `ark dev`, through the real clients: a key sees and runs only what its scope
 * allows (namespaces, targets, routes), on every face: /v1/models and chat completions (the OpenAI SDK), model
 * passthrough, the A2A list and JSON-RPC (the A2A SDK), MCP tool lists, calls and scoped endpoints (the MCP
 * SDK). Refusals are 403 in each protocol's shape, and say nothing about what lies outside the scope. A2A tasks
 * and MCP sessions belong to the key that made them. A key revoked, or rescoped, ends the streams it holds.
 */
import { writeFile } from 'node:fs/promises'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { newKey } from '../gateway/index.ts'
import type { KeyEntry, KeyedArk } from './keyed-ark.ts'
import { keysFile, startKeyedArk } from './keyed-ark.ts'

const MANIFESTS = `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: slow }
spec:
  provider: mock
  model: { value: mock-slow }
  config: { mock: { properties: { chunkDelayMs: { value: "100" } } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper, annotations: { ark.mckinsey.com/mcp-tool: "true" } }
spec: { prompt: I help. }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: streamer }
spec: { prompt: I talk slowly., modelRef: { name: slow } }
---
apiVersion: v1
kind: Namespace
metadata: { name: team-a }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: team-a }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: research, namespace: team-a }
spec: { prompt: I research. }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: crew, namespace: team-a }
spec: { strategy: sequential, members: [{ name: research, type: agent }] }
`

const admin = newKey()
const teamA = newKey()
const helperOnly = newKey()
const a2aOnly = newKey()
const prometheus = newKey()

const KEYS: readonly KeyEntry[] = [
  { id: 'admin', sha256: admin.sha256 },
  { id: 'team-a', sha256: teamA.sha256, more: '    namespaces: [team-a]\n' },
  {
    id: 'helper',
    sha256: helperOnly.sha256,
    more: '    targets: [agent/helper, agent/streamer, model/default]\n    routes: [openai]\n',
  },
  { id: 'a2a', sha256: a2aOnly.sha256, more: '    targets: [agent/*/*]\n    routes: [a2a]\n' },
  { id: 'prometheus', sha256: prometheus.sha256, more: '    routes: [metrics]\n' },
]

let keyed: KeyedArk
let base: string

beforeAll(async () => {
  keyed = await startKeyedArk('scopes', MANIFESTS, keysFile(KEYS), ['--metrics-auth', 'true'])
  base = keyed.ark.url
}, 30_000)

afterAll(async () => {
  await keyed.stop()
})

const openai = (key: string) => new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 })
const bearer = (key: string) => ({ authorization: `Bearer ${key}` })
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as Error & { status?: number; code?: string; type?: string },
  )

async function mcpClient(key: string, path = '/mcp'): Promise<McpClient> {
  const client = new McpClient({ name: 'scopes-test', version: '1.0.0' })
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${base}${path}`), { requestInit: { headers: bearer(key) } }),
  )
  return client
}

async function rpc(path: string, key: string, method: string, params: unknown) {
  const r = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'a2a-version': '1.0', ...bearer(key) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method, params }),
  })
  return {
    status: r.status,
    body: (await r.json()) as { result?: unknown; error?: { code: number; message: string } },
  }
}

const send = (text: string) => ({
  message: { messageId: crypto.randomUUID(), role: 'ROLE_USER', parts: [{ text }] },
  configuration: { returnImmediately: false },
})

describe('API key scopes', () => {
  it('lists in /v1/models only what a key may call', async () => {
    const ids = async (key: string) => (await openai(key).models.list()).data.map((m) => m.id).sort()
    expect(await ids(admin.key)).toEqual([
      'agent/helper',
      'agent/streamer',
      'agent/team-a/research',
      'model/default',
      'model/slow',
      'model/team-a/default',
      'team/team-a/crew',
    ])
    expect(await ids(teamA.key)).toEqual([
      'agent/team-a/research',
      'model/team-a/default',
      'team/team-a/crew',
    ])
    expect(await ids(helperOnly.key)).toEqual(['agent/helper', 'agent/streamer', 'model/default'])
    // One model by id: what the list leaves out is not found either.
    const one = (key: string, id: string) => fetch(`${base}/v1/models/${id}`, { headers: bearer(key) })
    expect((await one(teamA.key, 'agent/team-a/research')).status).toBe(200)
    expect((await one(teamA.key, 'agent/helper')).status).toBe(404)
  })

  it('runs what a key may call, and refuses the rest with 403 whether or not it exists', async () => {
    const r = await openai(teamA.key).chat.completions.create({
      model: 'agent/team-a/research',
      messages: [{ role: 'user', content: 'hello' }],
    })
    expect(r.choices[0]?.message.content).toContain('hello')
    const team = await openai(teamA.key).chat.completions.create({
      model: 'team/team-a/crew',
      messages: [{ role: 'user', content: 'together' }],
    })
    expect(team.choices[0]?.message.content).toContain('together')

    const ask = (key: string, model: string) =>
      failure(openai(key).chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }] }))
    for (const model of ['agent/helper', 'helper', 'agent/default/helper', 'model/default']) {
      const refused = await ask(teamA.key, model)
      expect(refused, model).toBeInstanceOf(OpenAI.PermissionDeniedError)
      expect(refused, model).toMatchObject({
        status: 403,
        code: 'target_not_allowed',
        type: 'invalid_request_error',
      })
      expect(refused?.message, model).toContain('the API key "team-a" may not call')
    }
    // Outside the scope, a name that does not exist reads as one that does: the scope tells nothing.
    const ghost = await ask(teamA.key, 'agent/ghost')
    expect(ghost).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(ghost?.message).toBe(
      '403 the API key "team-a" may not call agent/ghost: its scope (namespaces, targets) leaves it out',
    )
    // Inside it, it is not found, as without keys.
    expect(await ask(teamA.key, 'agent/team-a/ghost')).toBeInstanceOf(OpenAI.NotFoundError)

    // A direct model call is a target like any other.
    expect(await ask(helperOnly.key, 'model/slow')).toBeInstanceOf(OpenAI.PermissionDeniedError)
    const direct = await openai(helperOnly.key).chat.completions.create({
      model: 'model/default',
      messages: [{ role: 'user', content: 'straight' }],
    })
    expect(direct.choices[0]?.message.content).toContain('straight')
  })

  it("refuses a route its scope leaves out, in that route's shape", async () => {
    // OpenAI routes for an A2A-only key.
    const models = await failure(openai(a2aOnly.key).models.list())
    expect(models).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(models).toMatchObject({ code: 'route_not_allowed' })
    // A2A and MCP for an OpenAI-only key: JSON-RPC errors.
    const a2a = await rpc('/a2a/agent/helper', helperOnly.key, 'SendMessage', send('x'))
    expect(a2a.status).toBe(403)
    expect(a2a.body.error).toMatchObject({ code: -32041 })
    expect(a2a.body.error?.message).toContain('may not call /a2a')
    const mcp = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...bearer(helperOnly.key),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    })
    expect(mcp.status).toBe(403)
    expect(await mcp.json()).toMatchObject({ error: { code: -32041 } })
    // Metrics for a key that only scrapes, and nothing else.
    expect((await fetch(`${base}/metrics`, { headers: bearer(prometheus.key) })).status).toBe(200)
    expect((await fetch(`${base}/metrics`, { headers: bearer(helperOnly.key) })).status).toBe(403)
    expect((await fetch(`${base}/v1/models`, { headers: bearer(prometheus.key) })).status).toBe(403)
    const counted = await (await fetch(`${base}/metrics`, { headers: bearer(admin.key) })).text()
    expect(counted).toMatch(/ark_auth_requests_total\{key="helper",result="forbidden"\} [1-9]/)
  })

  it('lists over A2A only what a key may call, keeps tasks per key, and refuses the rest', async () => {
    const list = async (key: string) => {
      const body = (await (await fetch(`${base}/a2a`, { headers: bearer(key) })).json()) as {
        agents: { name: string }[]
        teams: { name: string }[]
      }
      return [...body.agents, ...body.teams].map((c) => c.name).sort()
    }
    expect(await list(teamA.key)).toEqual(['crew', 'research'])
    expect(await list(a2aOnly.key)).toEqual(['helper', 'research', 'streamer'])
    expect((await fetch(`${base}/a2a`)).status).toBe(401)

    const sent = await rpc('/a2a/agent/team-a/research', teamA.key, 'SendMessage', send('kept'))
    expect(JSON.stringify(sent.body.result)).toContain('kept')
    const taskId = (sent.body.result as { task: { id: string } }).task.id
    expect(
      (await rpc('/a2a/agent/team-a/research', teamA.key, 'GetTask', { id: taskId })).body.result,
    ).toBeDefined()
    // Another key that may call the same agent does not see the task.
    const other = await rpc('/a2a/agent/team-a/research', admin.key, 'GetTask', { id: taskId })
    expect(other.body.error).toMatchObject({ code: -32001 })

    const refused = await rpc('/a2a/agent/helper', teamA.key, 'SendMessage', send('x'))
    expect(refused.status).toBe(403)
    expect(refused.body).toMatchObject({ id: 7, error: { code: -32041 } })
    const ghost = await rpc('/a2a/agent/ghost', teamA.key, 'SendMessage', send('x'))
    expect(ghost.status).toBe(403)
  })

  it("lists and calls over MCP only what a key may call; a session is its key's alone", async () => {
    const client = await mcpClient(teamA.key)
    const tools = (await client.listTools()).tools.map((t) => t.name).sort()
    expect(tools).toEqual(['team-a__research', 'team__team-a__crew'])
    const answer = await client.callTool({ name: 'team-a__research', arguments: { message: 'via mcp' } })
    expect(JSON.stringify(answer.content)).toContain('via mcp')
    const hidden = await client.callTool({ name: 'helper', arguments: { message: 'x' } }).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    expect(hidden?.message).toContain('there is no tool "helper" here')

    // The session's id is no use with another key.
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId ?? ''
    expect(sessionId).not.toBe('')
    const borrowed = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId,
        'mcp-protocol-version': '2025-06-18',
        ...bearer(admin.key),
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    })
    expect(borrowed.status).toBe(404)
    await client.close()

    // An endpoint of one agent the key may not call: refused before any session, existing or not.
    for (const path of ['/mcp/agent/helper', '/mcp/agent/ghost']) {
      const r = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...bearer(teamA.key),
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 'x', version: '1' },
          },
        }),
      })
      expect(r.status, path).toBe(403)
      expect(await r.json(), path).toMatchObject({ error: { code: -32041 } })
    }
  })

  it('ends the streams of a key that is revoked or rescoped, with an error event, and cancels their runs', async () => {
    const words = Array.from({ length: 200 }, (_, i) => `w${String(i)}`).join(' ')
    const stream = await openai(helperOnly.key).chat.completions.create({
      model: 'agent/streamer',
      messages: [{ role: 'user', content: `answer: ${words}` }],
      stream: true,
    })
    // A run whose answer does not stream is cancelled too.
    const plain = failure(
      openai(helperOnly.key).chat.completions.create({
        model: 'agent/streamer',
        messages: [{ role: 'user', content: `answer: ${words}` }],
      }),
    )
    const received: string[] = []
    const reading = (async () => {
      for await (const chunk of stream) received.push(chunk.choices[0]?.delta.content ?? '')
    })().then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    await vi.waitFor(() => expect(received.join('')).toContain('w3'), { timeout: 10_000, interval: 50 })
    // Rescoped: the key may no longer call the streamer.
    await writeFile(
      keyed.keysPath,
      keysFile([
        ...KEYS.filter((k) => k.id !== 'helper'),
        {
          id: 'helper',
          sha256: helperOnly.sha256,
          more: '    targets: [agent/helper]\n    routes: [openai]\n',
        },
      ]),
    )
    const ended = await reading
    expect(ended?.message).toContain('revoked or its scope changed')
    expect(received.join('')).not.toContain('w150')
    // Both runs were cancelled, as when a client leaves: the plain one's caller is told so.
    expect(await plain).toBeInstanceOf(OpenAI.APIError)
    await vi.waitFor(
      async () =>
        expect(await (await fetch(`${base}/metrics`, { headers: bearer(admin.key) })).text()).toMatch(
          /ark_agent_runs_total\{agent="default\/streamer",outcome="cancelled"\} 2/,
        ),
      { timeout: 10_000, interval: 100 },
    )
    // The new scope holds for what comes next.
    const now = await failure(
      openai(helperOnly.key).chat.completions.create({
        model: 'agent/streamer',
        messages: [{ role: 'user', content: 'x' }],
      }),
    )
    expect(now).toBeInstanceOf(OpenAI.PermissionDeniedError)
  })

  it('names no key in any log line', () => {
    const logs = `${keyed.ark.lines.map((l) => JSON.stringify(l)).join('\n')}\n${keyed.ark.stderr()}`
    for (const key of [admin, teamA, helperOnly, a2aOnly, prometheus]) expect(logs).not.toContain(key.key)
  })
})
