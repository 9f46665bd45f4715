/**
 * The deploy/ assets: the image (deploy/Dockerfile), the Helm chart (deploy/helm/ark) and the kustomize base and
 * overlays (deploy/kustomize), checked with the real tools: `helm lint --strict` and `helm template` (helm 4) with
 * the values users set, `kubectl kustomize` (kustomize 5), and a real kube-apiserver 1.20.2 that accepts every
 * rendering (server-side dry-run), then installs the chart for real with `helm install`, whose ServiceAccounts
 * hold exactly what deploy/rbac grants.
 *
 * The rendered objects are held to the contract: each component's arguments, ports, probes and environment;
 * non-root, read-only, capability-less pods; REDIS_URL only by reference to a Secret (the password is in no
 * Deployment); RBAC rules identical to deploy/rbac, where each rule names the code that needs it; the
 * PodDisruptionBudget API of the cluster's version; and values the schema refuses, by name.
 *
 * Not checked here: the image itself (no Docker engine on this machine: the Dockerfile is read, and
 * test/dist.test.ts runs the build it runs); KEDA and the Prometheus Operator (their CRDs are stand-ins,
 * test/fixtures/crds); pods running (the test API server has no scheduler or kubelet).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, parseAllDocuments, stringify } from 'yaml'
import type { KubeServer } from './kube.ts'
import { helmBinary, kubectlBinary, startKube } from './kube.ts'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..')
const CHART = join(ROOT, 'deploy/helm/ark')
const KUSTOMIZE = join(ROOT, 'deploy/kustomize')
const RBAC = join(ROOT, 'deploy/rbac')
const NS = 'ark-system'
const VERSION = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version
const IMAGE = `ghcr.io/ark-runtime/ark:${VERSION}`

// ---------------------------------------------------------------------------------------------------------
// Kubernetes objects, as far as these tests read them.

interface Meta {
  name: string
  namespace?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}
interface Obj {
  apiVersion: string
  kind: string
  metadata: Meta
  [field: string]: unknown
}
interface EnvVar {
  name: string
  value?: string
  valueFrom?: {
    secretKeyRef?: { name: string; key: string }
    fieldRef?: { fieldPath: string }
  }
}
interface Probe {
  httpGet?: { path: string; port: string | number }
  exec?: { command: string[] }
  periodSeconds?: number
  failureThreshold?: number
}
interface Container {
  name: string
  image: string
  imagePullPolicy?: string
  args?: string[]
  env?: EnvVar[]
  envFrom?: { secretRef?: { name: string } }[]
  ports?: { name: string; containerPort: number }[]
  readinessProbe?: Probe
  livenessProbe?: Probe
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> }
  securityContext?: Record<string, unknown>
  volumeMounts?: { name: string; mountPath: string }[]
}
interface PodSpec {
  serviceAccountName?: string
  automountServiceAccountToken?: boolean
  terminationGracePeriodSeconds?: number
  securityContext?: Record<string, unknown>
  containers: Container[]
  volumes?: { name: string; emptyDir?: object; persistentVolumeClaim?: { claimName: string } }[]
  nodeSelector?: Record<string, string>
  imagePullSecrets?: { name: string }[]
}
interface Deployment extends Obj {
  spec: {
    replicas?: number
    selector: { matchLabels: Record<string, string> }
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec }
  }
}
interface Rule {
  apiGroups: string[]
  resources: string[]
  verbs: string[]
  resourceNames?: string[]
}

const parseDocs = (text: string): Obj[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null)

function find(objs: readonly Obj[], kind: string, name: string): Obj {
  const found = objs.find((o) => o.kind === kind && o.metadata.name === name)
  if (found === undefined)
    throw new Error(`no ${kind} ${name} among ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`)
  return found
}
const deployment = (objs: readonly Obj[], name: string) => find(objs, 'Deployment', name) as Deployment
const kinds = (objs: readonly Obj[], kind: string) => objs.filter((o) => o.kind === kind)
const names = (objs: readonly Obj[], kind: string) =>
  kinds(objs, kind)
    .map((o) => o.metadata.name)
    .sort()
const container = (objs: readonly Obj[], name: string): Container => {
  const c = deployment(objs, name).spec.template.spec.containers[0]
  if (c === undefined) throw new Error(`Deployment ${name} has no container`)
  return c
}
const env = (c: Container, name: string): EnvVar | undefined => c.env?.find((e) => e.name === name)

/** The rules of a Role or ClusterRole in a deploy/rbac file. */
async function rbacRules(file: string, kind: string, name: string): Promise<Rule[]> {
  const objs = parseDocs(await readFile(join(RBAC, file), 'utf8'))
  return find(objs, kind, name).rules as Rule[]
}

// ---------------------------------------------------------------------------------------------------------
// The tools.

let helm: string
let kubectl: string

beforeAll(async () => {
  ;[helm, kubectl] = await Promise.all([helmBinary(), kubectlBinary()])
})

/** `helm template` of the chart as release `ark` in ark-system (or `namespace`); the objects it renders. */
async function render(
  args: readonly string[] = [],
  options: { kubeVersion?: string; namespace?: string; includeCrds?: boolean } = {},
): Promise<Obj[]> {
  return parseDocs(await renderText(args, options))
}

async function renderText(
  args: readonly string[] = [],
  { kubeVersion = '1.30.0', namespace = NS, includeCrds = false } = {},
): Promise<string> {
  const { stdout } = await run(
    helm,
    [
      'template',
      'ark',
      CHART,
      '--namespace',
      namespace,
      '--kube-version',
      kubeVersion,
      ...(includeCrds ? ['--include-crds'] : []),
      ...args,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  )
  return stdout
}

/** What helm says when it refuses to render (it must refuse). */
async function refusal(args: readonly string[]): Promise<string> {
  try {
    await run(helm, ['template', 'ark', CHART, '--namespace', NS, ...args])
  } catch (err) {
    return (err as { stderr: string }).stderr
  }
  throw new Error(`helm template ${args.join(' ')} rendered; it should have refused`)
}

async function kustomize(dir: string): Promise<Obj[]> {
  const { stdout } = await run(kubectl, ['kustomize', dir], { maxBuffer: 64 * 1024 * 1024 })
  return parseDocs(stdout)
}

const set = (...pairs: string[]) => pairs.flatMap((p) => ['--set', p])

/** The values users are expected to set, each rendered, linted and dry-run on the API server. */
const VARIATIONS: Readonly<Record<string, readonly string[]>> = {
  default: [],
  keda: set('keda.enabled=true', 'keda.tasksPerWorker=10'),
  monitoring: set(
    'monitoring.serviceMonitor.enabled=true',
    'monitoring.serviceMonitor.labels.release=prom',
    'monitoring.prometheusRule.enabled=true',
    'monitoring.prometheusRule.labels.release=prom',
    'monitoring.grafanaDashboard.enabled=true',
  ),
  'external redis': set('redis.enabled=false', 'redis.url=rediss://:s3cret@redis.example.com:6380/0'),
  'existing secret': set('redis.enabled=false', 'redis.existingSecret=my-redis'),
  everything: set(
    'auth.existingSecret=ark-api-keys',
    'keda.enabled=true',
    'monitoring.serviceMonitor.enabled=true',
    'providers.existingSecret=llm-keys',
    'controller.namespaces={team-a,team-b}',
    'redis.persistence.enabled=true',
    'redis.password=fixed-password',
    'controller.replicas=1',
    'gateway.replicas=3',
    'gateway.service.type=LoadBalancer',
    'runtime.nodeSelector.pool=agents',
    'imagePullSecrets[0].name=registry',
    'controller.extraEnv[0].name=ARK_LOG_LEVEL',
    'controller.extraEnv[0].value=debug',
    'networkPolicy.gateway.from[0].namespaceSelector.matchLabels.edge=gateway',
  ),
  'no network policies': set('networkPolicy.enabled=false'),
}

const ARK = ['ark-controller', 'ark-gateway', 'ark-runtime'] as const

// ---------------------------------------------------------------------------------------------------------

describe('the image (deploy/Dockerfile)', () => {
  /** Instructions of each stage, continuation lines joined and comments dropped. */
  async function stages(): Promise<{ from: string; instructions: { op: string; args: string }[] }[]> {
    const text = (await readFile(join(ROOT, 'deploy/Dockerfile'), 'utf8'))
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('#'))
      .join('\n')
      .replace(/\\\n/g, ' ')
    const out: { from: string; instructions: { op: string; args: string }[] }[] = []
    for (const line of text.split('\n')) {
      const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line)
      if (m === null) continue
      const [, op = '', args = ''] = m
      if (op === 'FROM') out.push({ from: args.trim(), instructions: [] })
      else out.at(-1)?.instructions.push({ op, args: args.trim() })
    }
    return out
  }

  it('builds in one stage and runs the compiled build as a non-root user, on the real node binary', async () => {
    const [build, runtime, ...more] = await stages()
    expect(more).toEqual([])
    expect(build?.from).toBe('node:24-bookworm-slim AS build')
    expect(runtime?.from).toBe('node:24-bookworm-slim')
    const ops = (stage: typeof build, op: string) =>
      (stage?.instructions ?? []).filter((i) => i.op === op).map((i) => i.args)

    // The build stage installs everything and builds dist/ with build.ts (tsc and the Wasm plugins).
    expect(ops(build, 'RUN')).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^npm ci\b/),
        expect.stringMatching(/^node build\.ts\b/),
      ]),
    )
    const tsconfig = JSON.parse(await readFile(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
      files: string[]
      compilerOptions: { outDir: string; rootDir: string }
    }
    // What the ENTRYPOINT runs is what build.ts makes of bin/ark.ts.
    expect(tsconfig.files).toContain('bin/ark.ts')
    expect(tsconfig.compilerOptions).toMatchObject({ outDir: 'dist', rootDir: '.' })

    // The runtime stage: production dependencies only, the build, a non-root user, exec-form entrypoint.
    expect(ops(runtime, 'WORKDIR')).toEqual(['/app'])
    const installs = ops(runtime, 'RUN').filter((r) => r.includes('npm '))
    expect(installs).toHaveLength(1)
    expect(installs[0]).toMatch(/^npm ci\b/)
    expect(installs[0]).toContain('--omit=dev')
    expect(installs[0]).toContain('--ignore-scripts')
    expect(ops(runtime, 'COPY')).toEqual(
      expect.arrayContaining(['package.json package-lock.json ./', '--from=build /src/dist /app/dist']),
    )
    const user = ops(runtime, 'USER')
    expect(user).toHaveLength(1)
    expect(['root', '0', '']).not.toContain(user[0])
    expect(ops(runtime, 'USER').concat(ops(build, 'USER'))).toEqual(['node'])
    const entrypoint = ops(runtime, 'ENTRYPOINT')
    expect(entrypoint).toHaveLength(1)
    expect(JSON.parse(entrypoint[0] ?? '')).toEqual(['/usr/local/bin/node', '/app/dist/bin/ark.js'])
    expect(ops(runtime, 'EXPOSE').join(' ').split(/\s+/).sort()).toEqual(['8080', '8081', '8082'])
    expect(ops(runtime, 'LABEL').join(' ')).toContain(`org.opencontainers.image.version="${VERSION}"`)
  })

  it('gets a build context without installed or built files (.dockerignore)', async () => {
    const ignored = (await readFile(join(ROOT, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', 'dist', '.git', 'plugins/dist', 'coverage']),
    )
    // The `node` devDependency's launcher must not be what runs: it is a devDependency, which --omit=dev skips.
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>
      devDependencies: Record<string, string>
    }
    expect(Object.keys(pkg.devDependencies)).toContain('node')
    expect(Object.keys(pkg.dependencies)).not.toContain('node')
  })
})

describe('the Helm chart (deploy/helm/ark)', () => {
  it('passes helm lint --strict with every variation of the values', async () => {
    for (const [name, args] of Object.entries(VARIATIONS)) {
      const { stdout } = await run(helm, ['lint', '--strict', CHART, '--namespace', NS, ...args]).catch(
        (err: unknown) => {
          throw new Error(`helm lint (${name}): ${(err as { stdout: string }).stdout}`)
        },
      )
      expect(stdout, name).toContain('0 chart(s) failed')
    }
  })

  it("is the package's version, with the generated CRDs byte for byte (npm run crds writes both)", async () => {
    const chart = parse(await readFile(join(CHART, 'Chart.yaml'), 'utf8')) as Record<string, string>
    expect(chart).toMatchObject({
      apiVersion: 'v2',
      name: 'ark',
      version: VERSION,
      appVersion: VERSION,
      kubeVersion: '>=1.20.0-0',
    })
    const generated = (await readdir(join(ROOT, 'deploy/crds')))
      .filter((f) => f !== 'kustomization.yaml')
      .sort()
    expect(generated.length).toBeGreaterThan(10)
    expect((await readdir(join(CHART, 'crds'))).sort()).toEqual(generated)
    for (const file of generated) {
      expect(await readFile(join(CHART, 'crds', file), 'utf8'), file).toBe(
        await readFile(join(ROOT, 'deploy/crds', file), 'utf8'),
      )
    }
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>
    }
    expect(pkg.scripts.crds).toContain('--out deploy/crds')
    expect(pkg.scripts.crds).toContain('--out deploy/helm/ark/crds')
  })

  it('renders the controller, gateway and runtime with their arguments, ports, probes and environment', async () => {
    const objs = await render()
    expect(names(objs, 'Deployment')).toEqual(['ark-controller', 'ark-gateway', 'ark-redis', 'ark-runtime'])
    expect(names(objs, 'ServiceAccount')).toEqual(['ark-controller', 'ark-gateway', 'ark-runtime'])
    expect(names(objs, 'Service')).toEqual(['ark-gateway', 'ark-redis'])
    expect(kinds(objs, 'ServiceMonitor')).toEqual([])

    const controller = container(objs, 'ark-controller')
    const gateway = container(objs, 'ark-gateway')
    const runtime = container(objs, 'ark-runtime')
    expect(controller.args).toEqual(['controller'])
    expect(gateway.args).toEqual(['gateway', '--source', 'cluster'])
    expect(runtime.args).toEqual(['worker', '--shared', '--source', 'cluster'])
    // Through the environment, where a flag would beat it: a runner may give each pod its own port.
    for (const c of [controller, gateway, runtime])
      expect(c.env).toEqual(expect.arrayContaining([{ name: 'HOST', value: '0.0.0.0' }]))
    for (const c of [controller, gateway, runtime]) {
      expect(c.image).toBe(IMAGE)
      expect(c.imagePullPolicy).toBe('IfNotPresent')
      expect(env(c, 'REDIS_URL')).toEqual({
        name: 'REDIS_URL',
        valueFrom: { secretKeyRef: { name: 'ark-redis', key: 'REDIS_URL' } },
      })
      expect(env(c, 'ARK_NAMESPACES')).toBeUndefined()
      expect(c.envFrom).toBeUndefined()
    }
    // The controller: its identity from the downward API, and what its pools run.
    expect(env(controller, 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name')
    expect(env(controller, 'POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace')
    expect(env(controller, 'ARK_WORKER_IMAGE')?.value).toBe(IMAGE)
    expect(env(controller, 'ARK_WORKER_PULL_SECRETS')).toBeUndefined()
    expect(env(controller, 'ARK_KEDA')).toBeUndefined()
    expect(env(runtime, 'ARK_ID')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name')

    const probes = (c: Container, port: string) => {
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port })
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port })
    }
    expect(controller.ports).toEqual([expect.objectContaining({ name: 'metrics', containerPort: 8082 })])
    probes(controller, 'metrics')
    expect(gateway.ports).toEqual([expect.objectContaining({ name: 'http', containerPort: 8080 })])
    probes(gateway, 'http')
    // A draining gateway's /readyz fails for 5 s (ARK_DRAIN_DELAY) before it stops taking connections: the
    // probe must see it within that time (Kubernetes' defaults: every 10 s, 3 failures).
    const readiness = gateway.readinessProbe
    expect((readiness?.periodSeconds ?? 10) * (readiness?.failureThreshold ?? 3)).toBeLessThan(5)
    expect(runtime.ports).toEqual([expect.objectContaining({ name: 'metrics', containerPort: 8081 })])
    probes(runtime, 'metrics')

    expect(controller.resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '256Mi' },
    })
    expect(gateway.resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '512Mi' },
    })
    expect(runtime.resources).toEqual({
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '512Mi' },
    })

    const runtimePod = deployment(objs, 'ark-runtime').spec.template.spec
    expect(runtimePod.terminationGracePeriodSeconds).toBe(30)
    for (const name of ARK) {
      const d = deployment(objs, name)
      expect(d.spec.replicas, name).toBe(2)
      expect(d.spec.template.spec.serviceAccountName).toBe(name)
    }

    const service = find(objs, 'Service', 'ark-gateway') as Obj & {
      spec: { type: string; selector: Record<string, string>; ports: unknown[] }
    }
    expect(service.spec.type).toBe('ClusterIP')
    expect(service.spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }])
    expect(service.spec.selector).toEqual(deployment(objs, 'ark-gateway').spec.selector.matchLabels)
  })

  it('runs every pod non-root, read-only and without capabilities, with the standard labels', async () => {
    for (const args of [VARIATIONS.default ?? [], VARIATIONS.everything ?? []]) {
      const objs = await render(args)
      for (const d of kinds(objs, 'Deployment') as Deployment[]) {
        const pod = d.spec.template.spec
        const name = d.metadata.name
        expect(pod.securityContext, name).toEqual({
          runAsNonRoot: true,
          runAsUser: 1000,
          runAsGroup: 1000,
          fsGroup: 1000,
          seccompProfile: { type: 'RuntimeDefault' },
        })
        // Only ark's components talk to the API server.
        expect(pod.automountServiceAccountToken, name).toBe(name !== 'ark-redis')
        expect(pod.volumes?.find((v) => v.name === 'tmp')?.emptyDir, name).toEqual({})
        for (const c of pod.containers) {
          expect(c.securityContext, name).toEqual({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          })
          expect(c.volumeMounts, name).toContainEqual({ name: 'tmp', mountPath: '/tmp' })
          expect(c.resources?.requests, name).toBeDefined()
          expect(c.resources?.limits?.memory, name).toBeDefined()
        }
        expect(d.spec.template.metadata.labels, name).toMatchObject(d.spec.selector.matchLabels)
        expect(d.spec.template.metadata.labels['app.kubernetes.io/part-of'], name).toBe('ark')
      }
      for (const o of objs) {
        expect(o.metadata.labels, `${o.kind}/${o.metadata.name}`).toMatchObject({
          'app.kubernetes.io/name': 'ark',
          'app.kubernetes.io/instance': 'ark',
          'app.kubernetes.io/version': VERSION,
          'app.kubernetes.io/part-of': 'ark',
          'app.kubernetes.io/managed-by': 'Helm',
          'app.kubernetes.io/component': expect.stringMatching(
            /^(controller|gateway|runtime|redis|data-plane|monitoring)$/,
          ) as unknown,
        })
      }
    }
  })

  it("grants exactly deploy/rbac's rules, to the release namespace's ServiceAccounts", async () => {
    const objs = await render(set('keda.enabled=true'), { namespace: 'ark-ops' })
    const rules = (kind: string, name: string) => find(objs, kind, name).rules
    expect(rules('ClusterRole', 'ark-controller')).toEqual(
      await rbacRules('cluster-role.yaml', 'ClusterRole', 'ark-controller'),
    )
    expect(rules('Role', 'ark-controller-leader-election')).toEqual(
      await rbacRules('leader-election-role.yaml', 'Role', 'ark-controller-leader-election'),
    )
    expect(rules('ClusterRole', 'ark-data-plane')).toEqual(
      await rbacRules('data-plane-cluster-role.yaml', 'ClusterRole', 'ark-data-plane'),
    )
    expect(rules('ClusterRole', 'ark-controller-keda')).toEqual(
      await rbacRules('keda-cluster-role.yaml', 'ClusterRole', 'ark-controller-keda'),
    )
    expect(find(objs, 'Role', 'ark-controller-leader-election').metadata.namespace).toBe('ark-ops')

    const binding = (kind: string, name: string) =>
      find(objs, kind, name) as Obj & { roleRef: { kind: string; name: string }; subjects: unknown[] }
    const subject = (sa: string) => [{ kind: 'ServiceAccount', name: sa, namespace: 'ark-ops' }]
    for (const [kind, name, roleKind, role, sa] of [
      ['ClusterRoleBinding', 'ark-controller', 'ClusterRole', 'ark-controller', 'ark-controller'],
      [
        'RoleBinding',
        'ark-controller-leader-election',
        'Role',
        'ark-controller-leader-election',
        'ark-controller',
      ],
      ['ClusterRoleBinding', 'ark-controller-keda', 'ClusterRole', 'ark-controller-keda', 'ark-controller'],
      ['ClusterRoleBinding', 'ark-gateway', 'ClusterRole', 'ark-data-plane', 'ark-gateway'],
      ['ClusterRoleBinding', 'ark-runtime', 'ClusterRole', 'ark-data-plane', 'ark-runtime'],
    ] as const) {
      expect(binding(kind, name).roleRef, name).toMatchObject({ kind: roleKind, name: role })
      expect(binding(kind, name).subjects, name).toEqual(subject(sa))
    }
    // Without KEDA, no KEDA permissions.
    const plain = await render()
    expect(names(plain, 'ClusterRole')).toEqual(['ark-controller', 'ark-data-plane'])
  })

  it('keeps the Redis password in its Secret: in no Deployment, stable only when given', async () => {
    const objs = await render()
    const secret = find(objs, 'Secret', 'ark-redis') as Obj & { stringData: Record<string, string> }
    const password = secret.stringData.REDIS_PASSWORD ?? ''
    expect(password).toMatch(/^[A-Za-z0-9]{32}$/)
    expect(secret.stringData.REDIS_URL).toBe(`redis://:${password}@ark-redis.${NS}.svc:6379/0`)
    const deployments = stringify(kinds(objs, 'Deployment'))
    expect(deployments).not.toContain(password)
    // The Redis server takes it from the Secret too.
    const redis = container(objs, 'ark-redis')
    expect(redis.args).toEqual([
      '--requirepass',
      '$(REDIS_PASSWORD)',
      '--appendonly',
      'yes',
      '--dir',
      '/data',
    ])
    expect(env(redis, 'REDIS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual({
      name: 'ark-redis',
      key: 'REDIS_PASSWORD',
    })
    expect(redis.image).toBe('redis:7-alpine')
    // `helm template` cannot look up the installed Secret, so each rendering generates anew (the real install
    // below shows an upgrade keeps it); a given password is used as given.
    const again = find(await render(), 'Secret', 'ark-redis') as Obj & { stringData: Record<string, string> }
    expect(again.stringData.REDIS_PASSWORD).not.toBe(password)
    const given = await render(set('redis.password=open-sesame'))
    expect(
      (find(given, 'Secret', 'ark-redis') as Obj & { stringData: Record<string, string> }).stringData
        .REDIS_URL,
    ).toBe(`redis://:open-sesame@ark-redis.${NS}.svc:6379/0`)
    expect(stringify(kinds(given, 'Deployment'))).not.toContain('open-sesame')
  })

  it('uses an external Redis by URL or by the Secret the user made', async () => {
    const byUrl = await render(VARIATIONS['external redis'])
    expect(names(byUrl, 'Deployment')).toEqual(['ark-controller', 'ark-gateway', 'ark-runtime'])
    expect(names(byUrl, 'Service')).toEqual(['ark-gateway'])
    const secret = find(byUrl, 'Secret', 'ark-redis') as Obj & { stringData: Record<string, string> }
    expect(secret.stringData).toEqual({ REDIS_URL: 'rediss://:s3cret@redis.example.com:6380/0' })
    expect(stringify(kinds(byUrl, 'Deployment'))).not.toContain('s3cret')
    expect(names(byUrl, 'NetworkPolicy')).not.toContain('ark-redis')

    const bySecret = await render(VARIATIONS['existing secret'])
    expect(kinds(bySecret, 'Secret')).toEqual([])
    for (const name of ARK)
      expect(env(container(bySecret, name), 'REDIS_URL')?.valueFrom?.secretKeyRef, name).toEqual({
        name: 'my-redis',
        key: 'REDIS_URL',
      })
  })

  it('follows the values: KEDA, namespaces, provider keys, replicas, persistence, scheduling', async () => {
    const objs = await render(VARIATIONS.everything)
    const controller = container(objs, 'ark-controller')
    expect(env(controller, 'ARK_KEDA')?.value).toBe('true')
    expect(env(controller, 'ARK_KEDA_TASKS_PER_WORKER')?.value).toBe('5')
    expect(env(controller, 'ARK_LOG_LEVEL')?.value).toBe('debug')
    // The pools pull with the release's pull Secrets' names (in their own namespaces).
    expect(env(controller, 'ARK_WORKER_PULL_SECRETS')?.value).toBe('registry')
    for (const name of ARK) {
      const c = container(objs, name)
      // The release's namespace joins them: the gateway's API keys Secret (auth.existingSecret) is there.
      expect(env(c, 'ARK_NAMESPACES')?.value, name).toBe(`team-a,team-b,${NS}`)
      expect(c.envFrom, name).toEqual([{ secretRef: { name: 'llm-keys' } }])
      expect(deployment(objs, name).spec.template.spec.imagePullSecrets).toEqual([{ name: 'registry' }])
    }
    expect(deployment(objs, 'ark-controller').spec.replicas).toBe(1)
    expect(deployment(objs, 'ark-gateway').spec.replicas).toBe(3)
    expect(deployment(objs, 'ark-runtime').spec.template.spec.nodeSelector).toEqual({
      pool: 'agents',
    })
    expect((find(objs, 'Service', 'ark-gateway').spec as { type: string }).type).toBe('LoadBalancer')
    // One controller replica: no PodDisruptionBudget (minAvailable 1 would block every drain).
    expect(names(objs, 'PodDisruptionBudget')).toEqual(['ark-gateway', 'ark-runtime'])
    const redisPod = deployment(objs, 'ark-redis').spec.template.spec
    expect(redisPod.volumes?.find((v) => v.name === 'data')?.persistentVolumeClaim).toEqual({
      claimName: 'ark-redis',
    })
    expect(find(objs, 'PersistentVolumeClaim', 'ark-redis').spec).toMatchObject({
      resources: { requests: { storage: '1Gi' } },
    })
    const keda = await render(VARIATIONS.keda)
    expect(env(container(keda, 'ark-controller'), 'ARK_KEDA_TASKS_PER_WORKER')?.value).toBe('10')
    // Pools scaled from zero start on a backlog: gateways queue for them then, and only then.
    expect(env(container(keda, 'ark-gateway'), 'ARK_WAIT_FOR_WORKERS')?.value).toBe('true')
    const plain = await render(VARIATIONS.default ?? [])
    expect(env(container(plain, 'ark-gateway'), 'ARK_WAIT_FOR_WORKERS')).toBeUndefined()
  })

  it('picks the PodDisruptionBudget API by Kubernetes version', async () => {
    for (const [kubeVersion, api] of [
      ['1.20.2', 'policy/v1beta1'],
      ['1.21.0', 'policy/v1'],
      ['1.30.0', 'policy/v1'],
    ] as const) {
      const objs = await render([], { kubeVersion })
      const pdbs = kinds(objs, 'PodDisruptionBudget')
      expect(pdbs.map((p) => p.metadata.name).sort()).toEqual([...ARK])
      for (const p of pdbs) {
        expect(p.apiVersion, kubeVersion).toBe(api)
        expect(p.spec).toEqual({
          minAvailable: 1,
          selector: { matchLabels: deployment(objs, p.metadata.name).spec.selector.matchLabels },
        })
      }
    }
  })

  it('admits traffic only where a component serves, and Redis only from ark pods of any namespace', async () => {
    const objs = await render()
    interface Policy extends Obj {
      spec: {
        podSelector: { matchLabels: Record<string, string> }
        policyTypes: string[]
        ingress: { ports: { port: number }[]; from?: unknown[] }[]
      }
    }
    const policy = (name: string) => (find(objs, 'NetworkPolicy', name) as Policy).spec
    expect(names(objs, 'NetworkPolicy')).toEqual([
      'ark-controller',
      'ark-gateway',
      'ark-redis',
      'ark-runtime',
    ])
    for (const name of ['ark-controller', 'ark-gateway', 'ark-redis', 'ark-runtime']) {
      // Egress stays open: model providers, MCP servers and A2A agents are outside.
      expect(policy(name).policyTypes, name).toEqual(['Ingress'])
      expect(policy(name).podSelector.matchLabels, name).toEqual(
        deployment(objs, name).spec.selector.matchLabels,
      )
    }
    expect(policy('ark-gateway').ingress).toEqual([{ ports: [{ port: 8080, protocol: 'TCP' }] }])
    expect(policy('ark-controller').ingress).toEqual([
      { ports: [{ port: 8082, protocol: 'TCP' }], from: [{ namespaceSelector: {} }] },
    ])
    expect(policy('ark-runtime').ingress).toEqual([
      { ports: [{ port: 8081, protocol: 'TCP' }], from: [{ namespaceSelector: {} }] },
    ])
    expect(policy('ark-redis').ingress).toEqual([
      {
        ports: [{ port: 6379, protocol: 'TCP' }],
        from: [
          { namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'ark' } } },
        ],
      },
    ])
    // With KEDA, its operator reads the pools' stream lengths from its own namespace.
    const keda = find(await render(VARIATIONS.keda), 'NetworkPolicy', 'ark-redis') as Policy
    expect(keda.spec.ingress[0]?.from).toEqual([
      { namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'ark' } } },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'keda' } } },
    ])
    const narrowed = find(await render(VARIATIONS.everything), 'NetworkPolicy', 'ark-gateway') as Policy
    expect(narrowed.spec.ingress[0]?.from).toEqual([
      { namespaceSelector: { matchLabels: { edge: 'gateway' } } },
    ])
    expect(kinds(await render(VARIATIONS['no network policies']), 'NetworkPolicy')).toEqual([])
  })

  it('asks for API keys at the gateway when auth.existingSecret names their Secret, and watches its namespace', async () => {
    const open = await render()
    expect(env(container(open, 'ark-gateway'), 'ARK_API_KEYS_SECRET')).toBeUndefined()
    const keyed = await render(
      set('auth.existingSecret=ark-api-keys', 'auth.metrics=true', 'controller.namespaces={team-a}'),
    )
    const gateway = container(keyed, 'ark-gateway')
    expect(env(gateway, 'ARK_API_KEYS_SECRET')?.value).toBe(`${NS}/ark-api-keys`)
    expect(env(gateway, 'ARK_METRICS_AUTH')?.value).toBe('true')
    // The gateway refuses a keys Secret outside the namespaces it reads: the release's is added to them.
    expect(env(gateway, 'ARK_NAMESPACES')?.value).toBe(`team-a,${NS}`)
    expect(env(container(keyed, 'ark-runtime'), 'ARK_API_KEYS_SECRET')).toBeUndefined()
    // JWTs from an identity provider, with or without keys.
    const tokens = container(
      await render(
        set(
          'auth.jwt.issuer=https://idp.example.com',
          'auth.jwt.audience=ark',
          'auth.jwt.jwksUrl=https://idp.example.com/jwks',
        ),
      ),
      'ark-gateway',
    )
    expect(env(tokens, 'ARK_JWT_ISSUER')?.value).toBe('https://idp.example.com')
    expect(env(tokens, 'ARK_JWT_AUDIENCE')?.value).toBe('ark')
    expect(env(tokens, 'ARK_JWKS_URL')?.value).toBe('https://idp.example.com/jwks')
    expect(env(container(open, 'ark-gateway'), 'ARK_JWT_ISSUER')).toBeUndefined()
  })

  it("monitors the components and every pool's workers with the Prometheus Operator when asked", async () => {
    const objs = await render(VARIATIONS.monitoring)
    const monitor = find(objs, 'ServiceMonitor', 'ark') as Obj & {
      spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] }
    }
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1')
    expect(monitor.metadata.labels?.release).toBe('prom')
    expect(monitor.spec.endpoints.map((e) => `${e.port} ${e.path}`)).toEqual([
      'http /metrics',
      'metrics /metrics',
    ])
    // Every endpoint port is a port of a Service the monitor selects, and each such Service's port targets the
    // container's metrics (or, for the gateway, http) port.
    const selected = kinds(objs, 'Service').filter((s) =>
      Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v),
    )
    expect(selected.map((s) => s.metadata.name).sort()).toEqual([
      'ark-controller-metrics',
      'ark-gateway',
      'ark-redis',
      'ark-runtime-metrics',
    ])
    // (ark-redis is selected by labels but excluded by the monitor's component expression.)
    expect(monitor.spec).toMatchObject({
      selector: {
        matchExpressions: [
          {
            key: 'app.kubernetes.io/component',
            operator: 'In',
            values: ['controller', 'gateway', 'runtime'],
          },
        ],
      },
    })
    const pods = find(objs, 'PodMonitor', 'ark-pools') as Obj & { spec: Record<string, unknown> }
    expect(pods.spec).toEqual({
      namespaceSelector: { any: true },
      selector: {
        matchLabels: {
          'app.kubernetes.io/managed-by': 'ark-controller',
          'app.kubernetes.io/component': 'worker',
        },
      },
      podMetricsEndpoints: [{ port: 'metrics', path: '/metrics', interval: '30s' }],
    })
  })

  it("ships deploy/'s alerting rules as a PrometheusRule and its Grafana dashboard as a sidecar's ConfigMap", async () => {
    // The chart's copies are deploy/'s files as they are (a chart cannot read outside itself).
    for (const [copy, original] of [
      ['files/ark-alerts.yaml', 'deploy/prometheus/ark-alerts.yaml'],
      ['files/ark-dashboard.json', 'deploy/grafana/ark-dashboard.json'],
    ] as const) {
      expect(
        await readFile(join(CHART, copy), 'utf8'),
        `${copy}: cp ${original} deploy/helm/ark/${copy}`,
      ).toBe(await readFile(join(ROOT, original), 'utf8'))
    }
    const objs = await render(VARIATIONS.monitoring)
    const rule = find(objs, 'PrometheusRule', 'ark') as Obj & { spec: unknown }
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1')
    expect(rule.metadata.labels?.release).toBe('prom')
    // The rules arrive whole, their {{ $labels.x }} annotations untouched by Helm's templating.
    expect(rule.spec).toEqual(parse(await readFile(join(ROOT, 'deploy/prometheus/ark-alerts.yaml'), 'utf8')))
    expect(JSON.stringify(rule.spec)).toContain('{{ $labels.agent }}')
    const dashboard = find(objs, 'ConfigMap', 'ark-grafana-dashboard') as Obj & {
      data: Record<string, string>
    }
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1')
    expect(JSON.parse(dashboard.data['ark-dashboard.json'] ?? '')).toEqual(
      JSON.parse(await readFile(join(ROOT, 'deploy/grafana/ark-dashboard.json'), 'utf8')),
    )
    // Off by default.
    const plain = await render([])
    expect([
      ...kinds(plain, 'PrometheusRule'),
      ...kinds(plain, 'ConfigMap').filter((c) => c.metadata.name === 'ark-grafana-dashboard'),
    ]).toEqual([])
  })

  it('refuses values that make no sense, naming the value', async () => {
    const cases: [readonly string[], RegExp][] = [
      [set('gateway.replicas=-1'), /\/gateway\/replicas.*minimum/],
      [set('image.pullPolicy=Sometimes'), /\/image\/pullPolicy.*one of/],
      [set('redis.enabled=false'), /\/redis\/url[\s\S]*\/redis\/existingSecret/],
      [set('redis.url=redis://x:6379'), /redis\.enabled=false/],
      [set('gatway.replicas=1'), /additional properties 'gatway' not allowed/],
      [set('controller.replica=1'), /\/controller.*additional properties 'replica'/],
      [set('redis.password=p@ss'), /\/redis\/password/],
      [set('keda.tasksPerWorker=0'), /\/keda\/tasksPerWorker/],
      [set('controller.namespaces={Team_A}'), /\/controller\/namespaces\/0/],
      [set('auth.jwt.issuer=https://idp'), /auth\.jwt\.audience: set it with auth\.jwt\.issuer/],
      [set('auth.jwt.jwksUrl=http://idp/jwks'), /\/auth\/jwt\/jwksUrl/],
    ]
    for (const [args, message] of cases) expect(await refusal(args), args.join(' ')).toMatch(message)
  })
})

describe('the kustomize base and overlays (deploy/kustomize)', () => {
  const overlay = (name: string) => kustomize(join(KUSTOMIZE, 'overlays', name))

  it('builds the base: the same components as the chart, in ark-system, reading a Secret it does not make', async () => {
    const base = await kustomize(join(KUSTOMIZE, 'base'))
    const chart = await render()
    expect(names(base, 'Deployment')).toEqual([...ARK])
    expect(kinds(base, 'Secret')).toEqual([])
    expect(names(base, 'CustomResourceDefinition')).toHaveLength(
      (await readdir(join(ROOT, 'deploy/crds'))).length - 1,
    )
    expect(names(base, 'ClusterRole')).toEqual(['ark-controller', 'ark-data-plane'])
    expect(names(base, 'ServiceAccount')).toEqual([...ARK])
    for (const o of base) {
      const clusterScoped = ['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding']
      if (!clusterScoped.includes(o.kind))
        expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(NS)
    }
    // The containers are the chart's, field for field.
    for (const name of ARK) {
      const b = container(base, name)
      const h = container(chart, name)
      expect(b, name).toEqual(h)
      const pod = (objs: Obj[]) => {
        const {
          serviceAccountName,
          automountServiceAccountToken,
          securityContext,
          volumes,
          terminationGracePeriodSeconds,
        } = deployment(objs, name).spec.template.spec
        return {
          serviceAccountName,
          automountServiceAccountToken,
          securityContext,
          volumes,
          terminationGracePeriodSeconds,
        }
      }
      expect(pod(base), name).toEqual(pod(chart))
      expect(deployment(base, name).spec.template.metadata.labels['app.kubernetes.io/part-of']).toBe('ark')
    }
    expect(find(base, 'Service', 'ark-gateway').spec).toEqual(find(chart, 'Service', 'ark-gateway').spec)
    // The data plane's bindings, and the PodDisruptionBudgets of a current cluster.
    for (const sa of ['ark-gateway', 'ark-runtime'])
      expect(find(base, 'ClusterRoleBinding', sa)).toMatchObject({
        roleRef: { kind: 'ClusterRole', name: 'ark-data-plane' },
        subjects: [{ kind: 'ServiceAccount', name: sa, namespace: NS }],
      })
    expect(kinds(base, 'PodDisruptionBudget').map((p) => p.apiVersion)).toEqual([
      'policy/v1',
      'policy/v1',
      'policy/v1',
    ])
    expect(names(base, 'NetworkPolicy')).toEqual(['ark-controller', 'ark-gateway', 'ark-runtime'])
  })

  it('dev: one replica each, its own Redis and Secret, no PodDisruptionBudgets', async () => {
    const dev = await overlay('dev')
    expect(names(dev, 'Deployment')).toEqual([...ARK, 'ark-redis'].sort())
    for (const d of kinds(dev, 'Deployment') as Deployment[]) expect(d.spec.replicas, d.metadata.name).toBe(1)
    expect(kinds(dev, 'PodDisruptionBudget')).toEqual([])
    const secret = find(dev, 'Secret', 'ark-redis') as Obj & { data: Record<string, string> }
    expect(secret.metadata.namespace).toBe(NS)
    const url = Buffer.from(secret.data.REDIS_URL ?? '', 'base64').toString()
    const password = Buffer.from(secret.data.REDIS_PASSWORD ?? '', 'base64').toString()
    expect(url).toBe(`redis://:${password}@ark-redis.${NS}.svc:6379/0`)
    expect(stringify(kinds(dev, 'Deployment'))).not.toContain(password)
    // Redis as the chart runs it, and reachable by ark's pods only.
    expect(container(dev, 'ark-redis').args).toEqual(container(await render(), 'ark-redis').args)
    expect(find(dev, 'NetworkPolicy', 'ark-redis').spec).toEqual(
      find(await render(), 'NetworkPolicy', 'ark-redis').spec,
    )
    expect(deployment(dev, 'ark-redis').spec.template.metadata.labels['app.kubernetes.io/part-of']).toBe(
      'ark',
    )
  })

  it('production: more replicas spread over nodes, and the Secret left to the operator', async () => {
    const prod = await overlay('production')
    const replicas = (name: string) => deployment(prod, name).spec.replicas
    expect([replicas('ark-controller'), replicas('ark-gateway'), replicas('ark-runtime')]).toEqual([2, 3, 3])
    expect(kinds(prod, 'Secret')).toEqual([])
    expect(names(prod, 'PodDisruptionBudget')).toEqual([...ARK])
    for (const name of ARK) {
      const spec = deployment(prod, name).spec.template.spec as PodSpec & {
        topologySpreadConstraints?: { topologyKey: string }[]
      }
      expect(
        spec.topologySpreadConstraints?.map((t) => t.topologyKey),
        name,
      ).toContain('kubernetes.io/hostname')
    }
  })

  it("keda: ARK_KEDA on the controller and deploy/rbac's KEDA rules", async () => {
    const keda = await overlay('keda')
    const controller = container(keda, 'ark-controller')
    expect(env(controller, 'ARK_KEDA')?.value).toBe('true')
    expect(env(controller, 'ARK_KEDA_TASKS_PER_WORKER')?.value).toBe('5')
    expect(env(controller, 'ARK_WORKER_IMAGE')?.value).toBe(IMAGE)
    expect(find(keda, 'ClusterRole', 'ark-controller-keda').rules).toEqual(
      await rbacRules('keda-cluster-role.yaml', 'ClusterRole', 'ark-controller-keda'),
    )
    const rbac = parseDocs(await readFile(join(RBAC, 'keda-cluster-role.yaml'), 'utf8'))
    expect(find(keda, 'ClusterRoleBinding', 'ark-controller-keda')).toMatchObject({
      roleRef: find(rbac, 'ClusterRoleBinding', 'ark-controller-keda').roleRef as object,
      subjects: find(rbac, 'ClusterRoleBinding', 'ark-controller-keda').subjects as object,
    })
    // Built on production.
    expect(deployment(keda, 'ark-gateway').spec.replicas).toBe(3)
    expect(env(container(await overlay('production'), 'ark-controller'), 'ARK_KEDA')).toBeUndefined()
  })

  it("runs the controller's image in the pools after a user's retag (ARK_WORKER_IMAGE follows images:)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ark-kustomize-'))
    try {
      await writeFile(
        join(dir, 'kustomization.yaml'),
        stringify({
          resources: [relative(dir, join(KUSTOMIZE, 'overlays/production'))],
          images: [{ name: 'ghcr.io/ark-runtime/ark', newName: 'registry.example.com/ark', newTag: '9.9.9' }],
        }),
      )
      const objs = await kustomize(dir)
      for (const name of ARK) expect(container(objs, name).image).toBe('registry.example.com/ark:9.9.9')
      const controller = container(objs, 'ark-controller')
      expect(env(controller, 'ARK_WORKER_IMAGE')?.value).toBe('registry.example.com/ark:9.9.9')
      // Other values are left alone.
      expect(env(controller, 'ARK_WORKER_PULL_POLICY')?.value).toBe('IfNotPresent')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('on a real API server (kube-apiserver 1.20.2)', () => {
  let kube: KubeServer

  beforeAll(async () => {
    kube = await startKube()
    // Stand-ins for KEDA's and the Prometheus Operator's CRDs, which this server lacks.
    await kube.kubectl(['apply', '-f', join(ROOT, 'test/fixtures/crds')])
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all'])
    await kube.kubectl(['create', 'namespace', NS])
  }, 120_000)

  afterAll(async () => {
    await kube.stop()
  })

  /** Server-side apply, dry run: the API server validates and admits every object, and stores none. */
  async function dryRun(yaml: string): Promise<string[]> {
    const out = await kube.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: yaml })
    return out.split('\n').filter((l) => l.trim() !== '')
  }

  it('accepts the chart as helm renders it for 1.20, CRDs included, with every variation of the values', async () => {
    const renders = await Promise.all(
      Object.values(VARIATIONS).map((args) => renderText(args, { kubeVersion: '1.20.2', includeCrds: true })),
    )
    for (const [i, text] of renders.entries()) {
      const name = Object.keys(VARIATIONS)[i] ?? ''
      const lines = await dryRun(text)
      expect(lines.length, name).toBe(parseDocs(text).length)
      expect(
        lines.every((l) => l.endsWith('serverside-applied (server dry run)')),
        `${name}: ${lines.join('\n')}`,
      ).toBe(true)
    }
  }, 60_000)

  it('accepts every kustomize overlay (its policy/v1 PodDisruptionBudgets as policy/v1beta1, absent in 1.20)', async () => {
    for (const name of ['dev', 'production', 'keda']) {
      const objs = (await kustomize(join(KUSTOMIZE, 'overlays', name))).map((o) =>
        // Same fields in both versions for what the overlays use (minAvailable, selector).
        o.kind === 'PodDisruptionBudget' ? { ...o, apiVersion: 'policy/v1beta1' } : o,
      )
      // YAML 1.1, as the API server's decoder reads it: `yes` stays a string (quoted), as kustomize writes it.
      const lines = await dryRun(objs.map((o) => stringify(o, { version: '1.1' })).join('---\n'))
      expect(lines.length, name).toBe(objs.length)
      expect(
        lines.every((l) => l.endsWith('(server dry run)')),
        `${name}: ${lines.join('\n')}`,
      ).toBe(true)
    }
  }, 60_000)

  it('installs with helm install; each ServiceAccount may do what deploy/rbac says and no more', async () => {
    const helmArgs = (command: string, ...args: string[]) => [
      command,
      'ark',
      CHART,
      '--namespace',
      NS,
      '--kubeconfig',
      kube.kubeconfig,
      ...args,
    ]
    const { stdout: notes } = await run(helm, helmArgs('install'))
    // NOTES.txt tells how to reach the gateway.
    expect(notes).toContain(`kubectl -n ${NS} port-forward svc/ark-gateway 8080:80`)
    expect(notes).toContain('http://localhost:8080/v1')
    const deployments = JSON.parse(await kube.kubectl(['get', 'deployments', '-n', NS, '-o', 'json'])) as {
      items: Obj[]
    }
    expect(deployments.items.map((d) => d.metadata.name).sort()).toEqual([...ARK, 'ark-redis'].sort())
    const pdb = await kube.kubectl(['get', 'poddisruptionbudgets', '-n', NS, '-o', 'name'])
    expect(pdb.trim().split('\n').sort()).toEqual(ARK.map((n) => `poddisruptionbudget.policy/${n}`))
    // The CRDs came with the chart.
    await kube.kubectl([
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      'crd/agents.ark.mckinsey.com',
    ])

    /** `kubectl auth can-i` as one of the release's ServiceAccounts: yes (exit 0) or no (exit 1, "no"). */
    const can = async (sa: string, ...args: string[]): Promise<string> => {
      const command = [
        '--kubeconfig',
        kube.kubeconfig,
        'auth',
        'can-i',
        `--as=system:serviceaccount:${NS}:${sa}`,
      ]
      try {
        return (await run(kubectl, [...command, ...args])).stdout.trim()
      } catch (err) {
        const { code, stdout } = err as { code?: number; stdout?: string }
        if (code === 1 && stdout?.trim() === 'no') return 'no'
        throw err
      }
    }
    expect(await can('ark-gateway', 'list', 'agents.ark.mckinsey.com', '-A')).toBe('yes')
    expect(await can('ark-gateway', 'watch', 'arkagents.arkonis.dev', '-n', 'default')).toBe('yes')
    expect(
      await can('ark-gateway', 'patch', 'agents.ark.mckinsey.com', '--subresource=status', '-n', 'default'),
    ).toBe('no')
    // Not `get`: the catalog lists and watches. `list` reads the same values (the data plane resolves Models'
    // keys from them), which is why it runs on a read-only token of its own; README says so.
    expect(await can('ark-gateway', 'get', 'secrets', '-n', NS)).toBe('no')
    expect(await can('ark-gateway', 'list', 'secrets', '-n', NS)).toBe('yes')
    expect(await can('ark-gateway', 'list', 'queries.ark.mckinsey.com', '-A')).toBe('no')
    expect(await can('ark-runtime', 'list', 'secrets', '-n', 'default')).toBe('yes')
    expect(await can('ark-runtime', 'create', 'events', '-n', 'default')).toBe('no')
    expect(
      await can('ark-controller', 'patch', 'agents.ark.mckinsey.com', '--subresource=status', '-n', 'x'),
    ).toBe('yes')
    expect(await can('ark-controller', 'update', 'leases.coordination.k8s.io/ark-controller', '-n', NS)).toBe(
      'yes',
    )
    expect(
      await can('ark-controller', 'update', 'leases.coordination.k8s.io/ark-controller', '-n', 'default'),
    ).toBe('no')
    expect(await can('ark-controller', 'create', 'scaledobjects.keda.sh', '-n', 'default')).toBe('no')

    // An upgrade keeps the generated Redis password (the Secret is looked up), so data and pods stay valid.
    const password = async () =>
      (
        JSON.parse(await kube.kubectl(['get', 'secret', 'ark-redis', '-n', NS, '-o', 'json'])) as {
          data: Record<string, string>
        }
      ).data.REDIS_PASSWORD
    const before = await password()
    expect(before).toBeDefined()
    await run(helm, helmArgs('upgrade', '--set', 'keda.enabled=true'))
    expect(await password()).toBe(before)
    expect(await can('ark-controller', 'create', 'scaledobjects.keda.sh', '-n', 'default')).toBe('yes')
  }, 60_000)
})
