import { describe, expect, it } from 'vitest'
import { decodeAll, decodeYaml, documentsOf, find } from '../../test/manifests.ts'
import { decodeDocument, encodeStatus, formatProblem } from './index.ts'
import type { AnyResource, Status } from './index.ts'

const SEEDS = 'test/fixtures/seeds'
const KINDS = 'test/fixtures/kinds'

describe('seed manifests, verbatim', () => {
  it('decode without errors', () => {
    for (const f of [
      '000-query.yaml',
      '002-agent-spec.yaml',
      '002-agent-examples.yaml',
      '003-arkagent.yaml',
      '003-arkagent-fields.yaml',
    ]) {
      const { problems } = decodeAll(`${SEEDS}/${f}`)
      expect(problems.filter((p) => p.severity === 'error').map(formatProblem), f).toEqual([])
    }
  })

  it('seed 002 example-agent keeps every field', () => {
    const agent = find(decodeAll(`${SEEDS}/002-agent-spec.yaml`).resources, 'Agent', 'example-agent')
    expect(agent.origin).toMatchObject({ apiVersion: 'ark.mckinsey.com/v1alpha1', kind: 'Agent', index: 0 })
    expect(agent.spec).toEqual({
      description: 'General-purpose assistant agent',
      prompt: { inline: 'You are a helpful assistant.\n' },
      model: { ref: { namespace: 'default', name: 'gpt-4-model' } },
      executionEngine: { namespace: 'default', name: 'langchain-engine' },
      tools: [
        { kind: 'builtin', name: 'web-search' },
        { kind: 'ref', ref: { namespace: 'default', name: 'my-custom-tool' }, fixed: [] },
      ],
      parameters: [
        { name: 'api_endpoint', source: { configMapKeyRef: { name: 'config', key: 'endpoint' } } },
        { name: 'agent_name', source: { queryParameterRef: { name: 'agent_name' } } },
      ],
      outputSchema: {
        type: 'object',
        properties: { summary: { type: 'string' }, confidence: { type: 'number' } },
      },
      limits: {},
    })
  })

  it('an ARK agent without modelRef uses the namespace default model; an A2A agent needs none', () => {
    const { resources } = decodeAll(`${SEEDS}/002-agent-examples.yaml`)
    expect(find(resources, 'Agent', 'simple-agent').spec.model).toEqual({
      ref: { namespace: 'default', name: 'default' },
    })
    const a2a = find(resources, 'Agent', 'aws-operator-agent')
    expect(a2a.spec.model).toBeUndefined()
    expect(a2a.spec.executionEngine).toEqual({ namespace: 'default', name: 'a2a' })
    expect(a2a.spec.a2a).toEqual({
      serverName: 'aws-operator-agent',
      address:
        'http://ark-agentcore-bridge.default.svc.cluster.local:80/a2a/agent/aws_operator_agent-jg0yD9Hv2n',
      skills: '[{"name":"describe_ec2_instances","description":"List and describe EC2 instances"}]',
    })
    expect(find(resources, 'Agent', 'dynamic-agent').spec.parameters).toEqual([
      { name: 'agent_name', source: { queryParameterRef: { name: 'agent_name' } } },
      { name: 'mode', source: { queryParameterRef: { name: 'operation_mode' } } },
      { name: 'expertise_level', source: { value: 'expert' } },
    ])
  })

  it('seed 003 research-agent becomes the same internal Agent shape', () => {
    const agent = find(decodeAll(`${SEEDS}/003-arkagent.yaml`).resources, 'Agent', 'research-agent')
    expect(agent.origin).toMatchObject({ apiVersion: 'arkonis.dev/v1alpha1', kind: 'ArkAgent' })
    expect(agent.spec).toEqual({
      prompt: {
        inline:
          'You are a research agent. Gather and summarize information\naccurately and concisely. Always cite your sources.\n',
      },
      model: { id: 'llama3.2', provider: 'openai' },
      tools: [
        {
          kind: 'mcpServer',
          server: {
            name: 'web-search',
            url: 'https://search.mcp.internal/sse',
            transport: 'sse',
            headers: [],
          },
        },
        // Seed 003, "Built-in tools": every agent pod has them whatever else it lists.
        { kind: 'builtin', name: 'submit_subtask' },
        { kind: 'builtin', name: 'get_subtask_result' },
      ],
      parameters: [],
      limits: { maxTokensPerCall: 8000, maxConcurrentTasks: 5, timeoutSeconds: 120 },
      replicas: 2,
      probe: { type: 'semantic', intervalSeconds: 60 },
    })
  })

  it('seed 003 snippets: systemPromptRef, webhook tools with inputSchema, configRef as a name, memoryRef', () => {
    const agent = find(decodeAll(`${SEEDS}/003-arkagent-fields.yaml`).resources, 'Agent', 'analyst')
    expect(agent.spec.prompt).toEqual({ configMapKeyRef: { name: 'my-prompt', key: 'system.txt' } })
    expect(agent.spec.model).toEqual({ id: 'claude-sonnet-4-5', provider: 'anthropic' })
    expect(agent.spec.tools).toEqual([
      {
        kind: 'inline',
        name: 'fetch_news',
        tool: {
          type: 'http',
          http: {
            url: 'http://news-api.internal/headlines',
            method: 'POST',
            headers: [],
            bodyParameters: [],
          },
          description: 'Fetch the latest news headlines for a given topic.',
          inputSchema: { type: 'object', properties: { topic: { type: 'string' } }, required: ['topic'] },
        },
      },
      { kind: 'builtin', name: 'submit_subtask' },
      { kind: 'builtin', name: 'get_subtask_result' },
    ])
    expect(agent.spec.settings).toEqual({ namespace: 'default', name: 'analyst-base' })
    expect(agent.spec.memory).toEqual({ namespace: 'default', name: 'research-memory' })
    expect(agent.spec.probe).toEqual({
      type: 'semantic',
      intervalSeconds: 60,
      validatorPrompt: 'Reply with exactly one word: HEALTHY',
    })
    // Defaults from seed 003's table apply when limits are omitted.
    expect(agent.spec.limits).toEqual({ maxTokensPerCall: 8000, maxConcurrentTasks: 5, timeoutSeconds: 120 })
    expect(agent.spec.replicas).toBe(1)
  })

  it('seed 003 built-in tools: an ArkAgent’s own tool by the same name replaces the built-in', () => {
    const { resources, problems } = decodeYaml(`
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: own }
spec:
  model: gpt-4o
  systemPrompt: I queue work my own way.
  tools: [{ name: submit_subtask, url: 'http://queue.internal/submit' }]
`)
    expect(problems).toEqual([])
    expect(
      find(resources, 'Agent', 'own').spec.tools.map((t) => `${t.kind} ${'name' in t ? t.name : ''}`),
    ).toEqual(['inline submit_subtask', 'builtin get_subtask_result'])
  })

  it('seed 000 query: targets, durations, and its status written back in the same shape', () => {
    const [doc] = documentsOf(`${SEEDS}/000-query.yaml`) as [{ status: Record<string, unknown> }]
    const query = find(decodeAll(`${SEEDS}/000-query.yaml`).resources, 'Query', 'test-password-reset')
    expect(query.spec).toEqual({
      type: 'user',
      input: 'How do I reset my password?',
      targets: [{ type: 'agent', name: 'support-agent' }],
      parameters: [],
      timeoutSeconds: 300,
      ttlSeconds: 720 * 3600,
      cancel: false,
    })
    expect(query.meta).toMatchObject({ uid: '52bf94fc-cda2-48a7-9d2f-085489fc4877', generation: 2 })
    // Round trip: the internal status built from the seed's status encodes back to exactly the seed's status.
    const s = doc.status as {
      conditions: Status['conditions']
      responses: Status['responses']
      tokenUsage: Status['tokenUsage']
      duration: string
      phase: string
    }
    const internal: Status = {
      conditions: s.conditions,
      phase: s.phase,
      responses: s.responses,
      tokenUsage: s.tokenUsage,
      duration: s.duration,
    }
    expect(encodeStatus(query, internal)).toEqual(doc.status)
  })
})

/** Every scalar written in a document must show up in the internal resource, else a field was dropped. */
function scalarsOf(v: unknown, path = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (Array.isArray(v)) v.forEach((x, i) => scalarsOf(x, `${path}[${i}]`, out))
  else if (typeof v === 'object' && v !== null)
    for (const [k, x] of Object.entries(v)) scalarsOf(x, path === '' ? k : `${path}.${k}`, out)
  else out.set(path, v)
  return out
}

function allValues(v: unknown, out = new Set<unknown>()): Set<unknown> {
  if (Array.isArray(v)) v.forEach((x) => allValues(x, out))
  else if (typeof v === 'object' && v !== null) Object.values(v).forEach((x) => allValues(x, out))
  else out.add(v)
  return out
}

/** Values that adapters deliberately transform (durations to seconds, dialect enum spellings). */
const TRANSFORMED: Record<string, unknown> = {
  'spec.pollInterval': true,
  'spec.timeout': true,
  'spec.ttl': true,
  'spec.toolCallTimeout': true,
  'spec.http.timeout': true,
  'spec.tools[0].type': 'built-in',
  'spec.tools[1].type': 'custom',
  'spec.tools[3].inputSchema': true,
  'spec.tools[0].inputSchema': true,
  'spec.pipeline[1].outputSchema': true,
  'spec.systemPrompt': 'overridden by systemPromptRef',
  'spec.provider': true,
  'spec.redis.secretRef.name': false,
  'binaryData.blob': false,
  'data.token': 'base64-decoded',
}

describe('adapters keep every field', () => {
  for (const file of ['ark.yaml', 'arkonis.yaml']) {
    it(`${file}: every scalar of every document reaches the internal model`, () => {
      const docs = documentsOf(`${KINDS}/${file}`)
      expect(docs.length).toBeGreaterThan(5)
      docs.forEach((doc, index) => {
        const d = decodeDocument({ value: doc, file, index })
        expect(d.problems.map(formatProblem)).toEqual([])
        const internal = allValues(
          d.resources.map((r: AnyResource) => ({ spec: r.spec, meta: r.meta, ref: r.ref })),
        )
        const body = { ...(doc as Record<string, unknown>) }
        delete body.apiVersion
        delete body.kind
        delete body.metadata
        for (const [path, value] of scalarsOf(body)) {
          if (path in TRANSFORMED && TRANSFORMED[path] !== false) continue
          expect(
            internal.has(value) || (typeof value === 'string' && internal.has(value.trim())),
            `${file}#${index} ${path}`,
          ).toBe(true)
        }
      })
    })
  }

  it('durations become seconds', () => {
    const { resources } = decodeAll(`${KINDS}/ark.yaml`)
    expect(find(resources, 'Query', 'full-query').spec).toMatchObject({
      timeoutSeconds: 90,
      ttlSeconds: 7200,
    })
    expect(find(resources, 'MCPServer', 'full-mcp').spec).toMatchObject({
      timeoutSeconds: 45,
      toolCallTimeoutSeconds: 10,
      pollIntervalSeconds: 120,
    })
    expect(find(resources, 'Model', 'full-model').spec.pollIntervalSeconds).toBe(30)
    expect(find(resources, 'Tool', 'full-http-tool').spec).toMatchObject({ http: { timeoutSeconds: 30 } })
  })

  it('an ArkTeam inline role becomes an Agent owned by the team', () => {
    const { resources } = decodeAll(`${KINDS}/arkonis.yaml`)
    const team = find(resources, 'Team', 'full-arkteam')
    expect(team.spec.strategy).toBe('pipeline')
    expect(team.spec.members.map((m) => [m.name, m.type, m.ref.name])).toEqual([
      ['lead', 'agent', 'full-arkagent'],
      ['experts', 'team', 'expert-team'],
      ['writer', 'agent', 'full-arkteam-writer'],
    ])
    const writer = find(resources, 'Agent', 'full-arkteam-writer')
    expect(writer.origin.ownerKey).toBe('Team/team-b/full-arkteam')
    expect(writer.spec).toMatchObject({
      model: { id: 'claude-haiku-4-5', provider: 'anthropic' },
      replicas: 2,
    })
    expect(writer.spec.limits).toEqual({ maxTokensPerCall: 8000, maxConcurrentTasks: 5, timeoutSeconds: 60 })
  })

  it('Secrets are decoded; stringData wins over data', () => {
    const { resources } = decodeYaml(`
apiVersion: v1
kind: Secret
metadata: { name: s }
data: { a: aGVsbG8=, b: b2xk }
stringData: { b: new }
`)
    expect(find(resources, 'Secret', 's').spec).toEqual({ type: 'Opaque', data: { a: 'hello', b: 'new' } })
  })
})

describe('status is written back in the resource’s own dialect', () => {
  const available = {
    type: 'Available',
    status: 'False',
    reason: 'ModelNotFound',
    message: 'Model default/x not found',
    lastTransitionTime: '2026-01-01T00:00:00Z',
  } as const

  it('ARK Model uses ModelAvailable; ARK Agent uses Available', () => {
    const { resources } = decodeAll(`${KINDS}/ark.yaml`)
    expect(encodeStatus(find(resources, 'Model', 'full-model'), { conditions: [available] })).toEqual({
      conditions: [{ ...available, type: 'ModelAvailable' }],
    })
    expect(encodeStatus(find(resources, 'Agent', 'full-agent'), { conditions: [available] })).toEqual({
      conditions: [available],
    })
  })

  it('ArkAgent carries replicas and readyReplicas; A2AServer uses Ready', () => {
    const { resources } = decodeAll(`${KINDS}/arkonis.yaml`)
    expect(
      encodeStatus(find(resources, 'Agent', 'full-arkagent'), { conditions: [available], readyReplicas: 1 }),
    ).toEqual({ replicas: 3, readyReplicas: 1, conditions: [available] })
    const a2a = find(decodeAll(`${KINDS}/ark.yaml`).resources, 'A2AServer', 'full-a2a')
    expect(encodeStatus(a2a, { conditions: [available] })).toEqual({
      conditions: [{ ...available, type: 'Ready' }],
    })
  })
})
