import { conditionsAs, localRef } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import { Conditions, Enum, Int, List, Name, Obj, Opt } from '../../schema.ts'
import { ARKONIS_GROUP } from '../group.ts'

export const ArkService = defineKind({
  group: ARKONIS_GROUP,
  version: 'v1alpha1',
  kind: 'ArkService',
  plural: 'arkservices',
  shortNames: ['aosvc'],
  internal: 'AgentService',
  crd: true,
  printerColumns: [
    { name: 'Agent', type: 'string', jsonPath: '.spec.selector.arkAgent' },
    { name: 'Strategy', type: 'string', jsonPath: '.spec.routing.strategy' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        selector: Obj({ arkAgent: Name('The ArkAgent whose pool this service fronts.') }),
        routing: Opt(
          Obj({ strategy: Opt(Enum(['round-robin', 'least-busy', 'random'], { default: 'round-robin' })) }),
        ),
        ports: Opt(List(Obj({ protocol: Enum(['A2A', 'HTTP']), port: Int({ minimum: 1, maximum: 65535 }) }))),
      },
      { required: ['selector'] },
    ),
    status: Opt(
      Obj({ readyReplicas: Opt(Int()), observedGeneration: Opt(Int()), conditions: Opt(Conditions) }),
    ),
  }),
  adapt({ spec }, ctx) {
    return {
      spec: {
        agent: localRef(spec.selector.arkAgent, ctx),
        strategy: spec.routing?.strategy ?? 'round-robin',
        ports: (spec.ports ?? []).map((p) => ({ ...p })),
      },
    }
  },
  toStatus: (status) => ({
    ...(status.readyReplicas === undefined ? {} : { readyReplicas: status.readyReplicas }),
    conditions: conditionsAs(status, 'Ready'),
  }),
})
