import { conditionsAs, headers, parseDuration, valueSource } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import { Conditions, Duration, Header, List, Obj, Opt, Str, ValueSource } from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

export const A2AServer = defineKind({
  group: ARK_GROUP,
  version: 'v1prealpha1',
  kind: 'A2AServer',
  plural: 'a2aservers',
  internal: 'A2AServer',
  shortNames: ['a2a'],
  crd: true,
  printerColumns: [
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Address', type: 'string', jsonPath: '.status.lastResolvedAddress' },
    {
      name: 'Reason',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
      priority: 1,
    },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        address: ValueSource,
        headers: Opt(List(Header)),
        description: Opt(Str()),
        pollInterval: Opt(Duration({ default: '1m' })),
        timeout: Opt(Duration({ default: '5m', description: 'Execution timeout of the remote agent.' })),
      },
      { required: ['address'] },
    ),
    status: Opt(Obj({ lastResolvedAddress: Opt(Str()), conditions: Opt(Conditions) })),
  }),
  adapt({ spec }, ctx) {
    return {
      spec: {
        address: valueSource(spec.address, 'spec.address', ctx) ?? { value: '' },
        headers: headers(spec.headers, 'spec.headers', ctx),
        ...(spec.description === undefined ? {} : { description: spec.description }),
        pollIntervalSeconds: parseDuration(spec.pollInterval ?? '1m'),
        timeoutSeconds: parseDuration(spec.timeout ?? '5m'),
      },
    }
  },
  toStatus: (status) => ({
    ...(status.resolvedAddress === undefined ? {} : { lastResolvedAddress: status.resolvedAddress }),
    conditions: conditionsAs(status, 'Ready'),
  }),
})
