import { describe, expect, it } from 'vitest'
import type { AgentSpec, Resource } from '../api/index.ts'
import type { PoolSettings } from './pool-deployment.ts'
import { kedaObjects, labelValue, namespaceObjects, poolDeployment, poolState } from './pool-deployment.ts'

const agent = (spec: Partial<AgentSpec> = {}, name = 'research-agent'): Resource<'Agent', AgentSpec> => ({
  kind: 'Agent',
  key: `Agent/team-a/${name}`,
  ref: { namespace: 'team-a', name },
  meta: { labels: {}, annotations: {}, uid: 'u-1', generation: 3 },
  origin: { apiVersion: 'arkonis.dev/v1alpha1', kind: 'ArkAgent' },
  spec: { tools: [], parameters: [], limits: {}, replicas: 2, ...spec },
})

const settings: PoolSettings = {
  image: 'ghcr.io/ark-runtime/ark:0.1.0',
  serviceAccount: 'ark-worker',
  clusterRole: 'ark-data-plane',
  redisSecret: 'ark-worker-redis',
  providersSecret: 'ark-providers',
}
const keda = {
  ...settings,
  keda: {
    tasksPerWorker: 5,
    cooldownSeconds: 300,
    pollingSeconds: 15,
    stream: (a: Resource<'Agent', AgentSpec>) => `ark:pool:${a.ref.namespace}/${a.ref.name}`,
  },
}

type Deployment = {
  spec: {
    replicas?: number
    selector: { matchLabels: Record<string, string> }
    template: {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> }
      spec: {
        terminationGracePeriodSeconds: number
        containers: { args: string[]; env: { name: string; value?: string }[] }[]
      }
    }
  }
}

describe('poolDeployment', () => {
  it('runs ark worker for the agent, its limits in the environment, its selector a subset of its labels', () => {
    const d = poolDeployment(
      agent({ limits: { maxConcurrentTasks: 5, timeoutSeconds: 120, maxTokensPerCall: 8000 } }),
      settings,
      'abc',
    ) as Deployment
    const c = d.spec.template.spec.containers[0]
    expect(c?.args).toEqual(['worker', '--agent', 'team-a/research-agent', '--source', 'cluster'])
    const env = Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]))
    expect(env).toMatchObject({
      ARK_WORKER_CONCURRENCY: '5',
      ARK_TASK_TIMEOUT: '120',
      ARK_SHUTDOWN_GRACE: '120',
    })
    expect(d.spec.replicas).toBe(2)
    expect(d.spec.template.metadata.annotations['ark.mckinsey.com/config-hash']).toBe('abc')
    expect(d.spec.template.spec.terminationGracePeriodSeconds).toBe(125)
    expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels)
  })

  it('leaves the replicas to the HPA with KEDA, except for a drained pool', () => {
    expect((poolDeployment(agent(), keda, 'h') as Deployment).spec.replicas).toBeUndefined()
    expect((poolDeployment(agent({ replicas: 0 }), keda, 'h') as Deployment).spec.replicas).toBe(0)
  })

  it('keeps label values within 63 characters, distinct for distinct long names', () => {
    const long = 'a'.repeat(70)
    expect(labelValue('short')).toBe('short')
    expect(labelValue(long)).toHaveLength(63)
    expect(labelValue(long)).not.toBe(labelValue(`${'a'.repeat(69)}b`))
    const d = poolDeployment(agent({}, long), settings, 'h') as Deployment
    expect(d.spec.selector.matchLabels['app.kubernetes.io/instance']).toBe(labelValue(long))
  })
})

describe('namespaceObjects and kedaObjects', () => {
  it('puts the Redis password beside the URL in the Secret, for KEDA, and nowhere else', () => {
    const url = 'rediss://worker:s3cr%40t@redis.example.com:6380/2'
    const [sa, binding, secret] = namespaceObjects('team-a', settings, url)
    expect(sa).toMatchObject({
      kind: 'ServiceAccount',
      metadata: { name: 'ark-worker', namespace: 'team-a' },
    })
    expect(binding).toMatchObject({
      kind: 'RoleBinding',
      roleRef: { kind: 'ClusterRole', name: 'ark-data-plane' },
      subjects: [{ kind: 'ServiceAccount', name: 'ark-worker', namespace: 'team-a' }],
    })
    expect(secret).toMatchObject({
      stringData: { REDIS_URL: url, REDIS_PASSWORD: 's3cr@t', REDIS_USERNAME: 'worker' },
    })
    const objects = kedaObjects(agent({ replicas: 4 }), keda, url)
    expect(JSON.stringify(objects)).not.toContain('s3cr')
    const [auth, scaled] = objects
    expect(auth).toMatchObject({
      kind: 'TriggerAuthentication',
      spec: {
        secretTargetRef: [
          { parameter: 'password', name: 'ark-worker-redis', key: 'REDIS_PASSWORD' },
          { parameter: 'username', name: 'ark-worker-redis', key: 'REDIS_USERNAME' },
        ],
      },
    })
    expect(scaled).toMatchObject({
      kind: 'ScaledObject',
      spec: {
        scaleTargetRef: { kind: 'Deployment', name: 'research-agent' },
        minReplicaCount: 0,
        maxReplicaCount: 4,
        triggers: [
          {
            type: 'redis-streams',
            metadata: {
              address: 'redis.example.com:6380',
              stream: 'ark:pool:team-a/research-agent',
              streamLength: '5',
              activationStreamLength: '0',
              databaseIndex: '2',
              enableTLS: 'true',
            },
            authenticationRef: { name: 'research-agent-redis' },
          },
        ],
      },
    })
  })

  it('needs no TriggerAuthentication for a Redis without credentials', () => {
    const objects = kedaObjects(agent(), keda, 'redis://10.0.0.5')
    expect(objects.map((o) => o.kind)).toEqual(['ScaledObject'])
    expect(JSON.stringify(objects)).toContain('"address":"10.0.0.5:6379"')
  })
})

describe('poolState', () => {
  const deployment = (status: object, spec = { replicas: 2 }) => ({
    metadata: { generation: 4 },
    spec,
    status: { observedGeneration: 4, ...status },
  })

  it('is pending before the Deployment is seen', () => {
    expect(poolState(undefined, 2)).toMatchObject({
      replicas: 0,
      readyReplicas: 0,
      progressing: { status: 'True', reason: 'DeploymentPending' },
      degraded: { status: 'False' },
    })
  })

  it('is not degraded while a rollout brings pods up', () => {
    const s = poolState(
      deployment({
        replicas: 3,
        readyReplicas: 1,
        conditions: [
          { type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated', message: 'rolling' },
        ],
      }),
      2,
    )
    expect(s).toMatchObject({
      replicas: 3,
      readyReplicas: 1,
      progressing: { status: 'True', reason: 'ReplicaSetUpdated' },
    })
    expect(s.degraded.status).toBe('False')
  })

  it('is degraded when, rolled out, fewer workers are ready than asked for', () => {
    const s = poolState(
      deployment({
        replicas: 2,
        readyReplicas: 1,
        conditions: [{ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }],
      }),
      2,
    )
    expect(s.degraded).toMatchObject({ status: 'True', reason: 'WorkersNotReady' })
    expect(s.degraded.message).toContain('1 of 2 workers ready')
  })

  it('is degraded when the rollout is stuck or pods cannot be created', () => {
    expect(
      poolState(
        deployment({
          conditions: [
            { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'x' },
          ],
        }),
        2,
      ).degraded,
    ).toMatchObject({ status: 'True', reason: 'ProgressDeadlineExceeded' })
    expect(
      poolState(
        deployment({
          conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'quota' }],
        }),
        2,
      ).degraded,
    ).toMatchObject({ status: 'True', reason: 'FailedCreate', message: 'quota' })
  })

  it('reads the desired count from the Deployment, where KEDA sets it', () => {
    const s = poolState(
      deployment(
        {
          replicas: 0,
          readyReplicas: 0,
          conditions: [{ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }],
        },
        { replicas: 0 },
      ),
      4,
    )
    expect(s.degraded.status).toBe('False')
  })
})
