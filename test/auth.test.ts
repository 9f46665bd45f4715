/**
 * API keys on the real `ark dev` (`--api-keys <file>`), through the real clients: the OpenAI SDK, the A2A SDK
 * and the MCP SDK get in with a key and are refused without one, each in its protocol's own shape (401,
 * WWW-Authenticate); health, readiness, agent cards and (unless --metrics-auth) metrics stay open; a key
 * rotated out of the file is refused within a couple of seconds and a new one let in; the key itself is in no
 * log line, and the metrics name the key's id.
 */
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SendMessageRequest } from '@a2a-js/sdk'
import { AgentCard, Role } from '@a2a-js/sdk'
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from '@a2a-js/sdk/client'
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { newKey } from '../gateway/index.ts'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { KeyedArk } from './keyed-ark.ts'
import { keysFile, startKeyedArk } from './keyed-ark.ts'
import { startKube } from './kube.ts'
import { startRedis } from './redis-server.ts'

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
`

const first = newKey()
const second = newKey()
const third = newKey()
let keyed: KeyedArk
let ark: ArkProcess
let dir: string
let base: string

beforeAll(async () => {
  keyed = await startKeyedArk('auth', MANIFESTS, keysFile([{ id: 'ci', sha256: first.sha256 }]))
  ;({ ark, dir } = keyed)
  base = ark.url
}, 30_000)

afterAll(async () => {
  await keyed.stop()
})

/** A v1.0 SendMessage of one user text part, as the SDK's types spell it. */
function userMessage(text: string): SendMessageRequest {
  return {
    tenant: '',
    message: {
      messageId: crypto.randomUUID(),
      contextId: '',
      taskId: '',
      role: Role.ROLE_USER,
      parts: [
        { content: { $case: 'text', value: text }, metadata: {}, filename: '', mediaType: 'text/plain' },
      ],
      metadata: {},
      extensions: [],
      referenceTaskIds: [],
    },
    configuration: {
      acceptedOutputModes: [],
      taskPushNotificationConfig: undefined,
      returnImmediately: false,
    },
    metadata: {},
  }
}

const openai = (key: string) => new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 })

describe('with --api-keys', () => {
  it('lets the OpenAI SDK in with a key, and refuses it without one in OpenAI shape', async () => {
    const r = await openai(first.key).chat.completions.create({
      model: 'agent/helper',
      messages: [{ role: 'user', content: 'hello' }],
    })
    expect(r.choices[0]?.message.content).toContain('hello')
    expect((await openai(first.key).models.list()).data.map((m) => m.id)).toContain('agent/helper')

    const refused = await openai('sk-not-a-key')
      .chat.completions.create({ model: 'agent/helper', messages: [{ role: 'user', content: 'x' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      )
    expect(refused).toBeInstanceOf(OpenAI.AuthenticationError)
    expect(refused).toMatchObject({ status: 401, code: 'invalid_api_key', type: 'invalid_request_error' })

    const none = await fetch(`${base}/v1/models`)
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/)
    expect(await none.json()).toEqual({
      error: {
        message: 'no API key: send it as Authorization: Bearer <key>',
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_api_key',
      },
    })
  })

  it('declares the bearer scheme in the agent cards, v1.0 and v0.3', async () => {
    const card = (await (
      await fetch(`${base}/a2a/agent/helper/.well-known/agent-card.json`, {
        headers: { 'a2a-version': '1.0' },
      })
    ).json()) as {
      securitySchemes: Record<string, unknown>
      securityRequirements: unknown[]
    }
    expect(card.securitySchemes).toEqual({
      apiKey: {
        httpAuthSecurityScheme: {
          description: 'An ark API key, as Authorization: Bearer <key>.',
          scheme: 'Bearer',
        },
      },
    })
    expect(card.securityRequirements).toEqual([{ schemes: { apiKey: { list: [] } } }])
    // The SDK reads it back as the scheme it is.
    expect(AgentCard.fromJSON(card).securitySchemes.apiKey?.scheme).toMatchObject({
      $case: 'httpAuthSecurityScheme',
      value: { scheme: 'Bearer' },
    })
    const legacy = (await (await fetch(`${base}/a2a/agent/helper/.well-known/agent.json`)).json()) as {
      securitySchemes: Record<string, unknown>
      security: unknown[]
    }
    expect(legacy.securitySchemes).toEqual({
      apiKey: {
        type: 'http',
        scheme: 'bearer',
        description: 'An ark API key, as Authorization: Bearer <key>.',
      },
    })
    expect(legacy.security).toEqual([{ apiKey: [] }])
  })

  it('keeps health, readiness, agent cards and metrics open, and asks a key for the /a2a list', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/a2a/agent/helper/.well-known/agent-card.json'])
      expect((await fetch(`${base}${path}`)).status, path).toBe(200)
    // The list names every agent: it shows a key what that key may call.
    expect((await fetch(`${base}/a2a`)).status).toBe(401)
    expect((await fetch(`${base}/a2a`, { headers: { authorization: `Bearer ${first.key}` } })).status).toBe(
      200,
    )
  })

  it('lets the A2A SDK in with a key (JSON-RPC), and refuses a call without one with a JSON-RPC error', async () => {
    const withKey: typeof fetch = (input, init) => {
      const headers = new Headers(init?.headers)
      headers.set('authorization', `Bearer ${first.key}`)
      return fetch(input, { ...init, headers })
    }
    const factory = new ClientFactory(
      ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
        transports: [new JsonRpcTransportFactory({ fetchImpl: withKey })],
      }),
    )
    const client = await factory.createFromUrl(`${base}/a2a/agent/helper/`)
    const reply = await client.sendMessage(userMessage('via a2a'))
    expect(JSON.stringify(reply)).toContain('via a2a')

    const anonymous = await new ClientFactory().createFromUrl(`${base}/a2a/agent/helper/`)
    const refusal = await anonymous.sendMessage(userMessage('x')).then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    // A refusal of its own, not one of A2A's (its -32001 is TaskNotFound).
    expect(refusal?.message).toContain('no API key')
    expect(refusal?.constructor.name).not.toBe('TaskNotFoundError')
    const raw = await fetch(`${base}/a2a/agent/helper`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'SendMessage', params: {} }),
    })
    expect(raw.status).toBe(401)
    expect(await raw.json()).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32040 } })
  })

  it('lets the MCP SDK in with a key, and refuses a session without one', async () => {
    const client = new McpClient({ name: 'auth-test', version: '1.0.0' })
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${first.key}` } },
      }),
    )
    const tools = await client.listTools()
    expect(tools.tools.length).toBeGreaterThan(0)
    await client.close()

    const anonymous = new McpClient({ name: 'auth-test', version: '1.0.0' })
    await expect(
      anonymous.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`))),
    ).rejects.toThrow(/401|no API key/)
    const raw = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    })
    expect(raw.status).toBe(401)
    expect(raw.headers.get('www-authenticate')).toMatch(/^Bearer/)
    expect(await raw.json()).toMatchObject({ jsonrpc: '2.0', error: { code: -32040 } })
    for (const method of ['GET', 'DELETE'])
      expect((await fetch(`${base}/mcp`, { method })).status, method).toBe(401)
  })

  it('opens nothing but what it names: every other path, method and way of sending a key is refused', async () => {
    const status = async (path: string, init: RequestInit = {}) =>
      (await fetch(`${base}${path}`, init)).status
    const key = { authorization: `Bearer ${first.key}` }
    // Cards are open for reading (HEAD as GET); the rest of the A2A tree is not.
    expect(await status('/a2a/agent/helper/.well-known/agent-card.json', { method: 'HEAD' })).toBe(200)
    expect(await status('/a2a/agent/helper/.well-known/other')).toBe(401)
    expect(await status('/a2a/agent/.well-known/agent-card.json/x')).toBe(401)
    expect(await status('/a2a/agent/helper/.well-known/agent-card.json', { method: 'POST' })).toBe(401)
    // Routes that only refuse still ask first: the key decides before the route answers.
    expect(await status('/v1/models', { method: 'PUT' })).toBe(401)
    expect(await status('/v1/chat/completions', { method: 'OPTIONS' })).toBe(401)
    expect(await status('/v1/models/agent/helper')).toBe(401)
    expect(await status('/v1/models/agent/helper', { headers: key })).toBe(200)
    expect(await status('/no/such/route')).toBe(401)
    expect(await status('/v1/models/')).toBe(401)
    // Only Bearer, any case; nothing else carries a key.
    expect(await status('/v1/models', { headers: { authorization: `bearer ${first.key}` } })).toBe(200)
    const basic = await fetch(`${base}/v1/models`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${first.key}`).toString('base64')}` },
    })
    expect(basic.status).toBe(401)
    expect(((await basic.json()) as { error: { message: string } }).error.message).toContain('only API keys')
    expect(basic.headers.get('www-authenticate')).toContain('error="invalid_token"')
    expect(await status('/v1/models', { headers: { 'x-api-key': first.key } })).toBe(401)
    expect(
      await status('/v1/models', { headers: { authorization: `Bearer ${first.key}${'x'.repeat(300)}` } }),
    ).toBe(401)
    expect(await status('/v1/models', { headers: { authorization: `Bearer ${first.sha256}` } })).toBe(401)
  })

  it('rotates live: a key taken out of the file is refused, a key put in is let in', async () => {
    await writeFile(keyed.keysPath, keysFile([{ id: 'next', sha256: second.sha256 }]))
    await vi.waitFor(
      async () => {
        expect(
          (await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${first.key}` } })).status,
        ).toBe(401)
        expect(
          (await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${second.key}` } })).status,
        ).toBe(200)
      },
      { timeout: 10_000, interval: 200 },
    )
    // A file that does not parse is refused; a key it no longer lists is revoked all the same.
    await writeFile(
      keyed.keysPath,
      `keys:\n  - id: next\n    sha256: ${second.sha256}\n  - id: third\n    key: ${third.key}\n`,
    )
    await ark.waitFor((l) => String(l.msg).startsWith('API keys file refused'), 10_000)
    expect(
      (await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${second.key}` } })).status,
    ).toBe(200)
    await writeFile(keyed.keysPath, `keys:\n  - id: other\n    sha256: not-a-digest\n`)
    await vi.waitFor(
      async () =>
        expect(
          (await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${second.key}` } })).status,
        ).toBe(401),
      { timeout: 10_000, interval: 200 },
    )
    // Gone: no one gets in until it is back.
    await rm(keyed.keysPath)
    await ark.waitFor((l) => String(l.msg).startsWith('API keys file unreadable'), 10_000)
    await writeFile(keyed.keysPath, keysFile([{ id: 'ci', sha256: first.sha256 }]))
    await vi.waitFor(
      async () =>
        expect(
          (await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${first.key}` } })).status,
        ).toBe(200),
      { timeout: 10_000, interval: 200 },
    )
  })

  it('names key ids, never keys: metrics count by id, and no log line holds a key', async () => {
    const metrics = await (await fetch(`${base}/metrics`)).text()
    expect(metrics).toMatch(/ark_auth_requests_total\{key="ci",result="ok"\} [1-9]/)
    expect(metrics).toMatch(/ark_auth_requests_total\{key="",result="missing"\} [1-9]/)
    expect(metrics).toMatch(/ark_auth_requests_total\{key="",result="invalid"\} [1-9]/)
    const logs = `${ark.lines.map((l) => JSON.stringify(l)).join('\n')}\n${ark.stderr()}`
    for (const key of [first.key, second.key, third.key]) {
      expect(logs).not.toContain(key)
      expect(metrics).not.toContain(key)
    }
    // The refused file held a key in the open: the error names the field, not its value.
    expect(logs).toContain('keys[1]: a `key` field')
  })
})

describe('ark keys new, and keys files ark refuses', () => {
  it('refuses to start on a keys file that is not right, naming the field', async () => {
    const bad = join(dir, 'bad-keys.yaml')
    await writeFile(bad, 'keys:\n  - id: ci\n    sha256: not-a-digest\n')
    const err = await startArk(['dev', '-f', dir, '--port', '0', '--api-keys', bad]).then(
      async (p) => {
        await p.stop()
        return undefined
      },
      (e: unknown) => e as Error,
    )
    expect(err?.message).toContain('keys[0].sha256: must be the key')
    const missing = await startArk([
      'dev',
      '-f',
      dir,
      '--port',
      '0',
      '--api-keys',
      join(dir, 'nope.yaml'),
    ]).then(
      async (p) => {
        await p.stop()
        return undefined
      },
      (e: unknown) => e as Error,
    )
    expect(missing?.message).toContain(`--api-keys ${join(dir, 'nope.yaml')}: no such file`)
  })

  it('--metrics-auth puts /metrics behind a key too', async () => {
    const file = join(dir, 'metrics-keys.yaml')
    await writeFile(file, keysFile([{ id: 'scraper', sha256: second.sha256 }]))
    const p = await startArk(
      ['dev', '-f', dir, '--port', '0', '--api-keys', file, '--metrics-auth', 'true'],
      { ready: 'API keys required' },
    )
    try {
      expect((await fetch(`${p.url}/metrics`)).status).toBe(401)
      expect(
        (await fetch(`${p.url}/metrics`, { headers: { authorization: `Bearer ${second.key}` } })).status,
      ).toBe(200)
      expect((await fetch(`${p.url}/healthz`)).status).toBe(200)
    } finally {
      await p.stop()
    }
  })
})

describe('ark gateway --api-keys-secret, on a cluster', () => {
  it('takes the keys from a Secret (id: digest), follows it live, and refuses everything while it is missing', async () => {
    const kube = await startKube()
    const redis = await startRedis()
    let gateway: ArkProcess | undefined
    try {
      await kube.installCrds()
      const ns = await kube.namespace('keys')
      gateway = await startArk(
        ['gateway', '--kubeconfig', kube.kubeconfig, '--namespaces', ns, '--port', '0'],
        {
          env: { REDIS_URL: redis.url, ARK_API_KEYS_SECRET: `${ns}/ark-api-keys` },
          ready: 'API keys required',
        },
      )
      const url = gateway.url
      const status = async (key: string) =>
        (await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status
      // Not there yet: a gateway told to ask for keys never runs open, nor says it is ready.
      expect(await status(first.key)).toBe(401)
      expect((await fetch(`${url}/readyz`)).status).toBe(503)
      await kube.kubectl([
        'create',
        'secret',
        'generic',
        'ark-api-keys',
        '-n',
        ns,
        `--from-literal=ci=${first.sha256}`,
      ])
      await vi.waitFor(async () => expect(await status(first.key)).toBe(200), {
        timeout: 20_000,
        interval: 200,
      })
      expect((await fetch(`${url}/readyz`)).status).toBe(200)
      // Rotated: the Secret now holds another key's digest, and that one only.
      const rotated = await kube.kubectl([
        'create',
        'secret',
        'generic',
        'ark-api-keys',
        '-n',
        ns,
        `--from-literal=next=${second.sha256}`,
        '--dry-run=client',
        '-o',
        'yaml',
      ])
      await kube.kubectl(['replace', '-n', ns, '-f', '-'], { input: rotated })
      await vi.waitFor(
        async () => {
          expect(await status(first.key)).toBe(401)
          expect(await status(second.key)).toBe(200)
        },
        { timeout: 20_000, interval: 200 },
      )
      // Deleted: no one gets in.
      await kube.kubectl(['delete', 'secret', 'ark-api-keys', '-n', ns])
      await vi.waitFor(async () => expect(await status(second.key)).toBe(401), {
        timeout: 20_000,
        interval: 200,
      })
      expect(`${gateway.lines.map((l) => JSON.stringify(l)).join('\n')}${gateway.stderr()}`).not.toContain(
        second.key,
      )
      // A Secret in a namespace this gateway does not watch would never be read: refused at start.
      const unwatched = await startArk(
        ['gateway', '--kubeconfig', kube.kubeconfig, '--namespaces', ns, '--port', '0'],
        { env: { REDIS_URL: redis.url, ARK_API_KEYS_SECRET: 'elsewhere/ark-api-keys' } },
      ).then(
        async (p) => {
          await p.stop()
          return undefined
        },
        (e: unknown) => e as Error,
      )
      expect(unwatched?.message).toContain('namespace elsewhere is not in --namespaces')
    } finally {
      await gateway?.stop()
      await Promise.all([kube.stop(), redis.stop()])
    }
  }, 90_000)
})
