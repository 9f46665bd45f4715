import { headers, valueSource } from '../../adapt.ts'
import { conditionsAs } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import { Conditions, Enum, Header, List, Obj, Opt, Str, ValueSource } from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

export const Memory = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'Memory',
  plural: 'memories',
  internal: 'Memory',
  shortNames: ['mem'],
  crd: true,
  printerColumns: [
    { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status' },
    { name: 'Address', type: 'string', jsonPath: '.status.lastResolvedAddress' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj({ address: ValueSource, headers: Opt(List(Header)) }, { required: ['address'] }),
    status: Opt(
      Obj({
        lastResolvedAddress: Opt(Str()),
        phase: Opt(Enum(['running', 'ready', 'error'])),
        message: Opt(Str()),
        conditions: Opt(Conditions),
      }),
    ),
  }),
  adapt({ spec }, ctx) {
    const address = valueSource(spec.address, 'spec.address', ctx) ?? { value: '' }
    return { spec: { backend: 'http', address, headers: headers(spec.headers, 'spec.headers', ctx) } }
  },
  toStatus: (status) => {
    const ready = status.conditions.find((c) => c.type === 'Available')
    return {
      ...(status.resolvedAddress === undefined ? {} : { lastResolvedAddress: status.resolvedAddress }),
      phase: ready?.status === 'True' ? 'ready' : ready?.status === 'False' ? 'error' : 'running',
      ...(ready === undefined ? {} : { message: ready.message }),
      conditions: conditionsAs(status, 'Available'),
    }
  },
})
