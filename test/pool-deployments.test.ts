/**
 * ark installed with its Helm chart, running: a real kube-apiserver with the real kube-controller-manager's
 * Deployment, ReplicaSet and garbage-collector controllers, a real redis-server, and test/kubelet.ts running
 * every Pod's container as a local `ark` process, with its ServiceAccount's token only.
 * - `helm install` (deploy/helm/ark, external Redis) gives a controller, two gateway replicas and the shared
 *   runtime, each a pod of the chart's Deployments, as the chart wrote them;
 * - the controller applies a Deployment per ArkAgent (seed 003's research-agent: two workers) and the
 *   per-namespace ServiceAccount, RoleBinding and Redis Secret its pods read their agent with;
 * - requests through a gateway pod are answered by the pool's workers, or by the shared runtime for an
 *   ARK-dialect Agent;
 * - `kubectl scale arkagent` adds a worker; a systemPromptRef ConfigMap change rolls the pool; replicas 0
 *   drains it; deleting the ArkAgent deletes the Deployment and its pods;
 * - status: replicas, readyReplicas, Progressing and Degraded from the Deployment;
 * - `helm upgrade --set keda.enabled=true` rolls the controller; the new one gives each pool a ScaledObject
 *   whose trigger names the pool's real stream and group, and a pool scaled to zero keeps its requests
 *   waiting in the stream (whose lag KEDA reads) until a worker comes.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import * as k8s from '@kubernetes/client-node'
import { Redis } from 'ioredis'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest'
import { newKey } from '../gateway/index.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'
import type { Kubelet, RunningPod } from './kubelet.ts'
import { startKubelet } from './kubelet.ts'
import type { KubeServer } from './kube.ts'
import { helmBinary, startKube } from './kube.ts'
import type { RedisServer } from './redis-server.ts'
import { startRedis } from './redis-server.ts'

const run = promisify(execFile)
const SYSTEM = 'ark-system'
const CHART = join(import.meta.dirname, '../deploy/helm/ark')
const IMAGE = 'ghcr.io/ark-runtime/ark:0.1.0'
const KEY = newKey()
const SEED_003 = readFileSync(join(import.meta.dirname, 'fixtures/seeds/003-arkagent.yaml'), 'utf8')

let kube: KubeServer
let redis: RedisServer
let kubelet: Kubelet
let openai: OpenAI
let apps: k8s.AppsV1Api
let custom: k8s.CustomObjectsApi
const namespaces: string[] = []

async function helm(...args: string[]): Promise<string> {
  const { stdout } = await run(await helmBinary(), [...args, '--kubeconfig', kube.kubeconfig], {
    timeout: 120_000,
  })
  return stdout
}

/** The release's running pods of one component (controller, gateway, runtime). */
const component = (name: string): RunningPod[] =>
  kubelet.pods(SYSTEM).filter((p) => p.labels['app.kubernetes.io/component'] === name)

/** The controller pod that leads. */
async function leader(): Promise<RunningPod> {
  return vi.waitFor(
    () => {
      const leading = component('controller').find(
        (p) => p.ready && p.process.lines.some((l) => l.msg === 'leading'),
      )
      if (leading === undefined) throw new Error('no controller leads yet')
      return leading
    },
    { timeout: 60_000, interval: 250 },
  )
}

beforeAll(async () => {
  ;[kube, redis] = await Promise.all([
    startKube({ controllers: ['deployment', 'replicaset', 'garbagecollector'] }),
    startRedis(),
  ])
  const kc = kube.config()
  apps = kc.makeApiClient(k8s.AppsV1Api)
  custom = kc.makeApiClient(k8s.CustomObjectsApi)
  kubelet = startKubelet(kube, { namespaces: () => [SYSTEM, ...namespaces] })
  // The gateways ask for API keys (auth.existingSecret): their digests in a Secret of the release namespace.
  await kube.kubectl(['create', 'namespace', SYSTEM])
  await kube.kubectl([
    'create',
    'secret',
    'generic',
    'ark-api-keys',
    '-n',
    SYSTEM,
    `--from-literal=tests=${KEY.sha256}`,
  ])
  await helm(
    'install',
    'ark',
    CHART,
    '--namespace',
    SYSTEM,
    '--set',
    'auth.existingSecret=ark-api-keys',
    '--set',
    'redis.enabled=false',
    '--set',
    `redis.url=${redis.url}`,
    '--set',
    'controller.replicas=1',
    '--set',
    'runtime.replicas=1',
  )
  await vi.waitFor(
    () => {
      expect(component('gateway').filter((p) => p.ready)).toHaveLength(2)
      expect(component('runtime').filter((p) => p.ready)).toHaveLength(1)
    },
    { timeout: 90_000, interval: 250 },
  )
  await leader()
  const gateway = component('gateway')[0]
  openai = new OpenAI({
    baseURL: `http://127.0.0.1:${String(gateway?.port)}/v1`,
    apiKey: KEY.key,
    maxRetries: 0,
  })
  // Without the key, the chart's gateway refuses.
  const refused = await fetch(`http://127.0.0.1:${String(gateway?.port)}/v1/models`)
  expect(refused.status).toBe(401)
}, 180_000)

afterAll(async () => {
  if (process.env.DEBUG_POOLS !== undefined)
    for (const p of component('controller'))
      console.log(p.process.lines.map((l) => JSON.stringify(l)).join('\n'))
  await kubelet.stop()
  await Promise.all([kube.stop(), redis.stop()])
}, 60_000)

/** Waits until the namespace has exactly `count` pods, all ready. */
async function readyPods(ns: string, count: number): Promise<void> {
  await vi.waitFor(
    () => {
      expect(kubelet.pods(ns)).toHaveLength(count)
      expect(kubelet.pods(ns).every((p) => p.ready)).toBe(true)
    },
    { timeout: 60_000, interval: 250 },
  )
}

async function namespace(prefix: string): Promise<string> {
  const ns = await kube.namespace(prefix)
  namespaces.push(ns)
  return ns
}

async function arkAgent(ns: string, name: string): Promise<Record<string, unknown>> {
  return (await custom.getNamespacedCustomObject({
    group: 'arkonis.dev',
    version: 'v1alpha1',
    namespace: ns,
    plural: 'arkagents',
    name,
  })) as Record<string, unknown>
}

type AgentStatus = {
  replicas?: number
  readyReplicas?: number
  conditions?: {
    type: string
    status: string
    reason: string
    message: string
    observedGeneration?: number
  }[]
}
const statusOf = async (ns: string, name: string) => ((await arkAgent(ns, name)).status ?? {}) as AgentStatus
const condition = (s: AgentStatus, type: string) => s.conditions?.find((c) => c.type === type)

async function ask(model: string, content: string): Promise<string> {
  const r = await openai.chat.completions.create({ model, messages: [{ role: 'user', content }] })
  return r.choices[0]?.message.content ?? ''
}

/** No ark process of the release or its pools had a request refused: each token holds what it needs. */
function expectNoForbidden(): void {
  const pods = [...kubelet.pods(), ...kubelet.stopped.map((s) => s.pod)]
  const refused = pods.flatMap((p) =>
    p.process.lines
      .filter((l) => /\b403 Forbidden\b|\bis forbidden\b/.test(JSON.stringify(l)))
      .map((l) => `${p.name}: ${JSON.stringify(l)}`),
  )
  expect(refused).toEqual([])
}

describe('an ArkAgent on a cluster', () => {
  let ns: string

  it("runs seed 003's research-agent as a Deployment of two workers that answer through the gateway", async () => {
    ns = await namespace('pools')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: SEED_003.replace('namespace: default', `namespace: ${ns}`),
    })

    const deployment = await vi.waitFor(
      () => apps.readNamespacedDeployment({ namespace: ns, name: 'research-agent' }),
      {
        timeout: 30_000,
        interval: 250,
      },
    )
    const agent = await arkAgent(ns, 'research-agent')
    const meta = agent.metadata as { uid: string }
    expect(deployment.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'ArkAgent', name: 'research-agent', uid: meta.uid, controller: true }),
    ])
    expect(deployment.spec?.replicas).toBe(2)
    const pod = deployment.spec?.template.spec
    const container = pod?.containers[0]
    expect(container?.image).toBe(IMAGE)
    expect(container?.args).toEqual(['worker', '--agent', `${ns}/research-agent`, '--source', 'cluster'])
    expect(pod?.serviceAccountName).toBe('ark-worker')
    expect(container?.readinessProbe?.httpGet?.path).toBe('/readyz')
    expect(container?.livenessProbe?.httpGet?.path).toBe('/healthz')
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]))
    // Seed 003's limits, injected; the Redis URL only by reference to a Secret.
    expect(env).toMatchObject({ ARK_WORKER_CONCURRENCY: '5', ARK_TASK_TIMEOUT: '120' })
    expect(env.REDIS_URL).toEqual({ secretKeyRef: { name: 'ark-worker-redis', key: 'REDIS_URL' } })
    expect(JSON.stringify(deployment)).not.toContain(redis.url)
    expect(pod?.securityContext?.runAsNonRoot).toBe(true)
    expect(deployment.spec?.template.metadata?.annotations?.['ark.mckinsey.com/config-hash']).toMatch(
      /^[0-9a-f]{16}$/,
    )

    // Two pods, each an `ark worker` reading its agent with the namespace's ark-worker ServiceAccount.
    await readyPods(ns, 2)
    for (const p of kubelet.pods(ns))
      expect(p.args).toEqual(['worker', '--agent', `${ns}/research-agent`, '--source', 'cluster'])
    await vi.waitFor(
      async () => {
        const s = await statusOf(ns, 'research-agent')
        expect(s).toMatchObject({ replicas: 2, readyReplicas: 2 })
        expect(condition(s, 'Progressing')).toMatchObject({
          status: 'True',
          reason: 'NewReplicaSetAvailable',
        })
        expect(condition(s, 'Degraded')).toMatchObject({ status: 'False' })
      },
      { timeout: 30_000, interval: 250 },
    )

    // The gateway has no workers of its own: the answer comes from the pool.
    const answer = await vi.waitFor(() => ask(`agent/${ns}/research-agent`, 'hello pool'), {
      timeout: 20_000,
      interval: 500,
    })
    expect(answer).toContain('hello pool')
    // Its run was timed on one of the pool's pods.
    const runs = await Promise.all(kubelet.pods(ns).map(runsOn))
    expect(runs.reduce((a, b) => a + b, 0)).toBe(1)
    // Nothing rolled meanwhile: the config hash was stable from the first apply on.
    expect(kubelet.stopped.filter((p) => p.pod.namespace === ns)).toEqual([])
    expectNoForbidden()
  }, 120_000)

  it('scales with kubectl scale arkagent: a third worker starts', async () => {
    const before = kubelet.pods(ns).map((p) => p.name)
    await kube.kubectl(['scale', 'arkagent', 'research-agent', '-n', ns, '--replicas', '3'])
    await readyPods(ns, 3)
    // One more, not three new ones.
    expect(kubelet.pods(ns).filter((p) => before.includes(p.name))).toHaveLength(2)
    await vi.waitFor(
      async () =>
        expect(await statusOf(ns, 'research-agent')).toMatchObject({ replicas: 3, readyReplicas: 3 }),
      {
        timeout: 30_000,
        interval: 250,
      },
    )
  }, 90_000)

  it('drains at replicas 0, and the gateway then says the pool is scaled to zero', async () => {
    await kube.kubectl(['scale', 'arkagent', 'research-agent', '-n', ns, '--replicas', '0'])
    await readyPods(ns, 0)
    // Each worker stopped on SIGTERM and exited cleanly (it drains, then hands back what it held).
    const exits = kubelet.stopped.filter((s) => s.pod.namespace === ns).map((s) => s.exit.code)
    expect(exits.length).toBeGreaterThanOrEqual(3)
    expect(exits.every((c) => c === 0)).toBe(true)
    await vi.waitFor(
      async () =>
        expect(await statusOf(ns, 'research-agent')).toMatchObject({ replicas: 0, readyReplicas: 0 }),
      {
        timeout: 30_000,
        interval: 250,
      },
    )
    const refused = await vi.waitFor(
      async () => {
        const err = await ask(`agent/${ns}/research-agent`, 'anyone?').then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(err).toBeInstanceOf(OpenAI.APIError)
        return err as InstanceType<typeof OpenAI.APIError>
      },
      { timeout: 20_000, interval: 250 },
    )
    expect(refused.status).toBe(503)
    expect(refused.code).toBe('ScaledToZero')
  }, 90_000)

  it('goes with its ArkAgent: deleting it deletes the Deployment and stops the workers', async () => {
    await kube.kubectl(['scale', 'arkagent', 'research-agent', '-n', ns, '--replicas', '1'])
    await readyPods(ns, 1)
    await kube.kubectl(['delete', 'arkagent', 'research-agent', '-n', ns])
    await vi.waitFor(
      async () => {
        const gone = await apps.readNamespacedDeployment({ namespace: ns, name: 'research-agent' }).then(
          () => false,
          () => true,
        )
        expect(gone).toBe(true)
      },
      { timeout: 60_000, interval: 250 },
    )
    await readyPods(ns, 0)
  }, 120_000)
})

/**
 * Changes an ArkAgent's spec in a way its pool does not depend on (maxTokensPerCall is read live, not from
 * the environment), then waits until the pools reconciler has seen that generation: its Progressing
 * condition carries it. What should not have moved can then be checked, instead of sleeping and hoping.
 */
async function reconcileUnrelated(ns: string, name: string, maxTokensPerCall: number): Promise<void> {
  await kube.kubectl([
    'patch',
    'arkagent',
    name,
    '-n',
    ns,
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { limits: { maxTokensPerCall } } }),
  ])
  const generation = ((await arkAgent(ns, name)).metadata as { generation: number }).generation
  await vi.waitFor(
    async () =>
      expect(condition(await statusOf(ns, name), 'Progressing')).toMatchObject({
        observedGeneration: generation,
      }),
    { timeout: 20_000, interval: 100 },
  )
}

/** Runs this pod measured on its /metrics (ark_queue_run_seconds_count), through its port. */
async function runsOn(p: RunningPod): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${String(p.port)}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('ark_queue_run_seconds_count'))
  return Number(line?.split(' ').at(-1) ?? 0)
}

describe('an ARK-dialect Agent', () => {
  it('runs on the shared runtime, through either gateway replica, with no Deployment of its own', async () => {
    const ns = await namespace('shared')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: helper }
spec: { prompt: I help. }
`,
    })
    const [runtime] = component('runtime')
    if (runtime === undefined) throw new Error('no runtime pod')
    const before = await runsOn(runtime)
    for (const gateway of component('gateway')) {
      const client = new OpenAI({
        baseURL: `http://127.0.0.1:${String(gateway.port)}/v1`,
        apiKey: KEY.key,
        maxRetries: 0,
      })
      const r = await vi.waitFor(
        () =>
          client.chat.completions.create({
            model: `agent/${ns}/helper`,
            messages: [{ role: 'user', content: `via ${gateway.name}` }],
          }),
        { timeout: 20_000, interval: 500 },
      )
      expect(r.choices[0]?.message.content).toContain(`via ${gateway.name}`)
    }
    expect(await runsOn(runtime)).toBe(before + 2)
    const own = await apps.listNamespacedDeployment({ namespace: ns })
    expect(own.items).toEqual([])
  }, 60_000)
})

describe('provider keys from the namespace Secret ark-providers', () => {
  it('reach the pool by reference only, and a rotated key rolls it', async () => {
    const canary = `sk-canary-${Math.random().toString(36).slice(2)}`
    const rotated = `${canary}-2`
    const upstream = await startFakeOpenAI({ keys: [canary] })
    onTestFinished(() => upstream.close())
    const ns = await namespace('keys')
    const secret = (key: string) => `
apiVersion: v1
kind: Secret
metadata: { name: ark-providers }
stringData: { OPENAI_API_KEY: ${key}, OPENAI_BASE_URL: "${upstream.url}" }
`
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `${secret(canary)}---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: priced }
spec: { replicas: 1, model: gpt-4o, systemPrompt: I cost money. }
`,
    })
    await readyPods(ns, 1)
    const first = kubelet.pods(ns)[0]?.name
    expect(
      await vi.waitFor(() => ask(`agent/${ns}/priced`, 'paid'), { timeout: 20_000, interval: 500 }),
    ).toContain('paid')
    expect(upstream.calls.at(-1)?.headers.authorization).toBe(`Bearer ${canary}`)

    // Rotated: the pool rolls onto the new key (the old one is refused from now on).
    upstream.keys.clear()
    upstream.keys.add(rotated)
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: secret(rotated) })
    await vi.waitFor(
      () => {
        const pods = kubelet.pods(ns)
        expect(pods.map((p) => p.name)).not.toContain(first)
        expect(pods.filter((p) => p.ready)).toHaveLength(1)
      },
      { timeout: 60_000, interval: 250 },
    )
    expect(await ask(`agent/${ns}/priced`, 'paid again')).toContain('paid again')
    expect(upstream.calls.at(-1)?.headers.authorization).toBe(`Bearer ${rotated}`)

    // The key itself is nowhere but in its Secret and the workers' memory.
    const seen = [
      JSON.stringify(await apps.readNamespacedDeployment({ namespace: ns, name: 'priced' })),
      JSON.stringify(await arkAgent(ns, 'priced')),
      await kube.kubectl(['get', 'events', '-n', ns, '-o', 'json']),
      ...[...kubelet.pods(), ...kubelet.stopped.map((x) => x.pod)].flatMap((p) =>
        p.process.lines.map((l) => JSON.stringify(l)),
      ),
    ].join('\n')
    expect(seen).not.toContain(canary)
  }, 120_000)
})

describe("an ArkTeam's inline roles", () => {
  it('get a pool each, owned by the team, and a role taken out takes its pool with it', async () => {
    const ns = await namespace('team')
    const team = (roles: string) => `
apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: blog }
spec:
  roles:
    - { name: researcher, model: llama3.2, systemPrompt: You research. }
${roles}`
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: team(`    - { name: writer, model: llama3.2, systemPrompt: You write. }
  pipeline:
    - { role: researcher, inputs: { prompt: "notes on {{ .input }}" } }
    - { role: writer, dependsOn: [researcher], inputs: { prompt: "post from {{ .steps.researcher.output }}" } }
  output: "{{ .steps.writer.output }}"
`),
    })
    await readyPods(ns, 2)
    const uid = (
      JSON.parse(await kube.kubectl(['get', 'arkteam', 'blog', '-n', ns, '-o', 'json'])) as {
        metadata: { uid: string }
      }
    ).metadata.uid
    for (const name of ['blog-researcher', 'blog-writer']) {
      const d = await apps.readNamespacedDeployment({ namespace: ns, name })
      expect(d.metadata?.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'ArkTeam', name: 'blog', uid }),
      ])
    }
    // The team runs in the gateway; each turn on its role's pool.
    expect(
      await vi.waitFor(() => ask(`team/${ns}/blog`, 'otters'), { timeout: 20_000, interval: 500 }),
    ).toContain('otters')
    const runs = await Promise.all(kubelet.pods(ns).map(runsOn))
    expect(runs).toEqual([1, 1])

    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: team(`  pipeline:
    - { role: researcher, inputs: { prompt: "notes on {{ .input }}" } }
  output: "{{ .steps.researcher.output }}"
`),
    })
    await vi.waitFor(
      async () => {
        const names = (await apps.listNamespacedDeployment({ namespace: ns })).items.map(
          (d) => d.metadata?.name,
        )
        expect(names).toEqual(['blog-researcher'])
        expect(kubelet.pods(ns).map((p) => p.labels['app.kubernetes.io/instance'])).toEqual([
          'blog-researcher',
        ])
      },
      { timeout: 60_000, interval: 250 },
    )
  }, 120_000)
})

describe('a systemPromptRef ConfigMap', () => {
  it('rolls the pool when it changes: new workers come up, the old ones drain, the new prompt answers', async () => {
    const ns = await namespace('prompt')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: v1
kind: ConfigMap
metadata: { name: analyst-prompt }
data: { system.txt: "You are analyst version one." }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: analyst }
spec:
  replicas: 1
  model: llama3.2
  systemPromptRef: { configMapKeyRef: { name: analyst-prompt, key: system.txt } }
`,
    })
    await readyPods(ns, 1)
    const first = kubelet.pods(ns)[0]
    const hash = first?.annotations['ark.mckinsey.com/config-hash']
    expect(hash).toMatch(/^[0-9a-f]{16}$/)
    expect(
      await vi.waitFor(() => ask(`agent/${ns}/analyst`, 'show: system'), { timeout: 20_000, interval: 500 }),
    ).toContain('version one')

    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: v1
kind: ConfigMap
metadata: { name: analyst-prompt }
data: { system.txt: "You are analyst version two." }
`,
    })
    // The old pod is replaced by one with the new digest, after it came up (maxUnavailable 0).
    await vi.waitFor(
      () => {
        const pods = kubelet.pods(ns)
        expect(pods).toHaveLength(1)
        expect(pods[0]?.name).not.toBe(first?.name)
        expect(pods[0]?.annotations['ark.mckinsey.com/config-hash']).not.toBe(hash)
        expect(pods[0]?.ready).toBe(true)
      },
      { timeout: 60_000, interval: 250 },
    )
    const old = kubelet.stopped.find((s) => s.pod.name === first?.name)
    expect(old?.exit.code).toBe(0)
    expect(await ask(`agent/${ns}/analyst`, 'show: system')).toContain('version two')
    // An unrelated change does not roll it.
    const now = kubelet.pods(ns)[0]?.name
    const generation = (await apps.readNamespacedDeployment({ namespace: ns, name: 'analyst' })).metadata
      ?.generation
    await reconcileUnrelated(ns, 'analyst', 4000)
    expect(
      (await apps.readNamespacedDeployment({ namespace: ns, name: 'analyst' })).metadata?.generation,
    ).toBe(generation)
    expect(kubelet.pods(ns).map((p) => p.name)).toEqual([now])
  }, 150_000)
})

describe('a controller that restarts', () => {
  it('keeps the pool of an ArkAgent whose current spec it rejects, running on the last valid one', async () => {
    const ns = await namespace('failover')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: steady }
spec: { replicas: 1, model: llama3.2, systemPrompt: I stay. }
`,
    })
    await readyPods(ns, 1)
    // The API server takes it (its schema does not require a prompt); ark rejects it.
    await kube.kubectl([
      'patch',
      'arkagent',
      'steady',
      '-n',
      ns,
      '--type=json',
      '-p',
      '[{"op":"remove","path":"/spec/systemPrompt"}]',
    ])
    await vi.waitFor(
      async () => expect(condition(await statusOf(ns, 'steady'), 'Valid')).toMatchObject({ status: 'False' }),
      { timeout: 20_000, interval: 250 },
    )
    // A new controller pod, whose store never saw the valid version, leads and reconciles every pool.
    const old = await leader()
    await kube.kubectl(['delete', 'pod', old.name, '-n', SYSTEM, '--wait=false'])
    const next = await vi.waitFor(
      async () => {
        const now = await leader()
        expect(now.name).not.toBe(old.name)
        return now
      },
      { timeout: 90_000, interval: 500 },
    )
    await vi.waitFor(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${String(next.port)}/metrics`)).text()
        const line = text
          .split('\n')
          .find((l) => l.startsWith('ark_controller_reconcile_total{') && l.includes('controller="pools"'))
        expect(Number(line?.split(' ').at(-1) ?? 0)).toBeGreaterThan(0)
      },
      { timeout: 30_000, interval: 250 },
    )
    expect((await apps.readNamespacedDeployment({ namespace: ns, name: 'steady' })).spec?.replicas).toBe(1)
    expect(kubelet.pods(ns).filter((p) => p.ready)).toHaveLength(1)
  }, 150_000)
})

describe('a Deployment of the same name that ark does not own', () => {
  it('is left alone, and the agent says why', async () => {
    const ns = await namespace('conflict')
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'taken' },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: 'taken' } },
          template: {
            metadata: { labels: { app: 'taken' } },
            spec: { containers: [{ name: 'c', image: 'nginx' }] },
          },
        },
      },
    })
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: taken }
spec: { replicas: 1, model: llama3.2, systemPrompt: I am taken. }
`,
    })
    await vi.waitFor(
      async () =>
        expect(condition(await statusOf(ns, 'taken'), 'Degraded')).toMatchObject({
          status: 'True',
          reason: 'DeploymentConflict',
        }),
      { timeout: 30_000, interval: 250 },
    )
    const d = await apps.readNamespacedDeployment({ namespace: ns, name: 'taken' })
    expect(d.spec?.template.spec?.containers[0]?.image).toBe('nginx')
    expect(d.metadata?.ownerReferences ?? []).toEqual([])
  }, 60_000)
})

describe('with KEDA', () => {
  it('gives each pool a ScaledObject on its stream, and a pool scaled to zero answers once a worker comes', async () => {
    // A stand-in for KEDA's CRD, so the API server stores ScaledObjects; the upgrade rolls the controller
    // (its environment changed) and adds the KEDA rules to its role.
    for (const crd of ['keda.sh_scaledobjects.yaml', 'keda.sh_triggerauthentications.yaml'])
      await kube.kubectl(['apply', '-f', join(import.meta.dirname, 'fixtures/crds', crd)])
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/scaledobjects.keda.sh'])
    // A pool that exists before KEDA is turned on keeps its workers: the HPA takes over its replica count.
    const ns = await namespace('keda')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: scaled }
spec: { replicas: 2, model: llama3.2, systemPrompt: I scale. }
`,
    })
    await readyPods(ns, 2)
    const before = (await leader()).name
    await helm(
      'upgrade',
      'ark',
      CHART,
      '--namespace',
      SYSTEM,
      '--reuse-values',
      '--set',
      'keda.enabled=true',
      '--set',
      'keda.tasksPerWorker=3',
    )
    await vi.waitFor(
      async () => {
        const now = await leader()
        expect(now.name).not.toBe(before)
        expect(now.env.ARK_KEDA).toBe('true')
      },
      { timeout: 90_000, interval: 500 },
    )
    // Gateways roll too: with KEDA they queue a run for a pool scaled to zero rather than refuse it.
    const waiting = await vi.waitFor(
      () => {
        const g = component('gateway').find((p) => p.ready && p.env.ARK_WAIT_FOR_WORKERS === 'true')
        if (g === undefined) throw new Error('no gateway waits for workers yet')
        return g
      },
      { timeout: 90_000, interval: 500 },
    )
    openai = new OpenAI({
      baseURL: `http://127.0.0.1:${String(waiting.port)}/v1`,
      apiKey: KEY.key,
      maxRetries: 0,
    })

    const scaled = (await vi.waitFor(
      () =>
        custom.getNamespacedCustomObject({
          group: 'keda.sh',
          version: 'v1alpha1',
          namespace: ns,
          plural: 'scaledobjects',
          name: 'scaled',
        }),
      { timeout: 30_000, interval: 250 },
    )) as { spec: Record<string, unknown> }
    const trigger = (scaled.spec.triggers as { type: string; metadata: Record<string, string> }[])[0]
    expect(scaled.spec).toMatchObject({
      scaleTargetRef: { kind: 'Deployment', name: 'scaled' },
      minReplicaCount: 0,
      maxReplicaCount: 2,
    })
    expect(trigger?.type).toBe('redis-streams')
    expect(trigger?.metadata).toMatchObject({
      stream: `ark:pool:${ns}/scaled`,
      streamLength: '3',
      address: `127.0.0.1:${String(redis.port)}`,
    })
    expect(trigger?.metadata.consumerGroup).toBeUndefined()
    expect((await apps.readNamespacedDeployment({ namespace: ns, name: 'scaled' })).spec?.replicas).toBe(2)
    expect(kubelet.pods(ns).filter((p) => p.ready)).toHaveLength(2)

    // KEDA scaled it to zero (as its HPA does, through the scale subresource); the controller's next
    // reconcile does not undo that.
    await kube.kubectl(['scale', 'deployment', 'scaled', '-n', ns, '--replicas', '0'])
    await readyPods(ns, 0)
    await reconcileUnrelated(ns, 'scaled', 4000)
    expect((await apps.readNamespacedDeployment({ namespace: ns, name: 'scaled' })).spec?.replicas).toBe(0)

    // A request waits in the stream the trigger names, whose length is what KEDA scales on.
    const answer = ask(`agent/${ns}/scaled`, 'wake up')
    const client = new Redis(redis.url)
    try {
      await vi.waitFor(async () => expect(await client.xlen(trigger?.metadata.stream ?? '')).toBe(1), {
        timeout: 20_000,
        interval: 250,
      })
    } finally {
      client.disconnect()
    }
    // KEDA activates the pool; the worker takes the waiting request within its deadline.
    await kube.kubectl(['scale', 'deployment', 'scaled', '-n', ns, '--replicas', '1'])
    expect(await answer).toContain('wake up')

    // Drained on purpose, it has no ScaledObject: KEDA must not bring it back.
    await kube.kubectl(['scale', 'arkagent', 'scaled', '-n', ns, '--replicas', '0'])
    await vi.waitFor(
      async () => {
        const gone = await custom
          .getNamespacedCustomObject({
            group: 'keda.sh',
            version: 'v1alpha1',
            namespace: ns,
            plural: 'scaledobjects',
            name: 'scaled',
          })
          .then(
            () => false,
            () => true,
          )
        expect(gone).toBe(true)
      },
      { timeout: 30_000, interval: 250 },
    )
    expectNoForbidden()
  }, 180_000)
})
