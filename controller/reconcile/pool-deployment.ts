/**
 * What a pool looks like on a cluster, as pure functions of an agent and the controller's settings: the
 * Deployment that runs `ark worker --agent <ns>/<name>`, KEDA's ScaledObject for it, the per-namespace objects
 * its pods need (ServiceAccount, RoleBinding, the Redis Secret), and the agent's status read back from the
 * Deployment. pools.ts applies them; keeping them pure keeps them easy to read and to test.
 *
 * Labels (all pools): app.kubernetes.io/{name: ark, part-of: ark, component: worker, managed-by:
 * ark-controller, instance: <agent>}. The selector is the last three: it never changes for a pool, as a
 * Deployment's selector must not.
 */
import { createHash } from 'node:crypto'
import type { AgentSpec, AnyResource, Resource } from '../api/index.ts'
import type { Verdict } from './availability.ts'

export const MANAGED_BY = 'ark-controller'
export const MANAGED_SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY},app.kubernetes.io/component=worker`
/** The pod template annotation whose change rolls a pool: a digest of the ConfigMaps and Secrets it reads. */
export const CONFIG_HASH = 'ark.mckinsey.com/config-hash'
/** Which agent a Deployment runs (`namespace/name`): its label holds at most 63 characters, this all of it. */
export const AGENT_ANNOTATION = 'ark.mckinsey.com/agent'
/** The worker's health and metrics port (ark worker's default --port). */
export const WORKER_PORT = 8081
export const PROGRESSING = 'Progressing'
export const DEGRADED = 'Degraded'

export interface PoolSettings {
  /** The image every pool runs (the controller's own, so pools upgrade with it). */
  readonly image: string
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never'
  /** imagePullSecrets of the pods: Secrets of these names in each agent's namespace. */
  readonly pullSecrets?: readonly string[]
  /** ServiceAccount of pool pods, applied in each namespace with pools. */
  readonly serviceAccount: string
  /** ClusterRole the ServiceAccount is bound to in its namespace (read-only: the data plane's). */
  readonly clusterRole: string
  /** Secret in each namespace with pools that holds REDIS_URL (and REDIS_PASSWORD/REDIS_USERNAME for KEDA). */
  readonly redisSecret: string
  /** An optional Secret in the agent's namespace whose keys become the workers' environment (provider keys). */
  readonly providersSecret: string
  /** Redis key prefix, when not ark's default. */
  readonly redisPrefix?: string
  /** What a model without an API key does in the pools (the controller's own setting). */
  readonly modelsWithoutKey?: 'mock' | 'unavailable'
  /** Queue-depth autoscaling with KEDA; absent: replicas come from the agent's spec. */
  readonly keda?: KedaSettings
}

export interface KedaSettings {
  /**
   * Unanswered tasks per worker (KEDA's streamLength). The pool's stream holds exactly those: answered
   * entries are deleted. Not the group's lag, which Redis cannot count once an entry in the middle was
   * deleted (it reads nil), and which misses tasks a stopped worker handed back.
   */
  readonly tasksPerWorker: number
  readonly cooldownSeconds: number
  readonly pollingSeconds: number
  /** The pool's Redis stream (the gateway's key for it). */
  readonly stream: (agent: Resource<'Agent', AgentSpec>) => string
}

/** A URL's user or password as Redis takes it: percent-escapes decoded, a stray `%` kept as it is. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** A Kubernetes name of at most 63 characters for a label value: long names keep a prefix and a digest. */
export function labelValue(name: string): string {
  if (name.length <= 63) return name
  return `${name.slice(0, 52)}-${digest(name).slice(0, 10)}`
}

export function poolLabels(agent: AnyResource): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'ark',
    'app.kubernetes.io/part-of': 'ark',
    ...poolSelector(agent),
  }
}

export function poolSelector(agent: AnyResource): Record<string, string> {
  return {
    'app.kubernetes.io/managed-by': MANAGED_BY,
    'app.kubernetes.io/component': 'worker',
    'app.kubernetes.io/instance': labelValue(agent.ref.name),
  }
}

/** A hex digest (sha256), for names and the config hash. */
export function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/**
 * The pool's Deployment. `configHash` digests what the pods read at start (pools.ts computes it from the
 * ConfigMaps and Secrets the agent reaches). `replicas` is left out when KEDA owns it.
 */
export function poolDeployment(
  agent: Resource<'Agent', AgentSpec>,
  settings: PoolSettings,
  configHash: string,
): Record<string, unknown> {
  const { namespace, name } = agent.ref
  const limits = agent.spec.limits
  const replicas = agent.spec.replicas ?? 1
  // A task may run for its whole timeout; a rolling update lets it finish (the worker drains for the grace,
  // then hands what is left back to the pool), and the kubelet waits a little longer than that.
  const grace = Math.min(limits.timeoutSeconds ?? 120, 300)
  const env: Record<string, unknown>[] = [
    { name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: settings.redisSecret, key: 'REDIS_URL' } } },
    { name: 'ARK_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    // Flags beat the environment, so host and port are set here: a kubelet-less test harness gives each
    // pod a loopback port of its own through them.
    { name: 'HOST', value: '0.0.0.0' },
    { name: 'PORT', value: String(WORKER_PORT) },
    { name: 'ARK_SHUTDOWN_GRACE', value: String(grace) },
    // The agent's limits that size the process, as seed 003 injects them (maxTokensPerCall needs no restart:
    // the worker reads it, like every other field, from the agent as it changes).
    ...(limits.maxConcurrentTasks === undefined
      ? []
      : [{ name: 'ARK_WORKER_CONCURRENCY', value: String(limits.maxConcurrentTasks) }]),
    ...(limits.timeoutSeconds === undefined
      ? []
      : [{ name: 'ARK_TASK_TIMEOUT', value: String(limits.timeoutSeconds) }]),
    ...(settings.redisPrefix === undefined
      ? []
      : [{ name: 'ARK_REDIS_PREFIX', value: settings.redisPrefix }]),
    ...(settings.modelsWithoutKey === undefined
      ? []
      : [{ name: 'ARK_MODELS_WITHOUT_KEY', value: settings.modelsWithoutKey }]),
  ]
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: 'metrics' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 3,
  })
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace,
      labels: poolLabels(agent),
      annotations: { [AGENT_ANNOTATION]: `${namespace}/${name}` },
    },
    spec: {
      ...(settings.keda === undefined || replicas === 0 ? { replicas } : {}),
      revisionHistoryLimit: 3,
      selector: { matchLabels: poolSelector(agent) },
      // A pool never runs below what it was asked for while it rolls: new workers come up before old ones drain.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
      template: {
        metadata: {
          labels: poolLabels(agent),
          annotations: { [CONFIG_HASH]: configHash, [AGENT_ANNOTATION]: `${namespace}/${name}` },
        },
        spec: {
          serviceAccountName: settings.serviceAccount,
          ...(settings.pullSecrets === undefined || settings.pullSecrets.length === 0
            ? {}
            : { imagePullSecrets: settings.pullSecrets.map((name) => ({ name })) }),
          terminationGracePeriodSeconds: grace + 5,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            runAsGroup: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'worker',
              image: settings.image,
              ...(settings.imagePullPolicy === undefined
                ? {}
                : { imagePullPolicy: settings.imagePullPolicy }),
              args: ['worker', '--agent', `${namespace}/${name}`, '--source', 'cluster'],
              env,
              envFrom: [{ secretRef: { name: settings.providersSecret, optional: true } }],
              ports: [{ name: 'metrics', containerPort: WORKER_PORT, protocol: 'TCP' }],
              // /readyz is the semantic probe's verdict and Redis being reachable: a worker that cannot
              // answer well takes no tasks and gets no traffic. /healthz only says the process lives.
              readinessProbe: probe('/readyz', 5, 2),
              livenessProbe: probe('/healthz', 10, 3),
              resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '512Mi' } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: {} }],
        },
      },
    },
  }
}

/** What a pool's pods need in their namespace, applied once per namespace. */
export function namespaceObjects(
  namespace: string,
  settings: PoolSettings,
  redisUrl: string,
): Record<string, unknown>[] {
  const labels = {
    'app.kubernetes.io/name': 'ark',
    'app.kubernetes.io/part-of': 'ark',
    'app.kubernetes.io/managed-by': MANAGED_BY,
  }
  const u = new URL(redisUrl)
  const password = decoded(u.password)
  const username = decoded(u.username)
  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: settings.serviceAccount, namespace, labels },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: settings.serviceAccount, namespace, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: settings.clusterRole },
      subjects: [{ kind: 'ServiceAccount', name: settings.serviceAccount, namespace }],
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: settings.redisSecret, namespace, labels },
      type: 'Opaque',
      stringData: {
        REDIS_URL: redisUrl,
        // KEDA's redis-streams scaler takes the password (and user) apart from the address.
        ...(password === '' ? {} : { REDIS_PASSWORD: password }),
        ...(username === '' ? {} : { REDIS_USERNAME: username }),
      },
    },
  ]
}

/**
 * KEDA's ScaledObject for a pool (and a TriggerAuthentication when Redis has a password): the Deployment
 * scales from 0 to the agent's replicas on the length of the pool's stream: its unanswered tasks, waiting or
 * running (XLEN; active from one).
 */
export function kedaObjects(
  agent: Resource<'Agent', AgentSpec>,
  settings: PoolSettings & { readonly keda: KedaSettings },
  redisUrl: string,
): Record<string, unknown>[] {
  const { namespace, name } = agent.ref
  const u = new URL(redisUrl)
  const secured = u.password !== '' || u.username !== ''
  const db = u.pathname.replace(/^\//, '')
  const labels = poolLabels(agent)
  const auth = `${name}-redis`
  return [
    ...(secured
      ? [
          {
            apiVersion: 'keda.sh/v1alpha1',
            kind: 'TriggerAuthentication',
            metadata: { name: auth, namespace, labels },
            spec: {
              secretTargetRef: [
                ...(u.password === ''
                  ? []
                  : [{ parameter: 'password', name: settings.redisSecret, key: 'REDIS_PASSWORD' }]),
                ...(u.username === ''
                  ? []
                  : [{ parameter: 'username', name: settings.redisSecret, key: 'REDIS_USERNAME' }]),
              ],
            },
          },
        ]
      : []),
    {
      apiVersion: 'keda.sh/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name, namespace, labels },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
        minReplicaCount: 0,
        maxReplicaCount: agent.spec.replicas ?? 1,
        pollingInterval: settings.keda.pollingSeconds,
        cooldownPeriod: settings.keda.cooldownSeconds,
        triggers: [
          {
            type: 'redis-streams',
            metadata: {
              address: `${u.hostname}:${u.port === '' ? '6379' : u.port}`,
              stream: settings.keda.stream(agent),
              streamLength: String(settings.keda.tasksPerWorker),
              activationStreamLength: '0',
              ...(db === '' ? {} : { databaseIndex: db }),
              ...(u.protocol === 'rediss:' ? { enableTLS: 'true' } : {}),
            },
            ...(secured ? { authenticationRef: { name: auth } } : {}),
          },
        ],
      },
    },
  ]
}

/** The parts of a Deployment its pool's status is read from. */
export interface DeploymentView {
  readonly metadata?: { readonly generation?: number }
  readonly spec?: { readonly replicas?: number }
  readonly status?: {
    readonly observedGeneration?: number
    readonly replicas?: number
    readonly readyReplicas?: number
    readonly updatedReplicas?: number
    readonly conditions?: readonly {
      readonly type?: string
      readonly status?: string
      readonly reason?: string
      readonly message?: string
    }[]
  }
}

export interface PoolState {
  readonly replicas: number
  readonly readyReplicas: number
  readonly progressing: Verdict
  readonly degraded: Verdict
}

/**
 * The pool's state from its Deployment: replicas and readyReplicas as they are, Progressing as the
 * Deployment says it, and Degraded when the pool serves below what it was asked for once it stopped rolling
 * (pods that crash or fail their probe), or when the rollout is stuck.
 */
export function poolState(deployment: DeploymentView | undefined, desired: number): PoolState {
  if (deployment === undefined) {
    const pending = { reason: 'DeploymentPending', message: 'the pool is being created' }
    return {
      replicas: 0,
      readyReplicas: 0,
      progressing: { status: 'True', ...pending },
      degraded: { status: 'False', ...pending },
    }
  }
  const s = deployment.status ?? {}
  const replicas = s.replicas ?? 0
  const ready = s.readyReplicas ?? 0
  const want = deployment.spec?.replicas ?? desired
  const condition = (type: string) => s.conditions?.find((c) => c.type === type)
  const progressing = condition('Progressing')
  const failure = condition('ReplicaFailure')
  const observed =
    deployment.metadata?.generation === undefined || s.observedGeneration === deployment.metadata.generation
  const rolledOut = observed && progressing?.reason === 'NewReplicaSetAvailable'
  const progressingVerdict: Verdict =
    progressing === undefined
      ? {
          status: 'True',
          reason: 'DeploymentPending',
          message: 'the Deployment has not reported progress yet',
        }
      : {
          status: progressing.status === 'False' ? 'False' : 'True',
          reason: progressing.reason ?? 'Progressing',
          message: progressing.message ?? '',
        }
  let degraded: Verdict = {
    status: 'False',
    reason: 'AsDesired',
    message: `${String(ready)} of ${String(want)} workers ready`,
  }
  if (failure?.status === 'True')
    degraded = { status: 'True', reason: failure.reason ?? 'ReplicaFailure', message: failure.message ?? '' }
  else if (progressing?.status === 'False')
    degraded = {
      status: 'True',
      reason: progressing.reason ?? 'ProgressDeadlineExceeded',
      message: progressing.message ?? '',
    }
  else if (rolledOut && ready < want)
    degraded = {
      status: 'True',
      reason: 'WorkersNotReady',
      message: `${String(ready)} of ${String(want)} workers ready (see the pods' readiness: /readyz)`,
    }
  return { replicas, readyReplicas: ready, progressing: progressingVerdict, degraded }
}
