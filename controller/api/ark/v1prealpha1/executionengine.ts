import { optionalValueSource } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import { Conditions, Name, Obj, Opt, Str, ValueSource } from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

export const ExecutionEngine = defineKind({
  group: ARK_GROUP,
  version: 'v1prealpha1',
  kind: 'ExecutionEngine',
  plural: 'executionengines',
  internal: 'ExecutionEngine',
  shortNames: ['engine'],
  crd: true,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Address', type: 'string', jsonPath: '.status.lastResolvedAddress' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        type: Name('Engine implementation, e.g. `langchain`.'),
        address: Opt(ValueSource),
        description: Opt(Str()),
      },
      { required: ['type'] },
    ),
    status: Opt(
      Obj({
        lastResolvedAddress: Opt(Str()),
        phase: Opt(Str()),
        message: Opt(Str()),
        conditions: Opt(Conditions),
      }),
    ),
  }),
  adapt({ spec }, ctx) {
    const address = optionalValueSource(spec.address, 'spec.address', ctx)
    return {
      spec: {
        type: spec.type,
        ...(address === undefined ? {} : { address }),
        ...(spec.description === undefined ? {} : { description: spec.description }),
      },
    }
  },
  toStatus: (status) => {
    const ready = status.conditions.find((c) => c.type === 'Available')
    return {
      ...(status.resolvedAddress === undefined ? {} : { lastResolvedAddress: status.resolvedAddress }),
      phase: ready?.status === 'True' ? 'ready' : 'pending',
      ...(ready === undefined ? {} : { message: ready.message }),
      conditions: status.conditions.map((c) => ({ ...c })),
    }
  },
})
