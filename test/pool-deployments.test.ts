/**
 * ArkAgents as Deployments, end to end on a real kube-apiserver with the real kube-controller-manager's
 * Deployment, ReplicaSet and garbage-collector controllers, a real redis-server, and test/kubelet.ts running
 * each Pod's container as a local `ark worker` process:
 * - the real `ark controller`, with a token bound only to deploy/rbac's roles, applies a Deployment per
 *   ArkAgent (seed 003's research-agent: two workers), and the per-namespace ServiceAccount, RoleBinding and
 *   Redis Secret its pods use; its pods read their agent with that ServiceAccount only;
 * - the real `ark gateway` (read-only token of the data plane) routes requests to them through Redis;
 * - `kubectl scale arkagent` adds a worker; a systemPromptRef ConfigMap change rolls the pool; replicas 0
 *   drains it; deleting the ArkAgent deletes the Deployment and its pods;
 * - status: replicas, readyReplicas, Progressing and Degraded from the Deployment;
 * - with --keda, a ScaledObject whose trigger names the pool's real stream and group, and a pool that KEDA
 *   scaled to zero keeps its requests waiting in the stream (whose lag KEDA reads) until a worker comes.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as k8s from '@kubernetes/client-node'
import { Redis } from 'ioredis'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { Kubelet } from './kubelet.ts'
import { startKubelet } from './kubelet.ts'
import type { KubeServer } from './kube.ts'
import { serviceAccountKubeconfig, startKube } from './kube.ts'
import type { RedisServer } from './redis-server.ts'
import { startRedis } from './redis-server.ts'

const SYSTEM = 'ark-system'
const IMAGE = 'ghcr.io/ark-runtime/ark:0.1.0'
const SEED_003 = readFileSync(join(import.meta.dirname, 'fixtures/seeds/003-arkagent.yaml'), 'utf8')

let kube: KubeServer
let redis: RedisServer
let kubelet: Kubelet
let controller: ArkProcess
let gateway: ArkProcess
let openai: OpenAI
let apps: k8s.AppsV1Api
let custom: k8s.CustomObjectsApi
const namespaces: string[] = []

/** The data plane's identity in ark-system, as the chart makes it: read-only, cluster-wide. */
const GATEWAY_RBAC = `
apiVersion: v1
kind: ServiceAccount
metadata: { name: ark-gateway, namespace: ${SYSTEM} }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: ark-gateway }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ark-data-plane }
subjects: [{ kind: ServiceAccount, name: ark-gateway, namespace: ${SYSTEM} }]
`

async function startController(extra: readonly string[] = []): Promise<ArkProcess> {
  const kubeconfig = await serviceAccountKubeconfig(kube, SYSTEM, 'ark-controller')
  const p = await startArk(
    [
      'controller',
      '--kubeconfig',
      kubeconfig,
      '--port',
      '0',
      '--lease-namespace',
      SYSTEM,
      '--retry-period',
      '1',
      '--probe-interval',
      '0',
      ...extra,
    ],
    { env: { REDIS_URL: redis.url, ARK_WORKER_IMAGE: IMAGE } },
  )
  await p.waitFor((l) => l.msg === 'leading', 30_000)
  return p
}

beforeAll(async () => {
  ;[kube, redis] = await Promise.all([
    startKube({ controllers: ['deployment', 'replicaset', 'garbagecollector'] }),
    startRedis(),
  ])
  await kube.installCrds()
  await kube.kubectl(['create', 'namespace', SYSTEM])
  await kube.kubectl(['apply', '-k', join(import.meta.dirname, '../deploy/rbac')])
  await kube.kubectl(['apply', '-f', '-'], { input: GATEWAY_RBAC })
  const kc = kube.config()
  apps = kc.makeApiClient(k8s.AppsV1Api)
  custom = kc.makeApiClient(k8s.CustomObjectsApi)
  controller = await startController()
  gateway = await startArk(
    ['gateway', '--kubeconfig', await serviceAccountKubeconfig(kube, SYSTEM, 'ark-gateway'), '--port', '0'],
    { env: { REDIS_URL: redis.url } },
  )
  openai = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  kubelet = startKubelet(kube, { namespaces: () => namespaces })
}, 180_000)

afterAll(async () => {
  if (process.env.DEBUG_POOLS !== undefined)
    console.log(controller.lines.map((l) => JSON.stringify(l)).join('\n'))
  await kubelet.stop()
  await Promise.all([gateway.stop(), controller.stop()])
  await Promise.all([kube.stop(), redis.stop()])
}, 60_000)

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
  conditions?: { type: string; status: string; reason: string; message: string }[]
}
const statusOf = async (ns: string, name: string) => ((await arkAgent(ns, name)).status ?? {}) as AgentStatus
const condition = (s: AgentStatus, type: string) => s.conditions?.find((c) => c.type === type)

async function ask(model: string, content: string): Promise<string> {
  const r = await openai.chat.completions.create({ model, messages: [{ role: 'user', content }] })
  return r.choices[0]?.message.content ?? ''
}

/** The controller never had a request refused: its token holds every verb the pools need. */
function expectNoForbidden(p: ArkProcess): void {
  const refused = p.lines.filter((l) => /forbidden|403/i.test(JSON.stringify(l)))
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
    await vi.waitFor(() => expect(kubelet.pods(ns).filter((p) => p.ready)).toHaveLength(2), {
      timeout: 60_000,
      interval: 250,
    })
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
    // Its run was timed on one of the pods (their /metrics, through the port the kubelet gave them).
    const runs = await Promise.all(
      kubelet.pods(ns).map(async (p) => {
        const text = await (await fetch(`http://127.0.0.1:${String(p.port)}/metrics`)).text()
        const line = text.split('\n').find((l) => l.startsWith('ark_queue_run_seconds_count'))
        return Number(line?.split(' ').at(-1) ?? 0)
      }),
    )
    expect(runs.reduce((a, b) => a + b, 0)).toBe(1)
    expectNoForbidden(controller)
  }, 120_000)

  it('scales with kubectl scale arkagent: a third worker starts', async () => {
    const before = kubelet.pods(ns).map((p) => p.name)
    await kube.kubectl(['scale', 'arkagent', 'research-agent', '-n', ns, '--replicas', '3'])
    await vi.waitFor(() => expect(kubelet.pods(ns).filter((p) => p.ready)).toHaveLength(3), {
      timeout: 60_000,
      interval: 250,
    })
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
    await vi.waitFor(() => expect(kubelet.pods(ns)).toHaveLength(0), { timeout: 60_000, interval: 250 })
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
    await vi.waitFor(() => expect(kubelet.pods(ns).filter((p) => p.ready)).toHaveLength(1), {
      timeout: 60_000,
      interval: 250,
    })
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
    await vi.waitFor(() => expect(kubelet.pods(ns)).toHaveLength(0), { timeout: 60_000, interval: 250 })
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
    await vi.waitFor(() => expect(kubelet.pods(ns).filter((p) => p.ready)).toHaveLength(1), {
      timeout: 60_000,
      interval: 250,
    })
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
    await kube.kubectl(['annotate', 'arkagent', 'analyst', '-n', ns, 'note=unrelated'])
    await new Promise((r) => setTimeout(r, 2000))
    expect(kubelet.pods(ns).map((p) => p.name)).toEqual([now])
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
    // The keda rules, and a stand-in for KEDA's CRD so the API server stores ScaledObjects.
    await kube.kubectl(['apply', '-f', join(import.meta.dirname, '../deploy/rbac/keda-cluster-role.yaml')])
    for (const crd of ['keda.sh_scaledobjects.yaml', 'keda.sh_triggerauthentications.yaml'])
      await kube.kubectl(['apply', '-f', join(import.meta.dirname, 'fixtures/crds', crd)])
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/scaledobjects.keda.sh'])
    await controller.stop()
    controller = await startController(['--keda', 'true', '--keda-lag-count', '3'])

    const ns = await namespace('keda')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: scaled }
spec: { replicas: 4, model: llama3.2, systemPrompt: I scale. }
`,
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
      maxReplicaCount: 4,
    })
    expect(trigger?.type).toBe('redis-streams')
    expect(trigger?.metadata).toMatchObject({
      consumerGroup: 'workers',
      lagCount: '3',
      address: `127.0.0.1:${String(redis.port)}`,
    })

    // The HPA owns the replicas: the controller leaves them out. KEDA scaled it to zero (as its HPA does,
    // through the scale subresource); another reconcile does not undo that.
    await vi.waitFor(() => expect(kubelet.pods(ns).filter((p) => p.ready)).toHaveLength(1), {
      timeout: 60_000,
      interval: 250,
    })
    await kube.kubectl(['scale', 'deployment', 'scaled', '-n', ns, '--replicas', '0'])
    await vi.waitFor(() => expect(kubelet.pods(ns)).toHaveLength(0), { timeout: 60_000, interval: 250 })
    await kube.kubectl(['annotate', 'arkagent', 'scaled', '-n', ns, 'nudge=1'])
    await new Promise((r) => setTimeout(r, 1500))
    expect((await apps.readNamespacedDeployment({ namespace: ns, name: 'scaled' })).spec?.replicas).toBe(0)

    // A request waits in the stream the trigger names; its lag is what KEDA scales on.
    const answer = ask(`agent/${ns}/scaled`, 'wake up')
    const client = new Redis(redis.url)
    try {
      await vi.waitFor(
        async () => {
          const groups = (await client.xinfo('GROUPS', trigger?.metadata.stream ?? '')) as unknown[][]
          const info = Object.fromEntries(
            (groups[0] ?? []).reduce<[string, unknown][]>(
              (acc, v, i, all) => (i % 2 === 0 ? [...acc, [String(v), all[i + 1]]] : acc),
              [],
            ),
          )
          expect(info.name).toBe('workers')
          expect(info.lag).toBe(1)
        },
        { timeout: 20_000, interval: 250 },
      )
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
    expectNoForbidden(controller)
  }, 180_000)
})
