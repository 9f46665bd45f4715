import { conditionsAs } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import { Conditions, Int, LocalRef, Obj, Opt, Str } from '../../schema.ts'
import { ARKONIS_GROUP } from '../group.ts'
import { AgentFields, LivenessProbe, NameOrRef, adaptAgentFields, nameOrRef } from './shared.ts'
import { localRef } from '../../adapt.ts'

export const ArkAgent = defineKind({
  group: ARKONIS_GROUP,
  version: 'v1alpha1',
  kind: 'ArkAgent',
  plural: 'arkagents',
  shortNames: ['aoagent'],
  internal: 'Agent',
  crd: true,
  scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' },
  // REPLICAS and READY are what the pool has (status), like a ReplicaSet's CURRENT and READY; what was
  // asked for (`kubectl scale`) is DESIRED, in -o wide.
  printerColumns: [
    { name: 'Model', type: 'string', jsonPath: '.spec.model' },
    { name: 'Replicas', type: 'integer', jsonPath: '.status.replicas' },
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' },
    { name: 'Desired', type: 'integer', jsonPath: '.spec.replicas', priority: 1 },
    {
      name: 'Available',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="Available")].status',
      priority: 1,
    },
    {
      name: 'Tokens-Today',
      type: 'integer',
      jsonPath: '.status.dailyTokenUsage.totalTokens',
      priority: 1,
    },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        replicas: Opt(Int({ minimum: 0, maximum: 50, default: 1, description: '0 drains the pool.' })),
        ...AgentFields,
        livenessProbe: Opt(LivenessProbe),
        configRef: Opt(NameOrRef),
        memoryRef: Opt(LocalRef),
      },
      { required: ['model'] },
    ),
    status: Opt(
      Obj({
        replicas: Opt(Int()),
        readyReplicas: Opt(Int()),
        observedGeneration: Opt(Int()),
        dailyTokenUsage: Opt(
          Obj(
            {
              date: Str({ description: 'The UTC day, YYYY-MM-DD.' }),
              totalTokens: Int({ minimum: 0 }),
              limit: Int({ minimum: 1, description: 'spec.limits.maxDailyTokens when it was read.' }),
            },
            {
              description:
                'With spec.limits.maxDailyTokens: tokens the agent used on that UTC day, refreshed about every 30 s.',
            },
          ),
        ),
        conditions: Opt(Conditions),
      }),
    ),
  }),
  adapt({ spec }, ctx) {
    const agent = adaptAgentFields(spec, 'spec', ctx)
    const settings =
      spec.configRef === undefined ? undefined : nameOrRef(spec.configRef, 'spec.configRef', ctx)
    const p = spec.livenessProbe
    return {
      spec: {
        ...agent,
        replicas: spec.replicas ?? 1,
        ...(settings === undefined ? {} : { settings }),
        ...(spec.memoryRef === undefined ? {} : { memory: localRef(spec.memoryRef.name, ctx) }),
        ...(p === undefined
          ? {}
          : {
              probe: {
                type: p.type,
                intervalSeconds: p.intervalSeconds ?? 60,
                ...(p.validatorPrompt === undefined ? {} : { validatorPrompt: p.validatorPrompt }),
              },
            }),
      },
    }
  },
  toStatus: (status, resource) => {
    const spec = resource.spec as { replicas?: number }
    return {
      replicas: status.replicas ?? spec.replicas ?? 0,
      readyReplicas: status.readyReplicas ?? 0,
      ...(resource.meta.generation === undefined ? {} : { observedGeneration: resource.meta.generation }),
      ...(status.dailyTokenUsage === undefined ? {} : { dailyTokenUsage: { ...status.dailyTokenUsage } }),
      conditions: conditionsAs(status, 'Available'),
    }
  },
})
