import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { formatProblem } from './api/index.ts'
import type { ControlPlane } from './index.ts'
import { CAPABILITIES, MODULE_LOADED, ToolModuleController, startControlPlane } from './index.ts'
import type { Capabilities } from './index.ts'

let dir: string
let cp: ControlPlane | undefined

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ark-controller-'))
})
afterEach(async () => {
  await cp?.close()
  cp = undefined
  await rm(dir, { recursive: true, force: true })
})

const write = (file: string, text: string) => writeFile(join(dir, file), text)
/**
 * These tests are about dependencies, not about what this build can run: they use a runtime that has every
 * provider and the team strategies, so that a Model or Team is Available exactly when its references are.
 */
const EVERYTHING: Capabilities = {
  ...CAPABILITIES,
  providers: new Set(['openai', 'azure', 'anthropic', 'bedrock', 'mock']),
  teams: true,
}
const start = async (capabilities: Capabilities = EVERYTHING) =>
  (cp = await startControlPlane(dir, { pollIntervalMs: 0, capabilities }))
const available = (key: string) => {
  const c = cp?.store.status(key)?.conditions.find((x) => x.type === 'Available')
  return c === undefined ? undefined : `${c.status} ${c.reason}`
}

const MOCK_MODEL = `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock } }
---
`

const MODEL_WITH_SECRET = `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: gpt }
spec:
  provider: openai
  model: { value: gpt-4o }
  config:
    openai:
      apiKey: { valueFrom: { secretKeyRef: { name: openai, key: api-key } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec: { prompt: hi, modelRef: { name: gpt } }
`

describe('availability follows dependencies without a restart', () => {
  it('a missing Secret makes the Model and its agents unavailable; adding it makes both Available', async () => {
    await write('model.yaml', MODEL_WITH_SECRET)
    await start()
    expect(available('Model/default/gpt')).toBe('False SecretNotFound')
    expect(cp!.store.status('Model/default/gpt')!.conditions[0]!.message).toBe(
      'apiKey: Secret default/openai not found',
    )
    expect(available('Agent/default/helper')).toBe('False ModelNotAvailable')
    // The ARK dialect names the model's condition ModelAvailable.
    expect(cp!.store.dialectStatus('Model/default/gpt')).toMatchObject({
      conditions: [{ type: 'ModelAvailable', status: 'False', reason: 'SecretNotFound' }],
    })

    await write(
      'secret.yaml',
      'apiVersion: v1\nkind: Secret\nmetadata: { name: openai }\nstringData: { api-key: sk-test-123 }\n',
    )
    await cp!.refresh()
    expect(available('Model/default/gpt')).toBe('True AllDependenciesReady')
    expect(available('Agent/default/helper')).toBe('True AllDependenciesReady')

    // And back: deleting the Secret file takes them down again.
    await unlink(join(dir, 'secret.yaml'))
    await cp!.refresh()
    expect(available('Agent/default/helper')).toBe('False ModelNotAvailable')
  })

  it('parameters re-resolve when their ConfigMap changes', async () => {
    await write(
      'agent.yaml',
      `
${MOCK_MODEL}apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: reviewer }
spec:
  prompt: "Review at {{.path}}"
  parameters: [{ name: path, valueFrom: { configMapKeyRef: { name: cfg, key: path } } }]
`,
    )
    await write('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { other: x }\n')
    await start()
    expect(available('Agent/default/reviewer')).toBe('False KeyNotFound')
    await write('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { path: /v1 }\n')
    await cp!.refresh()
    expect(available('Agent/default/reviewer')).toBe('True AllDependenciesReady')
    expect(cp!.catalog.resolveValue('default', { configMapKeyRef: { name: 'cfg', key: 'path' } })).toEqual({
      ok: true,
      value: '/v1',
    })
    await write('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cfg }\ndata: { path: /v2 }\n')
    await cp!.refresh()
    expect(cp!.catalog.resolveValue('default', { configMapKeyRef: { name: 'cfg', key: 'path' } })).toEqual({
      ok: true,
      value: '/v2',
    })
  })

  it('team cycles and cross-namespace references are refused with a clear reason', async () => {
    await write(
      'teams.yaml',
      `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: a }
spec: { strategy: sequential, members: [{ name: b, type: team }] }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: b }
spec: { strategy: sequential, members: [{ name: a, type: team }] }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: far }
spec: { prompt: hi, modelRef: { name: default, namespace: elsewhere } }
`,
    )
    await start()
    expect(available('Team/default/a')).toBe('False TeamCycle')
    expect(cp!.store.status('Team/default/a')!.conditions[0]!.message).toBe(
      'team members form a cycle: a → b → a',
    )
    expect(available('Agent/default/far')).toBe('False CrossNamespaceReference')
  })
})

describe('the folder stays live', () => {
  it('adds, changes and deletes without a restart; an invalid edit keeps the last valid version', async () => {
    const agent = (replicas: number) => `
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: worker }
spec: { replicas: ${replicas}, model: mock, systemPrompt: work }
`
    await start()
    expect(cp!.catalog.resolveTarget('agent/worker')).toBeUndefined()

    await write('worker.yaml', agent(2))
    await cp!.refresh()
    expect(cp!.catalog.resolveTarget('agent/worker')?.resource.spec).toMatchObject({ replicas: 2 })
    expect(available('Agent/default/worker')).toBe('True AllDependenciesReady')

    await write('worker.yaml', agent(51))
    await cp!.refresh()
    expect(cp!.catalog.resolveTarget('agent/worker')?.resource.spec).toMatchObject({ replicas: 2 })
    expect(cp!.store.problems().map(formatProblem)).toEqual([
      'worker.yaml:2 (document 1) ArkAgent default/worker: spec.replicas: must be <= 50, got 51',
      'worker.yaml:2 (document 1) ArkAgent default/worker: keeping the last valid version until this document is fixed',
    ])

    await write('worker.yaml', agent(3))
    await cp!.refresh()
    expect(cp!.catalog.resolveTarget('agent/worker')?.resource.spec).toMatchObject({ replicas: 3 })
    expect(cp!.store.problems()).toEqual([])

    await unlink(join(dir, 'worker.yaml'))
    await cp!.refresh()
    expect(cp!.catalog.resolveTarget('agent/worker')).toBeUndefined()
    expect(cp!.store.status('Agent/default/worker')).toBeUndefined()
  })

  it('a YAML syntax error in one file never takes valid documents down', async () => {
    await write('good.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: good }\n')
    await write('bad.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: [unclosed\n')
    await start()
    expect(cp!.catalog.get('ConfigMap', { namespace: 'default', name: 'good' })).toBeDefined()
    const [problem] = cp!.store.problems()
    expect(problem).toMatchObject({ severity: 'error', file: 'bad.yaml' })
    expect(problem!.message).toMatch(/YAML/)
  })

  it('the same name in both dialects is a duplicate: the first file wins, the other is reported', async () => {
    await write(
      'a.yaml',
      'apiVersion: ark.mckinsey.com/v1alpha1\nkind: Agent\nmetadata: { name: twin }\nspec: { prompt: ark }\n',
    )
    await write(
      'b.yaml',
      'apiVersion: arkonis.dev/v1alpha1\nkind: ArkAgent\nmetadata: { name: twin }\nspec: { model: mock, systemPrompt: arkonis }\n',
    )
    await start()
    expect(cp!.catalog.resolveTarget('twin')?.resource.origin.kind).toBe('Agent')
    expect(cp!.store.problems().map(formatProblem)).toEqual([
      'b.yaml (document 1) ArkAgent default/twin: duplicate: Agent in a.yaml (document 1) already defines agent default/twin; this one is ignored (names are shared by both dialects)',
    ])
  })

  it('picks up a new file from the file-system watcher alone', async () => {
    await start()
    await write('late.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: late }\ndata: { k: v }\n')
    const deadline = Date.now() + 10_000
    while (
      cp!.catalog.get('ConfigMap', { namespace: 'default', name: 'late' }) === undefined &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(cp!.catalog.get('ConfigMap', { namespace: 'default', name: 'late' })?.spec.data).toEqual({
      k: 'v',
    })
  })
})

describe('catalog target resolution', () => {
  it('answers agent/<name>, agent/<ns>/<name>, a bare agent name, team/ and model/', async () => {
    await write(
      'all.yaml',
      `
${MOCK_MODEL}apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: solo }
spec: { prompt: hi }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: solo, namespace: prod }
spec: { prompt: hi prod }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: crew }
spec: { strategy: sequential, members: [{ name: solo, type: agent }] }
`,
    )
    await start()
    const key = (t: string) => cp!.catalog.resolveTarget(t)?.resource.key
    expect(key('agent/solo')).toBe('Agent/default/solo')
    expect(key('solo')).toBe('Agent/default/solo')
    expect(key('agent/default/solo')).toBe('Agent/default/solo')
    expect(key('agent/prod/solo')).toBe('Agent/prod/solo')
    expect(key('team/crew')).toBe('Team/default/crew')
    expect(key('model/default')).toBe('Model/default/default')
    expect(key('agent/crew')).toBeUndefined()
    expect(key('crew')).toBeUndefined()
    expect(cp!.catalog.targetId('Agent', { namespace: 'default', name: 'solo' })).toBe('agent/solo')
    expect(cp!.catalog.targetId('Agent', { namespace: 'prod', name: 'solo' })).toBe('agent/prod/solo')
    expect(cp!.catalog.targetId('Team', { namespace: 'default', name: 'crew' })).toBe('team/crew')
    expect(available('Team/default/crew')).toBe('True AllDependenciesReady')
  })

  it('says what this build cannot run yet: a Model whose provider has no client, and a team of its agents', async () => {
    await write(
      'a.yaml',
      `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: gpt }
spec: { provider: bedrock, model: { value: anthropic.claude-v2 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: solo }
spec: { prompt: hi, modelRef: { name: gpt } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: crew }
spec: { strategy: sequential, members: [{ name: solo, type: agent }] }
`,
    )
    await start(CAPABILITIES)
    expect(available('Model/default/gpt')).toBe('False UnsupportedFeature')
    expect(available('Agent/default/solo')).toBe('False ModelNotAvailable')
    expect(available('Team/default/crew')).toBe('False AgentNotAvailable')
    // The team is held up by its member alone: teams run in this build.
    expect(cp!.store.status('Team/default/crew')!.conditions[0]!.message).toBe(
      'members[0] (solo): Agent default/solo is not available (ModelNotAvailable)',
    )
  })
})

describe('MCP servers given as a command (stdio)', () => {
  const STDIO_AGENT = `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: local }
spec:
  model: gpt-4o
  systemPrompt: hi
  mcpServers: [{ name: files, command: [npx, -y, some-mcp-server] }]
`
  it('are refused where the runtime does not start them, with why; Available under ark dev', async () => {
    await write('agent.yaml', STDIO_AGENT)
    await start(EVERYTHING)
    expect(available('Agent/default/local')).toBe('False UnsupportedFeature')
    expect(cp!.store.status('Agent/default/local')!.conditions[0]!.message).toBe(
      'mcpServers: files is a command (stdio), which only ark dev runs; serve it over HTTP here',
    )
    await cp!.close()
    cp = undefined
    await start({ ...EVERYTHING, mcpStdio: true })
    expect(available('Agent/default/local')).toBe('True AllDependenciesReady')
  })

  it('an entry with both a url and a command, or neither, is an error at its path', async () => {
    await write(
      'agent.yaml',
      STDIO_AGENT.replace('command: [npx, -y, some-mcp-server]', 'url: http://x/mcp, command: [npx]') +
        `---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: empty }
spec:
  model: gpt-4o
  systemPrompt: hi
  mcpServers: [{ name: nothing }]
`,
    )
    await start(EVERYTHING)
    const problems = cp!.store.problems().map(formatProblem).join('\n')
    expect(problems).toContain('spec.mcpServers[0]: must set exactly one of url, command')
    expect(cp!.store.get('Agent/default/local')).toBeUndefined()
    expect(cp!.store.get('Agent/default/empty')).toBeUndefined()
  })
})

describe('values only a cluster can resolve', () => {
  it('a serviceRef anywhere (agent parameter, memory address) is reported, not silently accepted', async () => {
    cp = await startControlPlane('test/fixtures/kinds', { watch: false })
    expect(available('Memory/team-a/full-memory')).toBe('False ServiceNotResolvable')
    expect(cp.store.status('Agent/team-a/full-agent')!.conditions[0]!.message).toContain(
      'parameters.svc: serviceRef memory-svc resolves only inside a cluster',
    )
  })
})

describe('tool modules', () => {
  const WASM_TOOL = `apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: stats }
spec:
  type: wasm
  wasm: { module: { url: "https://plugins.example/stats.wasm", sha256: "${'a'.repeat(64)}" } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: counter }
spec: { prompt: hi, tools: [{ type: custom, name: stats }] }
`

  it('a Tool whose module failed to load is unavailable, with its agents, until a retry loads it', async () => {
    await write('all.yaml', MOCK_MODEL + WASM_TOOL)
    const plane = await start()
    let attempts = 0
    const modules = new ToolModuleController(plane.catalog, plane.store, {
      retryIntervalMs: 30,
      checker: {
        check: () =>
          Promise.resolve(
            ++attempts < 3
              ? {
                  status: 'False' as const,
                  reason: 'ModuleRejected',
                  message: 'the download failed: ECONNRESET',
                }
              : { status: 'True' as const, reason: 'ModuleLoaded', message: 'compiled' },
          ),
      },
    })
    try {
      modules.start()
      await modules.idle()
      await plane.settled()
      expect(available('Tool/default/stats')).toBe('False ModuleRejected')
      expect(available('Agent/default/counter')).toBe('False ToolNotAvailable')
      await vi.waitFor(
        async () => {
          await modules.idle()
          await plane.settled()
          expect(available('Agent/default/counter')).toBe('True AllDependenciesReady')
        },
        { timeout: 5000, interval: 20 },
      )
      expect(attempts).toBe(3)
      const loaded = plane.store
        .status('Tool/default/stats')
        ?.conditions.find((c) => c.type === MODULE_LOADED)
      expect(loaded?.status).toBe('True')
    } finally {
      modules.close()
    }
  })
})
