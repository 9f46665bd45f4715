/**
 * MCP end to end, as `ark dev` runs it: manifests in a folder, the embedded system, the real OpenAI SDK on
 * /v1/chat/completions, and the reference MCP server (`mcp-server-everything`) as the tool server.
 * - Seed 003's research-agent, verbatim but for its server's URL (SSE, as the seed has it), calls a tool
 *   named `web-search__<tool>` in its loop.
 * - ARK MCPServer discovery: the status shows the address, tool count and names; Tools of type mcp and the
 *   agents using them follow the server's availability as it goes away and comes back (seed 002's rules).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Embedded } from '../bin/embedded.ts'
import { startEmbedded } from '../bin/embedded.ts'
import type { Condition, Status } from '../controller/api/index.ts'
import { serve, silentLogger } from '../gateway/index.ts'
import { metric } from './gateway-suite.ts'
import type { EverythingServer } from './mcp-everything.ts'
import { EVERYTHING_BIN, startEverything } from './mcp-everything.ts'
import type { ScriptedServer } from './fixtures/mcp/scripted-server.ts'
import { startScriptedServer } from './fixtures/mcp/scripted-server.ts'

const SEED_URL = 'https://search.mcp.internal/sse'

const CANARY = 'mcp-canary-7f3e9b'
const ENV_CANARY = 'env-canary-5d1c0a'

/** MCPServers at a server that accepts and never answers: more than discovery's concurrency (4). */
const silentServers = (url: string) =>
  [1, 2, 3, 4, 5, 6]
    .map(
      (i) => `---
apiVersion: ark.mckinsey.com/v1alpha1
kind: MCPServer
metadata: { name: aa-silent-${String(i)} }
spec: { address: { value: "${url}?n=${String(i)}" }, timeout: 60s }
`,
    )
    .join('')

const arkResources = (url: string) => `
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: offline }
spec:
  model: llama3.2
  systemPrompt: You work offline.
  mcpServers:
    - { name: search, url: "http://127.0.0.1:9/sse" }
    - { name: local, url: "${url}" }
---
apiVersion: v1
kind: Secret
metadata: { name: search-token }
type: Opaque
stringData:
  token: "Bearer ${CANARY}-header"
  address: "http://127.0.0.1:9/mcp/${CANARY}-path/sse"
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: MCPServer
metadata: { name: hidden }
spec:
  address: { valueFrom: { secretKeyRef: { name: search-token, key: address } } }
  transport: sse
  timeout: 2s
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: MCPServer
metadata: { name: nowhere }
spec:
  address: { value: "http://user:${CANARY}-password@127.0.0.1:9/mcp?key=${CANARY}-query" }
  headers:
    - name: authorization
      value: { valueFrom: { secretKeyRef: { name: search-token, key: token } } }
  timeout: 2s
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: MCPServer
metadata: { name: everything }
spec:
  address: { value: "${url}" }
  transport: http
  timeout: 2s
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: echo }
spec:
  type: mcp
  mcp: { mcpServerRef: { name: everything }, toolName: echo }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: missing }
spec:
  type: mcp
  mcp: { mcpServerRef: { name: everything }, toolName: no-such-tool }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: echoer }
spec:
  prompt: You echo.
  tools: [{ type: custom, name: echo }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: wishful }
spec:
  prompt: You wish.
  tools: [{ type: custom, name: missing }]
`

describe('MCP through ark dev', () => {
  let dir: string
  let sse: EverythingServer
  let http: EverythingServer
  let silent: ScriptedServer
  let system: Embedded
  let client: OpenAI
  let url: string
  let close: () => Promise<void>

  beforeAll(async () => {
    ;[sse, http, silent] = await Promise.all([
      startEverything('sse'),
      startEverything('streamableHttp'),
      startScriptedServer({ raw: () => true }),
    ])
    dir = await mkdtemp(join(tmpdir(), 'ark-mcp-'))
    const seed = await readFile(new URL('../examples/research-agent.yaml', import.meta.url), 'utf8')
    expect(seed).toContain(SEED_URL)
    await writeFile(join(dir, 'research-agent.yaml'), seed.replace(SEED_URL, sse.url))
    await writeFile(
      join(dir, 'model.yaml'),
      await readFile(new URL('../examples/model-default.yaml', import.meta.url), 'utf8'),
    )
    await writeFile(join(dir, 'ark.yaml'), arkResources(http.url))
    // A server started as a command (stdio): ark dev only. Its environment must not carry this process's.
    process.env.ARK_MCP_TEST_CANARY = ENV_CANARY
    await writeFile(
      join(dir, 'local.yaml'),
      `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: desk }
spec:
  model: llama3.2
  systemPrompt: You work at a desk.
  mcpServers:
    - name: local
      command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(EVERYTHING_BIN)}, stdio]
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: broken-desk }
spec:
  model: llama3.2
  systemPrompt: Your tools are missing.
  mcpServers:
    - { name: gone, command: [/nonexistent/mcp-server, --token, ${CANARY}-arg] }
`,
    )
    // Servers that hang every connect attempt for a minute must not hold up the discovery of the others.
    await writeFile(join(dir, 'silent.yaml'), silentServers(silent.url('http')))
    system = await startEmbedded({
      manifests: dir,
      watch: false,
      log: silentLogger,
      probeIntervalSeconds: 0,
      // As `ark dev` without an API key: the seed's llama3.2 is answered by the mock model.
      providers: { env: {}, withoutKey: 'mock' },
      mcpStdio: true,
    })
    await system.controlPlane.settled()
    const server = await serve(system.gateway.fetch, { host: '127.0.0.1', port: 0 })
    url = `http://127.0.0.1:${String(server.port)}`
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 })
    close = async () => {
      await server.close()
      await system.close()
    }
  }, 60_000)

  afterAll(async () => {
    await close()
    delete process.env.ARK_MCP_TEST_CANARY
    await Promise.all([sse.stop(), http.stop(), silent.close()])
    await rm(dir, { recursive: true, force: true })
  })

  const status = (kind: string, name: string): Status | undefined => {
    const { catalog } = system.controlPlane
    const r = catalog.store.get(`${kind}/default/${name}`)
    return r === undefined ? undefined : catalog.status(r.key)
  }
  const condition = (kind: string, name: string, type = 'Available'): Condition | undefined =>
    status(kind, name)?.conditions.find((c) => c.type === type)

  it("seed 003's research-agent calls web-search__echo over SSE inside its loop", async () => {
    expect(condition('Agent', 'research-agent')).toMatchObject({ status: 'True' })
    const completion = await client.chat.completions.create({
      model: 'agent/research-agent',
      messages: [{ role: 'user', content: 'web-search__echo {"message": "find the sources"}' }],
    })
    expect(completion.choices[0]?.message.content).toBe('web-search__echo: Echo: find the sources')
    // The tool's own name, not a guess: the model was offered the server's tools under the prefix.
    const bad = await client.chat.completions.create({
      model: 'agent/research-agent',
      messages: [{ role: 'user', content: 'web-search__echo {"wrong": 1}' }],
    })
    expect(bad.choices[0]?.message.content).toMatch(/^web-search__echo: .*message/)
    expect(await metric(url, 'ark_mcp_server_up', { server: 'default/research-agent:web-search' })).toBe(1)
  })

  it("an ArkAgent's status says which of its MCP servers it reaches; one it cannot leaves it Available", async () => {
    await vi.waitFor(
      () => expect(condition('Agent', 'research-agent', 'McpServersConnected')?.status).toBe('True'),
      { timeout: 10_000 },
    )
    expect(condition('Agent', 'research-agent', 'McpServersConnected')?.message).toMatch(
      /^web-search: [1-9]\d* tools listed/,
    )
    await vi.waitFor(
      () =>
        expect(condition('Agent', 'offline', 'McpServersConnected')).toMatchObject({
          status: 'False',
          reason: 'ServerUnreachable',
        }),
      { timeout: 10_000 },
    )
    const message = condition('Agent', 'offline', 'McpServersConnected')?.message ?? ''
    expect(message).toMatch(
      /^search: .*127\.0\.0\.1:9.*; the agent runs without this server's tools \(has local: [1-9]\d* tools listed.*\)$/,
    )
    expect(condition('Agent', 'offline')).toMatchObject({ status: 'True' })
    const answer = await client.chat.completions.create({
      model: 'agent/offline',
      messages: [{ role: 'user', content: 'local__echo {"message": "still useful"}' }],
    })
    expect(answer.choices[0]?.message.content).toBe('local__echo: Echo: still useful')
  })

  it('ark dev starts an mcpServers command over stdio, without this process’s environment', async () => {
    await vi.waitFor(() => expect(condition('Agent', 'desk', 'McpServersConnected')?.status).toBe('True'), {
      timeout: 15_000,
    })
    const echo = await client.chat.completions.create({
      model: 'agent/desk',
      messages: [{ role: 'user', content: 'local__echo {"message": "over stdio"}' }],
    })
    expect(echo.choices[0]?.message.content).toBe('local__echo: Echo: over stdio')
    const env = await client.chat.completions.create({
      model: 'agent/desk',
      messages: [{ role: 'user', content: 'local__get-env {}' }],
    })
    const shown = env.choices[0]?.message.content ?? ''
    expect(shown).toMatch(/^local__get-env: .*PATH/s)
    expect(shown).not.toContain(ENV_CANARY)
    // A command that cannot start: said in status (program only, not its arguments), the agent still runs.
    await vi.waitFor(
      () =>
        expect(condition('Agent', 'broken-desk', 'McpServersConnected')).toMatchObject({
          status: 'False',
          reason: 'ServerUnreachable',
        }),
      { timeout: 10_000 },
    )
    const message = condition('Agent', 'broken-desk', 'McpServersConnected')?.message ?? ''
    expect(message).toContain('stdio:/nonexistent/mcp-server')
    expect(message).not.toContain(CANARY)
    expect(condition('Agent', 'broken-desk')).toMatchObject({ status: 'True' })
  })

  it('an MCPServer shows its address, tool count and names; its Tools and agents are Available', async () => {
    await vi.waitFor(
      () => expect(condition('MCPServer', 'everything', 'ToolsDiscovered')?.status).toBe('True'),
      {
        timeout: 10_000,
      },
    )
    const s = status('MCPServer', 'everything')
    expect(s?.resolvedAddress).toBe(http.url)
    expect(s?.tools).toContain('echo')
    expect(s?.toolCount).toBe(s?.tools?.length)
    expect(condition('MCPServer', 'everything')).toMatchObject({
      status: 'True',
      reason: 'AllDependenciesReady',
    })
    expect(condition('Tool', 'echo')).toMatchObject({ status: 'True' })
    expect(condition('Agent', 'echoer')).toMatchObject({ status: 'True' })
    const answer = await client.chat.completions.create({
      model: 'agent/echoer',
      messages: [{ role: 'user', content: 'echo {"message": "through a Tool"}' }],
    })
    expect(answer.choices[0]?.message.content).toBe('echo: Echo: through a Tool')
  })

  it('a Tool naming a tool the server does not list is ToolNotFound, with the names it does list', () => {
    const tool = condition('Tool', 'missing')
    expect(tool).toMatchObject({ status: 'False', reason: 'ToolNotFound' })
    expect(tool?.message).toContain('has no tool "no-such-tool"')
    expect(tool?.message).toContain('echo')
    expect(condition('Agent', 'wishful')).toMatchObject({ status: 'False', reason: 'ToolNotAvailable' })
  })

  it('a server that cannot be reached is ServerUnreachable, and its status keeps every secret out', async () => {
    await vi.waitFor(
      () =>
        expect(condition('MCPServer', 'nowhere')).toMatchObject({
          status: 'False',
          reason: 'ServerUnreachable',
        }),
      { timeout: 10_000 },
    )
    const s = status('MCPServer', 'nowhere')
    expect(s?.resolvedAddress).toBe('http://127.0.0.1:9/mcp')
    expect(s?.toolCount).toBeUndefined()
    expect(condition('MCPServer', 'nowhere')?.message).toContain('127.0.0.1:9')
    expect(JSON.stringify(s)).not.toContain(CANARY)
    // An address kept in a Secret shows its origin only: its path may be the credential.
    await vi.waitFor(
      () => expect(condition('MCPServer', 'hidden', 'ToolsDiscovered')?.reason).toBe('ServerUnreachable'),
      { timeout: 10_000 },
    )
    const hidden = status('MCPServer', 'hidden')
    expect(hidden?.resolvedAddress).toBe('http://127.0.0.1:9')
    expect(condition('MCPServer', 'hidden', 'ToolsDiscovered')?.message).toContain('127.0.0.1:9')
    expect(JSON.stringify(hidden)).not.toContain(CANARY)
  })

  it('a server that goes away makes its MCPServer, Tools and agents unavailable; back, they are again', async () => {
    await http.kill()
    await vi.waitFor(
      () =>
        expect(condition('MCPServer', 'everything')).toMatchObject({
          status: 'False',
          reason: 'ServerUnreachable',
        }),
      { timeout: 40_000, interval: 100 },
    )
    expect(status('MCPServer', 'everything')?.tools).toBeUndefined()
    await vi.waitFor(
      () =>
        expect(condition('Agent', 'echoer')).toMatchObject({ status: 'False', reason: 'ToolNotAvailable' }),
      { timeout: 5000 },
    )
    expect(condition('Tool', 'echo')).toMatchObject({ status: 'False', reason: 'MCPServerNotAvailable' })
    await http.restart()
    await vi.waitFor(() => expect(condition('Agent', 'echoer')).toMatchObject({ status: 'True' }), {
      timeout: 40_000,
      interval: 100,
    })
    expect(condition('MCPServer', 'everything', 'ToolsDiscovered')).toMatchObject({ status: 'True' })
    const answer = await client.chat.completions.create({
      model: 'agent/echoer',
      messages: [{ role: 'user', content: 'echo {"message": "back again"}' }],
    })
    expect(answer.choices[0]?.message.content).toBe('echo: Echo: back again')
  }, 90_000)
})
