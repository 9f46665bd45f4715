/**
 * MCP tools in agents, on the real runtime and the real reference server (`mcp-server-everything`, over
 * streamable HTTP and SSE): ArkAgent `mcpServers` (every tool, prefixed), ARK Tools of `type: mcp`, a server
 * that is down when the agent is prepared and comes back, one that never answers a call, and the shared
 * connection let go when no agent holds it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { Catalog, ManifestStore } from '../../../controller/store/index.ts'
import { freePort } from '../../../test/fakes/http.ts'
import type { ScriptedServer } from '../../../test/fixtures/mcp/scripted-server.ts'
import { startScriptedServer } from '../../../test/fixtures/mcp/scripted-server.ts'
import { memorySource } from '../../../test/manifests.ts'
import type { EverythingServer } from '../../../test/mcp-everything.ts'
import { startEverything } from '../../../test/mcp-everything.ts'
import type { Logger } from '../../log.ts'
import { silentLogger } from '../../log.ts'
import { AgentRuntime } from '../agent-runtime.ts'
import { createMockProvider } from '../providers/mock.ts'
import type { Task } from '../task.ts'
import { BUILTIN_TOOLS } from '../tools/builtin.ts'
import { TOOL_KINDS } from '../tools/kinds.ts'
import { McpClients } from './client.ts'
import { observeInlineMcpServer } from './discovery.ts'
import { mcpServerTools, mcpToolKind } from './tools.ts'

const MODEL = `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
`

/** Seed 003's research-agent, its server's URL pointed at `url`. */
const researchAgent = (url: string, name = 'research-agent') => `---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: ${name} }
spec:
  replicas: 2
  model: mock-1
  systemPrompt: You are a research agent.
  mcpServers:
    - name: web-search
      url: ${url}
`

/** An ARK MCPServer and a Tool of type mcp naming its `tool`, used by the Agent `asker`. */
const arkMcp = (url: string, tool: string, transport: 'http' | 'sse') => `---
apiVersion: ark.mckinsey.com/v1alpha1
kind: MCPServer
metadata: { name: everything }
spec:
  address: { value: "${url}" }
  transport: ${transport}
  timeout: 2s
  toolCallTimeout: 1s
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: say }
spec:
  type: mcp
  mcp: { mcpServerRef: { name: everything }, toolName: ${tool} }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: asker }
spec:
  prompt: You ask.
  tools: [{ type: mcp, name: say }]
`

interface Setup {
  readonly runtime: AgentRuntime
  readonly clients: McpClients
  readonly catalog: Catalog
  readonly source: ReturnType<typeof memorySource>
  close(): Promise<void>
}

async function setup(
  manifests: string,
  options: {
    connectWaitMs?: number
    toolCallTimeoutMs?: number
    log?: Logger
    prepareTimeoutMs?: number
  } = {},
): Promise<Setup> {
  const source = memorySource(manifests)
  const store = new ManifestStore(source)
  await store.start()
  const catalog = new Catalog(store)
  const clients = new McpClients({ reconnect: { initialMs: 50, maxMs: 200 }, idleCloseMs: 0 })
  const { prepareTimeoutMs, ...mcpOptions } = options
  const mcp = { log: silentLogger, connectWaitMs: options.connectWaitMs ?? 2000, ...mcpOptions }
  const runtime = new AgentRuntime({
    ...(prepareTimeoutMs === undefined ? {} : { prepareTimeoutMs }),
    catalog,
    createProvider: createMockProvider,
    builtins: BUILTIN_TOOLS,
    toolKinds: { ...TOOL_KINDS, mcp: mcpToolKind(clients, mcp) },
    serverTools: mcpServerTools(clients, mcp),
  })
  return {
    runtime,
    clients,
    catalog,
    source,
    async close() {
      runtime.close()
      await clients.close()
      catalog.close()
      await store.close()
    },
  }
}

let setups: Setup[] = []
async function started(manifests: string, options?: Parameters<typeof setup>[1]): Promise<Setup> {
  const s = await setup(manifests, options)
  setups.push(s)
  return s
}
afterEach(async () => {
  await Promise.all(setups.map((s) => s.close()))
  setups = []
})

let taskNumber = 0
const task = (agent: string, content: string): Task => ({
  id: `t-${String(++taskNumber)}`,
  agent: { namespace: 'default', name: agent },
  messages: [{ role: 'user', content }],
  parameters: {},
  stream: false,
  depth: 0,
})
const run = (s: Setup, agent: string, content: string) =>
  s.runtime.run(task(agent, content), { signal: new AbortController().signal })

const agentOf = (s: Setup, name: string) => {
  const a = s.catalog.get('Agent', { namespace: 'default', name })
  if (a === undefined) throw new Error(`no agent ${name}`)
  return a
}
const toolNames = async (s: Setup, name: string) => [
  ...(await s.runtime.prepare(agentOf(s, name))).tools.keys(),
]

describe.each(['http', 'sse'] as const)('over %s', (kind) => {
  let server: EverythingServer
  beforeAll(async () => {
    server = await startEverything(kind === 'http' ? 'streamableHttp' : 'sse')
  })
  afterAll(async () => {
    await server.stop()
  })

  it("an ArkAgent's mcpServers give it every tool of the server as <server>__<tool>, called in its loop", async () => {
    const s = await started(MODEL + researchAgent(server.url))
    const names = await toolNames(s, 'research-agent')
    expect(names).toContain('web-search__echo')
    expect(names).toContain('web-search__get-sum')
    // The ArkAgent's own task tools are still there (seed 003).
    expect(names).toContain('submit_subtask')
    const prepared = await s.runtime.prepare(agentOf(s, 'research-agent'))
    expect(prepared.tools.get('web-search__echo')?.definition.function.description).toMatch(/echo/i)

    const result = await run(
      s,
      'research-agent',
      'web-search__get-sum {"a": 2, "b": 40}\nweb-search__echo {"message": "hi"}',
    )
    expect(result.outcome).toBe('answer')
    expect(result.content).toContain('web-search__get-sum: The sum of 2 and 40 is 42.')
    expect(result.content).toContain('web-search__echo: Echo: hi')
  })

  it('two agents on one server share one connection; it closes when neither holds it', async () => {
    const s = await started(MODEL + researchAgent(server.url) + researchAgent(server.url, 'second-agent'))
    const before = server.sessions()
    await toolNames(s, 'research-agent')
    await toolNames(s, 'second-agent')
    expect(server.sessions() - before).toBe(1)
    expect(s.clients.servers()).toEqual([
      expect.objectContaining({ name: 'default/research-agent:web-search', status: 'ready' }),
    ])
    s.runtime.cool({ namespace: 'default', name: 'research-agent' })
    expect(s.clients.servers()).toHaveLength(1)
    s.runtime.cool({ namespace: 'default', name: 'second-agent' })
    expect(s.clients.servers()).toEqual([])
  })

  it('an ARK Tool of type mcp is one tool of an MCPServer, under the Tool’s name', async () => {
    const s = await started(MODEL + arkMcp(server.url, 'echo', kind))
    expect(await toolNames(s, 'asker')).toEqual(['say'])
    const result = await run(s, 'asker', 'say {"message": "through a Tool"}')
    expect(result.content).toBe('say: Echo: through a Tool')
  })

  it('a Tool naming a tool the server does not have refuses the agent, saying what the server has', async () => {
    const s = await started(MODEL + arkMcp(server.url, 'no-such-tool', kind))
    const result = await run(s, 'asker', 'hello')
    expect(result.outcome).toBe('error')
    expect(result.error).toMatch(
      /^agent\/asker cannot run: tool say: MCPServer default\/everything has no tool "no-such-tool" \(it has .*echo/,
    )
    // Nothing is held for a refused agent.
    expect(s.clients.servers()).toEqual([])
  })
})

describe('servers that come and go', () => {
  it('an ArkAgent whose server is down runs with the tools it has, and gains the server’s once it is up', async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${String(port)}/mcp`
    const s = await started(MODEL + researchAgent(url))
    s.runtime.warm({ namespace: 'default', name: 'research-agent' })
    const without = await toolNames(s, 'research-agent')
    expect(without.some((n) => n.startsWith('web-search__'))).toBe(false)
    expect(without).toContain('submit_subtask')
    expect((await run(s, 'research-agent', 'hello')).content).toBe('You said: hello')

    const server = await startEverything('streamableHttp', { port })
    try {
      // The connection retries on its own; the warm agent is prepared again when the tools arrive.
      await vi.waitFor(
        async () => expect(await toolNames(s, 'research-agent')).toContain('web-search__echo'),
        {
          timeout: 15_000,
          interval: 100,
        },
      )
      const result = await run(s, 'research-agent', 'web-search__echo {"message": "back"}')
      expect(result.content).toBe('web-search__echo: Echo: back')
    } finally {
      await server.stop()
    }
  })

  it('a server that dies keeps its tools in the agent, answering that it is gone, until it is back', async () => {
    const server = await startEverything('streamableHttp')
    try {
      const s = await started(MODEL + researchAgent(server.url))
      expect(await toolNames(s, 'research-agent')).toContain('web-search__echo')
      await server.kill()
      const during = await run(s, 'research-agent', 'web-search__echo {"message": "anyone?"}')
      expect(during.outcome).toBe('answer')
      expect(during.content).toMatch(/^web-search__echo: .*MCP server default\/research-agent:web-search/)
      await server.restart()
      await vi.waitFor(
        async () => {
          const after = await run(s, 'research-agent', 'web-search__echo {"message": "again"}')
          expect(after.content).toBe('web-search__echo: Echo: again')
        },
        { timeout: 15_000, interval: 200 },
      )
    } finally {
      await server.stop()
    }
  })

  it('a server that never answers a call: the agent still answers, with the timeout as the tool result', async () => {
    const hung: ScriptedServer = await startScriptedServer({
      call: (name) => (name === 'echo' ? 'never' : { result: { content: [] } }),
    })
    try {
      const s = await started(MODEL + researchAgent(hung.url('http')), { toolCallTimeoutMs: 300 })
      const result = await run(s, 'research-agent', 'web-search__echo {"message": "hello?"}')
      expect(result.outcome).toBe('answer')
      expect(result.content).toBe(
        'web-search__echo: the MCP server default/research-agent:web-search did not answer echo within 300 ms',
      )
    } finally {
      await hung.close()
    }
  })

  it('an MCPServer that cannot be reached refuses the agents of its Tools, saying why; a Secret header stays out', async () => {
    const url = `http://127.0.0.1:${String(await freePort())}/mcp`
    const secret = `---
apiVersion: v1
kind: Secret
metadata: { name: search-token }
stringData: { token: sk-mcp-canary-5e1f }
`
    const manifests =
      MODEL +
      secret +
      arkMcp(url, 'echo', 'http').replace(
        '  transport: http',
        '  transport: http\n  headers: [{ name: Authorization, value: { valueFrom: { secretKeyRef: { name: search-token, key: token } } } }]',
      )
    const s = await started(manifests)
    const result = await run(s, 'asker', 'say {"message": "hi"}')
    expect(result.outcome).toBe('error')
    expect(result.error).toMatch(
      /^agent\/asker cannot run: tool say: MCPServer default\/everything is not connected \(connect to http:\/\/127\.0\.0\.1:\d+\/mcp: .*ECONNREFUSED.*; ark retries in \d+ ms\)$/,
    )
    expect(JSON.stringify(result)).not.toContain('sk-mcp-canary-5e1f')
  })

  it('checks arguments against the inputSchema before the server sees them', async () => {
    const recorded = await startScriptedServer()
    try {
      const s = await started(MODEL + researchAgent(recorded.url('http')))
      const result = await run(s, 'research-agent', 'web-search__echo {"message": 42}\nanswer: done')
      expect(result.content).toBe('done')
      const calls = () => recorded.messages().filter((m) => m.method === 'tools/call')
      expect(calls()).toEqual([])
      // The model was told what was wrong, and the same call with a string goes through.
      const fixed = await run(s, 'research-agent', 'web-search__echo {"message": "42"}')
      expect(fixed.content).toBe('web-search__echo: 42')
      expect(calls()).toHaveLength(1)
    } finally {
      await recorded.close()
    }
  })

  it('several servers that never answer are waited for together: the agent still runs, within its bound', async () => {
    const silent = await startScriptedServer({ raw: () => true })
    try {
      const servers = [1, 2, 3]
        .map((i) => `    - { name: s${String(i)}, url: "${silent.url('http')}?n=${String(i)}" }`)
        .join('\n')
      const s = await started(
        `${MODEL}---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: patient }
spec:
  model: mock-1
  systemPrompt: You wait.
  mcpServers:
${servers}
`,
        // Each server is waited for 1 s; one after another they would take 3 s, past the 2.5 s bound.
        { connectWaitMs: 1000, prepareTimeoutMs: 2500 },
      )
      const result = await run(s, 'patient', 'hello')
      expect(result.error).toBeUndefined()
      expect(result.content).toBe('You said: hello')
    } finally {
      await silent.close()
    }
  })

  it('tool names models would reject are made acceptable; names that then collide keep the first, with a warning', async () => {
    const long = 'x'.repeat(80)
    const odd = await startScriptedServer({
      tools: () =>
        ['get_weather', 'get.weather', 'get.news', `${long}a`, `${long}b`].map((name) => ({
          name,
          inputSchema: { type: 'object' },
        })),
    })
    const warnings: { msg: string; fields: Record<string, unknown> | undefined }[] = []
    const log = {
      ...silentLogger,
      warn: (msg: string, fields?: Record<string, unknown>) => warnings.push({ msg, fields }),
    }
    try {
      const s = await started(MODEL + researchAgent(odd.url('http')), { log })
      const names = (await toolNames(s, 'research-agent')).filter((n) => n.startsWith('web-search__'))
      const prefixed = `web-search__${long}`.slice(0, 64)
      expect(names).toEqual(['web-search__get_weather', 'web-search__get_news', prefixed])
      for (const name of names) expect(name).toMatch(/^[a-zA-Z0-9_-]{1,64}$/)
      expect(
        warnings.filter((w) => w.msg.startsWith('MCP tool left out')).map((w) => w.fields?.tool),
      ).toEqual(['get.weather', `${long}b`])
      // What the agent's McpServersConnected condition shows (discovery.ts): the count and what was left out.
      const agent = agentOf(s, 'research-agent')
      const entry = agent.spec.tools.find((t) => t.kind === 'mcpServer')
      if (entry?.kind !== 'mcpServer') throw new Error('research-agent has no mcpServers entry')
      const observation = observeInlineMcpServer(s.clients, agent, entry.server, s.catalog, () => {})
      // Connected already (the agent's tools hold the same connection): known at once.
      const view = observation.now()
      observation.release()
      expect(view?.verdict).toMatchObject({ status: 'True', reason: 'ToolsDiscovered' })
      expect(view?.verdict.message).toBe(
        `5 tools listed; left out, their names taken by another tool once made names models accept: get.weather, ${long}b`,
      )
    } finally {
      await odd.close()
    }
  })

  it('a tools/list_changed with other tools prepares the agent again with them', async () => {
    let tools: unknown[] = [{ name: 'first', inputSchema: { type: 'object' } }]
    const changing = await startScriptedServer({ tools: () => tools })
    try {
      const s = await started(MODEL + researchAgent(changing.url('http')))
      s.runtime.warm({ namespace: 'default', name: 'research-agent' })
      expect(await toolNames(s, 'research-agent')).toContain('web-search__first')
      await vi.waitFor(() => expect(changing.streams()).toBeGreaterThan(0))
      tools = [{ name: 'second', inputSchema: { type: 'object' } }]
      changing.notify('notifications/tools/list_changed')
      await vi.waitFor(async () => {
        const names = await toolNames(s, 'research-agent')
        expect(names).toContain('web-search__second')
        expect(names).not.toContain('web-search__first')
      })
    } finally {
      await changing.close()
    }
  })
})
