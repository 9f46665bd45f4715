/**
 * The controller's least-privilege RBAC (deploy/rbac) against a real kube-apiserver with RBAC on: the
 * ServiceAccount's bound token (TokenRequest, as a projected token in a pod) may do exactly what the
 * ClusterRole and the leader-election Role say and nothing else, and the real `ark controller` runs with only
 * that token: availability, Query execution, Events, finalizers, TTL deletion and leader election, with no
 * request refused. A copy of the role with one rule removed shows the controller then fails, so a rule the
 * code needs and the YAML lacks is caught here.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as k8s from '@kubernetes/client-node'
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest'
import { parse, parseAllDocuments, stringify } from 'yaml'
import { KIND_DEFS } from '../controller/api/index.ts'
import type { ArkProcess, LogLine } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { KubeServer } from './kube.ts'
import { startKube } from './kube.ts'
import { SUPPORT_AGENT_ON_MOCK } from './seed-000.ts'
import { startRemoteA2A } from './fakes/a2a-remote.ts'

const SYSTEM = 'ark-system'
const SA = 'ark-controller'
const RBAC = join(import.meta.dirname, '../deploy/rbac')

let kube: KubeServer
/** A kubeconfig holding only the ark-controller ServiceAccount's token (no admin token, no client cert). */
let controllerKubeconfig: string
const processes: ArkProcess[] = []

beforeAll(async () => {
  kube = await startKube()
  await kube.installCrds()
  await kube.kubectl(['create', 'namespace', SYSTEM])
  await kube.kubectl(['apply', '-k', RBAC])
  controllerKubeconfig = await tokenKubeconfig(SA)
}, 120_000)

afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop()))
})

afterAll(async () => {
  await kube.stop()
})

/**
 * Mints a bound token for a ServiceAccount of ark-system (the TokenRequest API, which a pod's projected token
 * comes from) and writes a kubeconfig with that token only: same server and CA as the admin kubeconfig.
 */
async function tokenKubeconfig(serviceAccount: string): Promise<string> {
  const token = (
    await kube.kubectl(['create', 'token', serviceAccount, '-n', SYSTEM, '--duration', '1h'])
  ).trim()
  const cluster = kube.config().getCurrentCluster()
  if (cluster?.caData === undefined) throw new Error('the admin kubeconfig has no CA data')
  const kc = new k8s.KubeConfig()
  kc.loadFromOptions({
    clusters: [{ name: 'kube', server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
    users: [{ name: serviceAccount, token }],
    contexts: [{ name: serviceAccount, cluster: 'kube', user: serviceAccount, namespace: SYSTEM }],
    currentContext: serviceAccount,
  })
  const file = join(mkdtempSync(join(kube.dir, 'sa-')), 'kubeconfig')
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 })
  return file
}

/**
 * `kubectl auth can-i` as the kubeconfig's user: exit 0 is yes; exit 1 with nothing but warnings on stderr
 * (kubectl warns that a cluster-scoped resource ignores the context's namespace) is no.
 */
async function can(kubeconfig: string, args: readonly string[]): Promise<boolean> {
  const command = ['auth', 'can-i', ...args]
  try {
    await kube.kubectl(command, { kubeconfig })
    return true
  } catch (err) {
    // kube.kubectl puts stderr in the message, else execFile's "Command failed: <command line>". A failure
    // to ask (unreachable, unauthorized, a bad flag) writes an error there.
    const rest = (err as Error).message.slice(`kubectl ${command.join(' ')}: `.length).trim()
    const stderr = rest.startsWith('Command failed:') ? rest.split('\n').slice(1) : rest.split('\n')
    if (stderr.some((l) => l.trim() !== '' && !l.startsWith('Warning:'))) throw err
    return false
  }
}

/** Every (verb, resource, name) the kubeconfig's user may use in a namespace, as SelfSubjectRulesReview says. */
async function effectiveRules(kubeconfig: string, namespace: string): Promise<string[]> {
  const kc = new k8s.KubeConfig()
  kc.loadFromFile(kubeconfig)
  const review = await kc
    .makeApiClient(k8s.AuthorizationV1Api)
    .createSelfSubjectRulesReview({ body: { spec: { namespace } } })
  expect(review.status?.incomplete).toBe(false)
  const out = new Set<string>()
  for (const rule of review.status?.resourceRules ?? []) {
    for (const group of rule.apiGroups ?? [''])
      for (const resource of rule.resources ?? [])
        for (const verb of rule.verbs)
          for (const name of rule.resourceNames ?? [''])
            out.add(`${verb} ${qualified(resource, group)}${name === '' ? '' : `/${name}`}`)
  }
  // system:basic-user lets every authenticated user ask what it may do.
  for (const r of [...out])
    if (/^create selfsubject\w+reviews\.authorization\.k8s\.io$/.test(r)) out.delete(r)
  return [...out].sort()
}

const qualified = (resource: string, group: string) => {
  const [plural, sub] = resource.split('/')
  return `${plural ?? ''}${group === '' ? '' : `.${group}`}${sub === undefined ? '' : `/${sub}`}`
}

/**
 * What the controller does, derived from the code's own list of kinds so that a kind added to
 * controller/api/kinds.ts without a rule fails here: every kind is listed and watched; every ark kind gets its
 * status patched (conditions; Valid on a rejected object) and `get` for the re-read after a 409; Queries also get their finalizer
 * patched and are deleted after their ttl; Agents are applied (A2A discovery); Events are created and patched.
 */
function expectedRules(namespace: string): string[] {
  const rules: string[] = []
  for (const def of KIND_DEFS) {
    const r = qualified(def.plural, def.group)
    rules.push(`list ${r}`, `watch ${r}`)
    if (def.crd) rules.push(`get ${r}`, `patch ${r}/status`)
  }
  rules.push('patch queries.ark.mckinsey.com', 'delete queries.ark.mckinsey.com')
  // A2A discovery applies the Agent an A2AServer describes.
  rules.push('create agents.ark.mckinsey.com', 'patch agents.ark.mckinsey.com')
  rules.push('create events', 'patch events')
  // Pools (controller/reconcile/pools.ts): a Deployment per ArkAgent, and by name the three objects its pods
  // need in their namespace.
  for (const verb of ['get', 'list', 'watch', 'create', 'patch', 'delete'])
    rules.push(`${verb} deployments.apps`)
  for (const named of [
    'serviceaccounts/ark-worker',
    'secrets/ark-worker-redis',
    'rolebindings.rbac.authorization.k8s.io/ark-worker',
  ])
    rules.push(`create ${named}`, `patch ${named}`)
  if (namespace === SYSTEM)
    rules.push(
      'create leases.coordination.k8s.io',
      'get leases.coordination.k8s.io/ark-controller',
      'update leases.coordination.k8s.io/ark-controller',
    )
  return rules.sort()
}

const MANIFESTS = SUPPORT_AGENT_ON_MOCK

const query = (name: string, ttl = '720h0m0s') => `apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: ${name} }
spec:
  input: How do I reset my password?
  targets: [{ name: support-agent, type: agent }]
  timeout: 5m0s
  ttl: ${ttl}
  type: user
`

const apply = (ns: string, yaml: string) => kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: yaml })

interface Condition {
  type: string
  status: string
  reason: string
}
interface Obj {
  metadata: { name: string; finalizers?: string[]; annotations?: Record<string, string> }
  status?: { phase?: string; conditions?: Condition[]; responses?: { content: string }[] }
}

async function get(kind: string, ns: string, name: string): Promise<Obj | undefined> {
  const text = await kube.kubectl(['get', kind, name, '-n', ns, '-o', 'json', '--ignore-not-found'])
  return text.trim() === '' ? undefined : (JSON.parse(text) as Obj)
}

/** Waits until condition `type` of an object has `status`, and returns it. */
async function condition(
  kind: string,
  ns: string,
  name: string,
  type: string,
  status = 'True',
): Promise<Condition> {
  let found: Condition | undefined
  await vi.waitFor(
    async () => {
      found = (await get(kind, ns, name))?.status?.conditions?.find((c) => c.type === type)
      expect(found?.status).toBe(status)
    },
    { timeout: 20_000, interval: 200 },
  )
  return found as Condition
}

async function gone(kind: string, ns: string, name: string): Promise<void> {
  await vi.waitFor(async () => expect(await get(kind, ns, name)).toBeUndefined(), {
    timeout: 20_000,
    interval: 200,
  })
}

/** The controller as a Deployment would run it (all namespaces), but with the given credentials only. */
async function controller(kubeconfig: string): Promise<ArkProcess> {
  const p = await startArk(
    [
      'controller',
      '--kubeconfig',
      kubeconfig,
      '--port',
      '0',
      '--probe-interval',
      '0',
      '--lease-namespace',
      SYSTEM,
      '--lease-duration',
      '3',
      '--renew-deadline',
      '2',
      '--retry-period',
      '1',
    ],
    // Debug: the Event recorder reports a refused write at that level.
    { ready: 'leading', env: { ARK_LOG_LEVEL: 'debug' } },
  )
  processes.push(p)
  return p
}

/** Log lines that tell of a refused request: a 403 status or a "forbidden" message. */
const refusals = (lines: readonly LogLine[]) =>
  lines.filter((l) => /\b403\b|forbidden/i.test(JSON.stringify(l)))

describe('deploy/rbac', () => {
  it('grants the ServiceAccount exactly the verbs the controller uses, in every namespace and for its Lease', async () => {
    const ns = await kube.namespace('rbac')
    expect(await effectiveRules(controllerKubeconfig, ns)).toEqual(expectedRules(ns))
    expect(await effectiveRules(controllerKubeconfig, SYSTEM)).toEqual(expectedRules(SYSTEM))
    // The kubeconfig carries the ServiceAccount's token and nothing of the admin's.
    const kc = new k8s.KubeConfig()
    kc.loadFromFile(controllerKubeconfig)
    expect(kc.getCurrentUser()).toMatchObject({ name: SA })
    expect(kc.getCurrentUser()?.token).not.toBe(kube.token)
    expect(kc.getCurrentUser()?.certData).toBeUndefined()
  })

  it('answers kubectl auth can-i: yes to what the controller does, no to everything else', async () => {
    const ns = await kube.namespace('rbac')
    const yes = [
      ['list', 'agents.ark.mckinsey.com', '--all-namespaces'],
      ['watch', 'arkagents.arkonis.dev', '--all-namespaces'],
      ['watch', 'evaluations.ark.mckinsey.com', '--all-namespaces'],
      ['list', 'secrets', '--all-namespaces'],
      ['watch', 'configmaps', '--all-namespaces'],
      ['get', 'models.ark.mckinsey.com/default', '-n', ns],
      ['patch', 'agents.ark.mckinsey.com', '--subresource=status', '-n', ns],
      ['patch', 'arkteams.arkonis.dev', '--subresource=status', '-n', ns],
      ['patch', 'queries.ark.mckinsey.com', '--subresource=status', '-n', ns],
      ['patch', 'queries.ark.mckinsey.com', '-n', ns],
      ['patch', 'agents.ark.mckinsey.com', '-n', ns],
      ['delete', 'queries.ark.mckinsey.com', '-n', ns],
      ['create', 'events', '-n', ns],
      ['patch', 'events', '-n', ns],
      ['create', 'leases.coordination.k8s.io', '-n', SYSTEM],
      ['get', 'leases.coordination.k8s.io/ark-controller', '-n', SYSTEM],
      ['update', 'leases.coordination.k8s.io/ark-controller', '-n', SYSTEM],
      // Pools: their Deployments, and the per-namespace objects their pods use, by name.
      ['create', 'deployments.apps', '-n', ns],
      ['patch', 'deployments.apps', '-n', ns],
      ['list', 'deployments.apps', '--all-namespaces'],
      ['patch', 'serviceaccounts/ark-worker', '-n', ns],
      ['patch', 'secrets/ark-worker-redis', '-n', ns],
      ['patch', 'rolebindings.rbac.authorization.k8s.io/ark-worker', '-n', ns],
    ]
    const no = [
      // Workloads and the things that run code: nothing.
      ['create', 'pods', '-n', ns],
      ['create', 'pods', '--subresource=exec', '-n', ns],
      ['list', 'pods', '-n', ns],
      ['update', 'deployments.apps', '-n', ns],
      ['patch', 'deployments.apps', '--subresource=scale', '-n', ns],
      ['create', 'statefulsets.apps', '-n', ns],
      ['create', 'daemonsets.apps', '-n', ns],
      ['create', 'jobs.batch', '-n', ns],
      // Secrets: listed and watched by design (values stay in memory), never read one by one, and written only
      // as the pools' Redis Secret, by name.
      ['get', 'secrets', '-n', ns],
      ['get', 'secrets/ark-worker-redis', '-n', ns],
      // A POST names nothing in its URL: RBAC cannot let a create by name through, so none is allowed.
      ['create', 'secrets', '-n', ns],
      ['create', 'rolebindings', '-n', SYSTEM],
      ['update', 'secrets', '-n', ns],
      ['patch', 'secrets', '-n', ns],
      ['patch', 'secrets/ark-redis', '-n', ns],
      ['delete', 'secrets', '-n', ns],
      ['patch', 'serviceaccounts/default', '-n', ns],
      ['patch', 'rolebindings.rbac.authorization.k8s.io/admin', '-n', ns],
      ['create', 'configmaps', '-n', ns],
      // ark resources: status, and the spec of the Agents A2AServers describe (by apply); only Queries are
      // deleted, none are created otherwise.
      ['delete', 'agents.ark.mckinsey.com', '-n', ns],
      ['update', 'agents.ark.mckinsey.com', '-n', ns],
      ['create', 'models.ark.mckinsey.com', '-n', ns],
      ['patch', 'models.ark.mckinsey.com', '-n', ns],
      ['update', 'agents.ark.mckinsey.com', '--subresource=status', '-n', ns],
      ['get', 'agents.ark.mckinsey.com', '--subresource=status', '-n', ns],
      ['create', 'queries.ark.mckinsey.com', '-n', ns],
      ['update', 'queries.ark.mckinsey.com', '-n', ns],
      ['delete', 'arkagents.arkonis.dev', '-n', ns],
      ['patch', 'arkagents.arkonis.dev', '--subresource=scale', '-n', ns],
      ['delete', 'events', '-n', ns],
      ['create', 'events.events.k8s.io', '-n', ns],
      // Leases: only its own, only in its own namespace.
      ['get', 'leases.coordination.k8s.io/kube-scheduler', '-n', SYSTEM],
      ['update', 'leases.coordination.k8s.io/kube-scheduler', '-n', SYSTEM],
      ['delete', 'leases.coordination.k8s.io/ark-controller', '-n', SYSTEM],
      ['create', 'leases.coordination.k8s.io', '-n', ns],
      ['get', 'leases.coordination.k8s.io/ark-controller', '-n', ns],
      // No way up: RBAC, impersonation, tokens, CRDs, namespaces.
      ['escalate', 'clusterroles'],
      ['bind', 'clusterroles'],
      ['create', 'clusterrolebindings'],
      ['update', 'rolebindings', '-n', SYSTEM],
      ['update', 'roles', '-n', SYSTEM],
      ['impersonate', 'serviceaccounts', '-n', SYSTEM],
      ['create', 'serviceaccounts', '--subresource=token', '-n', SYSTEM],
      ['update', 'customresourcedefinitions.apiextensions.k8s.io'],
      ['delete', 'namespaces'],
      ['*', '*', '--all-namespaces'],
    ]
    const answers = await Promise.all(
      [...yes, ...no].map(async (args) => [args.join(' '), await can(controllerKubeconfig, args)] as const),
    )
    expect(Object.fromEntries(answers)).toEqual(
      Object.fromEntries([...yes.map((a) => [a.join(' '), true]), ...no.map((a) => [a.join(' '), false])]),
    )
  })

  it('runs the real controller with only this role: availability, A2A discovery, a Query with its Events, finalizer and ttl, the Lease', async () => {
    const ns = await kube.namespace('rbac')
    const remote = await startRemoteA2A()
    onTestFinished(() => remote.close())
    const ctl = await controller(controllerKubeconfig)
    const identity = String((await ctl.waitFor((l) => l.msg === 'leading')).identity)
    // A Secret-backed Model (ConfigMaps and Secrets come from list/watch) and the other dialect as well.
    await apply(
      ns,
      `${MANIFESTS}---
apiVersion: v1
kind: Secret
metadata: { name: openai }
stringData: { api-key: sk-test }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: keyed }
spec:
  provider: openai
  model: { value: gpt-4o }
  config:
    openai:
      apiKey: { valueFrom: { secretKeyRef: { name: openai, key: api-key } } }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: dialect-agent }
spec:
  model: mock
  systemPrompt: You answer briefly.
`,
    )

    // agents (patch): an A2AServer's card becomes an Agent it owns.
    await apply(
      ns,
      `apiVersion: ark.mckinsey.com/v1prealpha1
kind: A2AServer
metadata: { name: remote }
spec: { address: { value: "${remote.url}" } }
`,
    )
    await condition('a2aserver', ns, 'remote', 'Ready')
    await condition('agent', ns, 'remote', 'Available')

    // agents/status, models/status, arkagents/status: the Available condition in each dialect's name.
    await condition('agent', ns, 'support-agent', 'Available')
    await condition('model', ns, 'default', 'ModelAvailable')
    await condition('model', ns, 'keyed', 'ModelAvailable')
    await condition('arkagent', ns, 'dialect-agent', 'Available')

    // queries/status and queries (the finalizer): the Query runs to done. It is applied once its agent is
    // Available: a Query reconciled before that ends in TargetNotAvailable, which is not what is tested here.
    await apply(ns, `${query('password-reset')}---\n${query('short-lived', '1s')}`)
    const done = await condition('query', ns, 'password-reset', 'Completed')
    expect(done).toMatchObject({ status: 'True', reason: 'QuerySucceeded' })
    const q = await get('query', ns, 'password-reset')
    expect(q?.status?.phase).toBe('done')
    expect(q?.status?.responses?.[0]?.content).not.toBe('')
    expect(q?.metadata.finalizers).toContain('ark.mckinsey.com/finalizer')

    // events: created (and patched when repeated) by the controller.
    await vi.waitFor(
      async () => {
        const events = JSON.parse(
          await kube.kubectl([
            'get',
            'events',
            '-n',
            ns,
            '--field-selector',
            'involvedObject.name=password-reset',
            '-o',
            'json',
          ]),
        ) as { items: { reason: string; source?: { component?: string } }[] }
        const reasons = events.items.map((e) => e.reason)
        expect(reasons).toEqual(expect.arrayContaining(['QueryExecutionStart', 'QueryExecutionComplete']))
        expect(events.items.every((e) => e.source?.component === 'ark-controller')).toBe(true)
      },
      { timeout: 20_000, interval: 200 },
    )

    // queries (patch): a deleted Query waits for the controller to take its finalizer off, then goes.
    await kube.kubectl(['delete', 'query', 'password-reset', '-n', ns, '--wait=false'])
    await gone('query', ns, 'password-reset')
    // queries (delete): a Query whose ttl has passed is deleted by the controller itself.
    await gone('query', ns, 'short-lived')

    // leases: the controller holds ark-system/ark-controller.
    const lease = JSON.parse(
      await kube.kubectl(['get', 'lease', 'ark-controller', '-n', SYSTEM, '-o', 'json']),
    ) as { spec: { holderIdentity?: string } }
    expect(lease.spec.holderIdentity).toBe(identity)

    // Nothing was refused along the way: no 403, no "forbidden", in any line (warn, debug or otherwise).
    expect(refusals(ctl.lines)).toEqual([])
    expect(ctl.lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([])
  }, 90_000)

  it('catches a missing rule: without patch on queries/status the controller cannot record a Query', async () => {
    // A copy of the ClusterRole with the queries/status rule taken out, for a ServiceAccount of its own.
    const role = parse(await readFile(join(RBAC, 'cluster-role.yaml'), 'utf8')) as {
      metadata: { name: string }
      rules: { resources: string[] }[]
    }
    const rules = role.rules.filter((r) => r.resources.join() !== 'queries/status')
    expect(rules).toHaveLength(role.rules.length - 1)
    const crippled = 'ark-controller-without-query-status'
    const leaseRole = parseAllDocuments(await readFile(join(RBAC, 'leader-election-role.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind: string; metadata: { name: string } })
      .find((d) => d.kind === 'Role')
    const subject = { kind: 'ServiceAccount', name: crippled, namespace: SYSTEM }
    await kube.kubectl(['apply', '-f', '-'], {
      input: [
        { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: crippled, namespace: SYSTEM } },
        { ...role, metadata: { name: crippled }, rules },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: crippled },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: crippled },
          subjects: [subject],
        },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: crippled, namespace: SYSTEM },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: leaseRole?.metadata.name },
          subjects: [subject],
        },
      ]
        .map((d) => stringify(d))
        .join('---\n'),
    })
    const kubeconfig = await tokenKubeconfig(crippled)
    const ns = await kube.namespace('rbac')
    expect(
      await can(kubeconfig, ['patch', 'queries.ark.mckinsey.com', '--subresource=status', '-n', ns]),
    ).toBe(false)

    const ctl = await controller(kubeconfig)
    await apply(ns, MANIFESTS)
    // Every other rule is still there: the Agent becomes Available and the Query gets its finalizer...
    await condition('agent', ns, 'support-agent', 'Available')
    await apply(ns, query('unrecorded'))
    // ...but its status cannot be written, and the controller says why.
    const refused = await ctl.waitFor(
      (l) =>
        l.level === 'warn' &&
        l.msg === 'reconcile failed; retrying' &&
        /queries\/unrecorded\/status: 403 Forbidden/.test(String(l.error)),
    )
    expect(String(refused.error)).toContain(
      `User "system:serviceaccount:${SYSTEM}:${crippled}" cannot patch resource "queries/status"`,
    )
    const q = await get('query', ns, 'unrecorded')
    expect(q?.metadata.finalizers).toContain('ark.mckinsey.com/finalizer')
    expect(q?.status?.phase).toBeUndefined()
    // The claim (an annotation and the finalizer, on the object itself) went through, so the run happened
    // once; what it produced cannot be recorded without queries/status.
    expect(q?.metadata.annotations?.['ark.mckinsey.com/claimed-by']).toMatch(/ since /)
    // A refusal that will not go away is retried with a growing backoff, not in a hot loop.
    await new Promise((r) => setTimeout(r, 3000))
    const retries = ctl.lines.filter(
      (l) => l.msg === 'reconcile failed; retrying' && /queries\/unrecorded\/status/.test(String(l.error)),
    )
    expect(retries.length).toBeGreaterThan(1)
    expect(retries.length).toBeLessThan(20)
  }, 90_000)
})
