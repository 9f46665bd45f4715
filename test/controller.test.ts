/**
 * `ark controller` as a platform engineer runs it: the real CLI in a child process against a real
 * kube-apiserver (../shared/kube), manifests applied with kubectl, results read with kubectl. Each test has its
 * own namespace and its own controller (watching that namespace, its Lease in it), so tests cannot see each
 * other's Queries.
 */
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseAllDocuments, stringify } from 'yaml'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import OpenAI from 'openai'
import { startArk } from './ark-process.ts'
import type { ControllerKit, QueryObject } from './controller-kit.ts'
import { controllerKit, query } from './controller-kit.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'
import type { KubeServer } from './kube.ts'
import { startKube } from './kube.ts'
import { startEverything } from './mcp-everything.ts'
import { startRedis } from './redis-server.ts'
import { startRemoteA2A } from './fakes/a2a-remote.ts'
import { FakeMemoryService } from './fakes/ark-memory.ts'
import { SEED_000_EVENTS, SUPPORT_AGENT_ON_MOCK } from './seed-000.ts'

const run = promisify(execFile)

let kube: KubeServer
let upstream: FakeUpstream
let kit: ControllerKit

beforeAll(async () => {
  ;[kube, upstream] = await Promise.all([startKube(), startFakeOpenAI()])
  kit = controllerKit(kube)
  await kube.installCrds()
}, 120_000)

afterEach(async () => {
  await kit.stopAll()
})

const controller: ControllerKit['controller'] = (...args) => kit.controller(...args)
const apply: ControllerKit['apply'] = (...args) => kit.apply(...args)
const getQuery: ControllerKit['getQuery'] = (...args) => kit.getQuery(...args)
const phaseOf: ControllerKit['phaseOf'] = (...args) => kit.phaseOf(...args)

afterAll(async () => {
  await upstream.close()
  await kube.stop()
})

const MOCK = SUPPORT_AGENT_ON_MOCK

/** An agent whose model is the fake upstream: its replies can be made to hang. */
const SLOW = (url: string) => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: upstream }
spec:
  provider: openai
  model: { value: gpt-4o }
  config:
    openai:
      baseUrl: { value: "${url}" }
      apiKey: { value: sk-test }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: slow }
spec: { prompt: hi, modelRef: { name: upstream } }
`

const completed = (q: QueryObject) => q.status?.conditions?.find((c) => c.type === 'Completed')

/** The chat calls the fake upstream received for a question. */
const chatCalls = (marker: string) =>
  upstream.calls.filter(
    (c) => c.path.endsWith('/chat/completions') && JSON.stringify(c.body).includes(marker),
  )

describe('ark controller on a real API server', () => {
  it("runs seed 000's Query: phase done, responses, tokenUsage, Completed QuerySucceeded, and its Events in order", async () => {
    const ns = await kube.namespace('seed')
    await apply(ns, MOCK)
    const ctl = await controller(ns)
    await apply(ns, query('test-password-reset', 'support-agent', '  timeout: 5m\n  ttl: 720h\n'))
    const q = await phaseOf(ns, 'test-password-reset', 'done')
    expect(completed(q)).toMatchObject({
      status: 'True',
      reason: 'QuerySucceeded',
      message: 'Query completed successfully',
    })
    expect(q.status?.responses).toHaveLength(1)
    const [response] = q.status?.responses ?? []
    expect(response?.phase).toBe('done')
    expect(response?.target).toEqual({ type: 'agent', name: 'support-agent' })
    expect(response?.content).toContain('How do I reset my password?')
    expect(JSON.parse(response?.raw ?? '[]')).toEqual([
      { name: 'support-agent', content: response?.content, role: 'assistant' },
    ])
    const usage = q.status?.tokenUsage
    expect(usage?.totalTokens).toBe((usage?.promptTokens ?? 0) + (usage?.completionTokens ?? 0))
    expect(usage?.totalTokens).toBeGreaterThan(0)
    expect(q.status?.duration).toMatch(/^\d+(\.\d+)?s$/)
    expect(q.metadata.finalizers).toContain('ark.mckinsey.com/finalizer')

    const reasons = SEED_000_EVENTS
    let describe = ''
    await vi.waitFor(
      async () => {
        describe = await kube.kubectl(['describe', 'query', 'test-password-reset', '-n', ns])
        for (const r of reasons) expect(describe).toContain(r)
      },
      { timeout: 10_000, interval: 200 },
    )
    const events = describe.slice(describe.indexOf('Events:'))
    const order = reasons.map((r) => events.indexOf(`Normal  ${r}`))
    expect(order.every((at) => at >= 0)).toBe(true)
    expect([...order].sort((a, b) => a - b)).toEqual(order)
    expect(events).toMatch(
      /Normal\s+QueryExecutionStart\s+\S+\s+ark-controller\s+Executing query test-password-reset \(timestamp: /,
    )
    expect(events).toContain(`Executing agent ${ns}/support-agent`)
    expect(describe).toMatch(/Phase:\s+done/)
    expect(describe).toMatch(/Reason:\s+QuerySucceeded/)

    // kubectl get shows the printer columns the CRD declares, filled from the status written back.
    const table = await kube.kubectl(['get', 'queries', '-n', ns])
    expect(table).toMatch(/test-password-reset\s+support-agent\s+done\s+\S+s\s+\d+/)
    // /metrics: reconciles by controller and result, and what became of the Events.
    const metrics = await (await fetch(`${ctl.url}/metrics`)).text()
    expect(metrics).toMatch(/ark_controller_reconcile_total\{controller="query",result="success"\} [1-9]/)
    expect(metrics).toMatch(/ark_controller_events_total\{result="written"\} [1-9]/)
    expect(metrics).toMatch(/ark_workqueue_depth\{name="availability"\} 0/)
    const agents = await kube.kubectl(['get', 'agents', '-n', ns])
    expect(agents).toMatch(/support-agent\s+default\s+True\s+AllDependenciesReady/)
  })

  it('ark query --kubeconfig creates a Query, waits for the controller to run it and describes it', async () => {
    const ns = await kube.namespace('cli')
    await apply(ns, MOCK)
    await controller(ns)
    const cli = await run(
      process.execPath,
      [
        'bin/ark.ts',
        'query',
        '--kubeconfig',
        kube.kubeconfig,
        '-n',
        ns,
        'agent/support-agent',
        'How do I log in?',
      ],
      { env: { ...process.env, ARK_MANIFESTS: '' }, timeout: 60_000 },
    )
    expect(cli.stderr).toBe('')
    const name = /^Name: +(\S+)\/(ark-query-\w+)$/m.exec(cli.stdout)
    expect(name?.[1]).toBe(ns)
    expect(cli.stdout).toMatch(/^Phase: +done$/m)
    expect(cli.stdout).toMatch(/^Token Usage: +prompt \d+, completion \d+, total \d+$/m)
    expect(cli.stdout).toMatch(/^Response:\n {2}.*How do I log in\?/m)
    // The Events the controller recorded on it, in their order.
    const listed = SEED_000_EVENTS.map((r) => cli.stdout.indexOf(`Normal  ${r}`))
    expect(
      listed.every((at) => at >= 0),
      cli.stdout,
    ).toBe(true)
    expect([...listed].sort((a, b) => a - b)).toEqual(listed)
    // It is a Query on the cluster like any other, there to be read again.
    const q = await kit.getQuery(ns, name?.[2] ?? '')
    expect(q?.status?.phase).toBe('done')
  })

  it('a team Query runs its members in turn, tells each turn in Events, and files its exchange in memory', async () => {
    const ns = await kube.namespace('team-query')
    const service = new FakeMemoryService()
    await service.start()
    try {
      await apply(
        ns,
        `${MOCK}---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: reviewer }
spec: { prompt: You review., modelRef: { name: default } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: desk }
spec:
  strategy: sequential
  members: [{ name: support-agent, type: agent }, { name: reviewer, type: agent }]
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Memory
metadata: { name: default }
spec: { address: { value: "${service.url}" } }
`,
      )
      await controller(ns)
      await apply(
        ns,
        `apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: ask-desk }
spec:
  input: "answer: reviewed"
  conversationId: thread-7
  targets: [{ type: team, name: desk }]
`,
      )
      const q = await phaseOf(ns, 'ask-desk', 'done')
      expect(q.status?.responses?.[0]?.content).toBe('reviewed')
      expect(q.status?.responses?.[0]?.target).toEqual({ type: 'team', name: 'desk' })
      expect(q.status?.tokenUsage?.totalTokens).toBeGreaterThan(0)
      await vi.waitFor(
        async () => {
          const events = await kube.kubectl(['describe', 'query', 'ask-desk', '-n', ns])
          for (const reason of [
            'TeamExecutionStart',
            'TeamTurnStart',
            'TeamMemberStart',
            'AgentExecutionStart',
            'TeamMemberComplete',
            'TeamExecutionComplete',
          ])
            expect(events).toContain(reason)
          expect(events).toContain('Executing member reviewer in team')
        },
        { timeout: 10_000, interval: 200 },
      )
      // ARK's memory API: the conversation read before the run, the exchange posted after it, under the Query.
      const posted = service.seen.find((s) => s.method === 'POST' && s.url === '/messages')
      expect(JSON.parse(posted?.body ?? '{}')).toEqual({
        conversation_id: 'thread-7',
        query_id: 'ask-desk',
        messages: [
          { role: 'user', content: 'answer: reviewed' },
          { role: 'assistant', content: 'reviewed' },
        ],
      })
      expect(service.seen.some((s) => s.method === 'GET' && s.url.includes('conversation_id=thread-7'))).toBe(
        true,
      )
    } finally {
      await service.close()
    }
  })

  it('a Query naming a missing target ends in error with reason TargetNotFound', async () => {
    const ns = await kube.namespace('missing')
    await apply(ns, MOCK)
    await controller(ns)
    await apply(ns, query('lost', 'nobody'))
    const q = await phaseOf(ns, 'lost', 'error')
    expect(completed(q)).toMatchObject({ status: 'True', reason: 'TargetNotFound' })
    expect(completed(q)?.message).toContain(`agent ${ns}/nobody not found`)
    expect(q.status?.responses?.[0]?.phase).toBe('error')
    await vi.waitFor(
      async () =>
        expect(await kube.kubectl(['describe', 'query', 'lost', '-n', ns])).toMatch(
          /Warning\s+TargetNotFound/,
        ),
      { timeout: 10_000, interval: 200 },
    )
  })

  it('an invalid Query input ends in error and never stops the controller', async () => {
    const ns = await kube.namespace('invalid')
    await apply(ns, MOCK)
    const ctl = await controller(ns)
    await apply(
      ns,
      `apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: bad-messages }
spec:
  type: messages
  input: [{ role: wizard, content: 1 }]
  targets: [{ type: agent, name: support-agent }]
`,
    )
    const q = await phaseOf(ns, 'bad-messages', 'error')
    expect(completed(q)?.reason).toBe('InvalidInput')
    // The controller still serves the next Query.
    await apply(ns, query('after', 'support-agent'))
    await phaseOf(ns, 'after', 'done')
    expect(ctl.lines.some((l) => l.level === 'error')).toBe(false)
  })

  it('an object the adapters reject gets Valid False InvalidSpec and a Warning Event; fixing it clears both', async () => {
    const ns = await kube.namespace('reject')
    await apply(ns, MOCK)
    const ctl = await controller(ns)
    // The CRD accepts it (targets are optional there); ark cannot run a Query without a target.
    await apply(
      ns,
      `apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: aimless }
spec: { input: hello }
`,
    )
    const valid = async () =>
      (
        await kube.kubectl([
          'get',
          'query',
          'aimless',
          '-n',
          ns,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Valid")].status} {.status.conditions[?(@.type=="Valid")].reason} {.status.conditions[?(@.type=="Valid")].message}',
        ])
      ).trim()
    await vi.waitFor(
      async () => expect(await valid()).toMatch(/^False InvalidSpec spec.targets: the query has no target/),
      {
        timeout: 15_000,
        interval: 200,
      },
    )
    await vi.waitFor(
      async () =>
        expect(await kube.kubectl(['describe', 'query', 'aimless', '-n', ns])).toMatch(
          /Warning\s+InvalidSpec/,
        ),
      { timeout: 10_000, interval: 200 },
    )
    await kube.kubectl([
      'patch',
      'query',
      'aimless',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"spec":{"targets":[{"type":"agent","name":"support-agent"}]}}',
    ])
    await phaseOf(ns, 'aimless', 'done')
    await vi.waitFor(async () => expect(await valid()).toBe(''), { timeout: 10_000, interval: 200 })
    expect(ctl.lines.some((l) => l.level === 'error')).toBe(false)
  })

  it('cancel: true stops a running Query: phase canceled', async () => {
    const ns = await kube.namespace('cancel')
    await apply(ns, SLOW(upstream.url))
    await controller(ns)
    upstream.next({ hang: true })
    await apply(ns, query('stop-me', 'slow').replace('How do I', 'cancel-marker how do I'))
    await phaseOf(ns, 'stop-me', 'running')
    await vi.waitFor(() => expect(chatCalls('cancel-marker')).toHaveLength(1), { timeout: 10_000 })
    await kube.kubectl([
      'patch',
      'query',
      'stop-me',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"spec":{"cancel":true}}',
    ])
    const q = await phaseOf(ns, 'stop-me', 'canceled')
    expect(completed(q)?.reason).toBe('QueryCanceled')
    // The run was aborted: the upstream saw the client go away.
    await vi.waitFor(() => expect(chatCalls('cancel-marker')[0]?.closedEarly).toBe(true), { timeout: 10_000 })
  })

  it('a Query that outlives its timeout ends in error with reason QueryTimeout', async () => {
    const ns = await kube.namespace('timeout')
    await apply(ns, SLOW(upstream.url))
    await controller(ns)
    upstream.next({ hang: true })
    await apply(
      ns,
      query('too-slow', 'slow', '  timeout: 2s\n').replace('How do I', 'timeout-marker how do I'),
    )
    const q = await phaseOf(ns, 'too-slow', 'error', 20_000)
    expect(completed(q)?.reason).toBe('QueryTimeout')
    expect(completed(q)?.message).toContain('2s')
  })

  it('a finished Query is deleted when its ttl has passed, finalizer and all', async () => {
    const ns = await kube.namespace('ttl')
    await apply(ns, MOCK)
    await controller(ns)
    await apply(ns, query('short-lived', 'support-agent', '  ttl: 3s\n'))
    await phaseOf(ns, 'short-lived', 'done')
    await vi.waitFor(async () => expect(await getQuery(ns, 'short-lived')).toBeUndefined(), {
      timeout: 20_000,
      interval: 250,
    })
  })

  it('deleting a running Query aborts its run and lets it go (the finalizer is removed)', async () => {
    const ns = await kube.namespace('delete')
    await apply(ns, SLOW(upstream.url))
    await controller(ns)
    upstream.next({ hang: true })
    await apply(ns, query('doomed', 'slow').replace('How do I', 'delete-marker how do I'))
    await phaseOf(ns, 'doomed', 'running')
    await vi.waitFor(() => expect(chatCalls('delete-marker')).toHaveLength(1), { timeout: 10_000 })
    await kube.kubectl(['delete', 'query', 'doomed', '-n', ns, '--wait=false'])
    await vi.waitFor(async () => expect(await getQuery(ns, 'doomed')).toBeUndefined(), {
      timeout: 20_000,
      interval: 250,
    })
    await vi.waitFor(() => expect(chatCalls('delete-marker')[0]?.closedEarly).toBe(true), { timeout: 10_000 })
  })

  it('two controllers: one leads; the leader SIGKILLed mid-Query, the other takes over and ends that Query exactly once', async () => {
    const ns = await kube.namespace('failover')
    await apply(ns, SLOW(upstream.url))
    const a = await controller(ns, ['--id', 'ctl-a'], { failover: true })
    await a.waitFor((l) => l.msg === 'leading', 20_000)
    const b = await controller(ns, ['--id', 'ctl-b'], { failover: true })
    // The second replica syncs its cache but does not lead while the first holds the Lease.
    await new Promise((r) => setTimeout(r, 1500))
    expect(b.lines.some((l) => l.msg === 'leading')).toBe(false)
    expect(
      (
        await kube.kubectl([
          'get',
          'lease',
          'ark-controller',
          '-n',
          ns,
          '-o',
          'jsonpath={.spec.holderIdentity}',
        ])
      ).trim(),
    ).toBe('ctl-a')
    upstream.next({ hang: true })
    await apply(ns, query('orphan', 'slow').replace('How do I', 'failover-marker how do I'))
    await phaseOf(ns, 'orphan', 'running')
    await vi.waitFor(() => expect(chatCalls('failover-marker')).toHaveLength(1), { timeout: 10_000 })
    a.signal('SIGKILL')
    await a.exited
    await b.waitFor((l) => l.msg === 'leading', 20_000)
    const q = await phaseOf(ns, 'orphan', 'error', 20_000)
    expect(completed(q)?.reason).toBe('ControllerRestarted')
    expect(completed(q)?.message).toContain('attempt by ctl-a')
    // Never run a second time: one call ever reached the model.
    await new Promise((r) => setTimeout(r, 500))
    expect(chatCalls('failover-marker')).toHaveLength(1)
    // The new leader runs new Queries.
    await apply(ns, query('next', 'slow').replace('How do I', 'after-failover how do I'))
    await phaseOf(ns, 'next', 'done')
  }, 60_000)

  it('a Secret rotated under a Model is used by the next Query', async () => {
    const ns = await kube.namespace('rotate')
    upstream.keys.clear()
    upstream.keys.add('sk-old')
    try {
      await apply(
        ns,
        `apiVersion: v1
kind: Secret
metadata: { name: llm }
stringData: { key: sk-old }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: keyed }
spec:
  provider: openai
  model: { value: gpt-4o }
  config:
    openai:
      baseUrl: { value: "${upstream.url}" }
      apiKey: { valueFrom: { secretKeyRef: { name: llm, key: key } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: keyed }
spec: { prompt: hi, modelRef: { name: keyed } }
`,
      )
      const ctl = await controller(ns)
      await apply(ns, query('before', 'keyed'))
      await phaseOf(ns, 'before', 'done')
      upstream.keys.clear()
      upstream.keys.add('sk-new')
      await apply(ns, `apiVersion: v1\nkind: Secret\nmetadata: { name: llm }\nstringData: { key: sk-new }\n`)
      await new Promise((r) => setTimeout(r, 500))
      await apply(ns, query('after', 'keyed'))
      await phaseOf(ns, 'after', 'done')
      // The key never reached a log line.
      expect(JSON.stringify(ctl.lines)).not.toContain('sk-new')
      expect(JSON.stringify(ctl.lines)).not.toContain('sk-old')
    } finally {
      upstream.keys.clear()
    }
  }, 60_000)

  it('every seed manifest applied with kubectl reaches its status', async () => {
    const ns = await kube.namespace('seeds')
    const dir = join(import.meta.dirname, 'fixtures/seeds')
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()) {
      // The seed Query is written back with its status and server-owned metadata: apply only what a user writes.
      if (file.startsWith('000')) continue
      const docs = parseAllDocuments(await readFile(join(dir, file), 'utf8')).map((d) => d.toJS() as unknown)
      const written = docs.flatMap((d) => {
        if (typeof d !== 'object' || d === null) return []
        const doc = { ...(d as Record<string, unknown>) }
        const metadata = { ...(doc.metadata as Record<string, unknown>) }
        delete doc.status
        delete metadata.namespace
        return [stringify({ ...doc, metadata })]
      })
      await apply(ns, written.join('---\n'))
    }
    await apply(ns, MOCK)
    await controller(ns)
    const kinds = ['agents', 'models', 'tools', 'teams', 'arkagents', 'arkteams', 'mcpservers', 'memories']
    await vi.waitFor(
      async () => {
        for (const kind of kinds) {
          const list = JSON.parse(await kube.kubectl(['get', kind, '-n', ns, '-o', 'json'])) as {
            items: { metadata: { name: string }; status?: { conditions?: unknown[] } }[]
          }
          for (const item of list.items) {
            expect(item.status?.conditions?.length ?? 0, `${kind}/${item.metadata.name}`).toBeGreaterThan(0)
          }
        }
      },
      { timeout: 20_000, interval: 500 },
    )
    // Seed 002's agents say why they are not available, in their own condition.
    const agents = await kube.kubectl(['get', 'agents', '-n', ns])
    expect(agents).toMatch(/AVAILABLE\s+REASON/)
  }, 60_000)

  it('an MCPServer discovers its tools into status: kubectl get shows the count, its mcp Tool becomes Available', async () => {
    const ns = await kube.namespace('mcp')
    const everything = await startEverything('streamableHttp')
    try {
      await apply(
        ns,
        `apiVersion: ark.mckinsey.com/v1alpha1
kind: MCPServer
metadata: { name: everything }
spec: { address: { value: "${everything.url}" }, transport: http, timeout: 5s }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: echo }
spec: { type: mcp, mcp: { mcpServerRef: { name: everything }, toolName: echo } }
`,
      )
      await controller(ns)
      let server: { status?: { toolCount?: number; tools?: string[]; resolvedAddress?: string } } = {}
      await vi.waitFor(
        async () => {
          server = JSON.parse(
            await kube.kubectl(['get', 'mcpserver', 'everything', '-n', ns, '-o', 'json']),
          ) as typeof server
          expect(server.status?.tools).toContain('echo')
        },
        { timeout: 20_000, interval: 300 },
      )
      expect(server.status?.toolCount).toBe(server.status?.tools?.length)
      expect(server.status?.resolvedAddress).toBe(everything.url)
      const table = await kube.kubectl(['get', 'mcpservers', '-n', ns])
      expect(table).toMatch(
        new RegExp(`^everything\\s+True\\s+\\S+\\s+${String(server.status?.toolCount)}\\s`, 'm'),
      )
      await vi.waitFor(
        async () => expect(await kube.kubectl(['get', 'tools', 'echo', '-n', ns])).toMatch(/^echo\s.*True/m),
        { timeout: 10_000, interval: 300 },
      )
    } finally {
      await everything.stop()
    }
  }, 60_000)

  it('an A2AServer reads its card into status and makes its Agent (owned by it), which a Query runs on', async () => {
    const ns = await kube.namespace('a2a')
    const remote = await startRemoteA2A()
    try {
      await apply(
        ns,
        `apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: remote }
spec: { address: { value: "${remote.url}" } }
`,
      )
      await controller(ns)
      let agent: {
        metadata?: {
          annotations?: Record<string, string>
          ownerReferences?: { kind: string; name: string }[]
        }
        spec?: { executionEngine?: { name: string } }
      } = {}
      await vi.waitFor(
        async () => {
          agent = JSON.parse(
            await kube.kubectl(['get', 'agent', 'remote', '-n', ns, '-o', 'json']),
          ) as typeof agent
        },
        { timeout: 20_000, interval: 300 },
      )
      expect(agent.spec?.executionEngine?.name).toBe('a2a')
      expect(agent.metadata?.annotations?.['ark.mckinsey.com/a2a-server-address']).toBe(remote.url)
      expect(agent.metadata?.ownerReferences).toMatchObject([{ kind: 'A2AServer', name: 'remote' }])
      await vi.waitFor(
        async () =>
          expect(await kube.kubectl(['get', 'a2aservers', '-n', ns])).toMatch(
            new RegExp(`^remote\\s+True\\s+${remote.url.replace(/[.:/]/g, '\\$&')}\\s`, 'm'),
          ),
        { timeout: 10_000, interval: 300 },
      )
      await vi.waitFor(
        async () =>
          expect(await kube.kubectl(['get', 'agents', 'remote', '-n', ns])).toMatch(/^remote\s.*True/m),
        { timeout: 10_000, interval: 300 },
      )
      await apply(
        ns,
        `apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: ask-remote }
spec: { input: "over the wire", targets: [{ type: agent, name: remote }] }
`,
      )
      await vi.waitFor(
        async () => {
          const query = JSON.parse(
            await kube.kubectl(['get', 'query', 'ask-remote', '-n', ns, '-o', 'json']),
          ) as { status?: { phase?: string; responses?: { content: string }[] } }
          expect(query.status?.phase).toBe('done')
          expect(query.status?.responses?.[0]?.content).toBe('remote says: over the wire')
        },
        { timeout: 20_000, interval: 300 },
      )
    } finally {
      await remote.close()
    }
  }, 60_000)

  it('ark gateway, ark worker and ark get read the cluster (read-only); Queries run on the Redis pool too', async () => {
    const ns = await kube.namespace('cluster')
    await apply(ns, MOCK)
    const redis = await startRedis()
    try {
      const common = ['--kubeconfig', kube.kubeconfig, '--redis-url', redis.url]
      const gateway = await startArk(['gateway', ...common, '--namespaces', ns, '--port', '0'], {})
      kit.processes.push(gateway)
      const worker = await startArk(
        ['worker', ...common, '--agent', `${ns}/support-agent`, '--port', '0'],
        {},
      )
      kit.processes.push(worker)
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      const ask = () =>
        client.chat.completions.create({
          model: `agent/${ns}/support-agent`,
          messages: [{ role: 'user', content: 'read from the cluster' }],
        })
      // No controller yet: nobody has written the agent's availability, and the gateway does not guess.
      await expect(ask()).rejects.toMatchObject({ status: 503 })
      expect(await kube.kubectl(['get', 'agents', '-n', ns, '-o', 'jsonpath={.items[0].status}'])).toBe('')
      await controller(ns, ['--redis-url', redis.url])
      await vi.waitFor(
        async () => expect((await ask()).choices[0]?.message.content).toContain('read from the cluster'),
        {
          timeout: 15_000,
          interval: 250,
        },
      )
      // The controller's Queries go through the same Redis pool, to the worker.
      await apply(ns, query('via-redis', 'support-agent'))
      await phaseOf(ns, 'via-redis', 'done')
      await vi.waitFor(() => expect(worker.lines.some((l) => l.msg === 'taking tasks')).toBe(true))
      const get = await run(process.execPath, [
        'bin/ark.ts',
        'get',
        'agents',
        '-n',
        ns,
        '--kubeconfig',
        kube.kubeconfig,
      ])
      expect(get.stdout).toMatch(/support-agent\s.*True/)
      const queries = await run(process.execPath, [
        'bin/ark.ts',
        'get',
        'queries',
        '-n',
        ns,
        '--kubeconfig',
        kube.kubeconfig,
      ])
      expect(queries.stdout).toMatch(/via-redis\s.*done/)
    } finally {
      await kit.stopAll()
      await redis.stop()
    }
  }, 90_000)
})
