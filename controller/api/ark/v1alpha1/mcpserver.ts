import { conditionsAs, headers, parseDuration, valueSource } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import {
  Conditions,
  Duration,
  Enum,
  FreeObject,
  Header,
  Int,
  List,
  Obj,
  Opt,
  Str,
  ValueSource,
} from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

export const MCPServer = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'MCPServer',
  plural: 'mcpservers',
  internal: 'MCPServer',
  shortNames: ['mcp'],
  crd: true,
  printerColumns: [
    { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status' },
    { name: 'Address', type: 'string', jsonPath: '.status.resolvedAddress' },
    { name: 'Tools', type: 'integer', jsonPath: '.status.toolCount' },
    {
      name: 'Reason',
      type: 'string',
      jsonPath: '.status.conditions[?(@.type=="Available")].reason',
      priority: 1,
    },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        address: ValueSource,
        headers: Opt(List(Header)),
        transport: Opt(Enum(['http', 'sse'], { default: 'http' })),
        timeout: Opt(Duration({ default: '30s', description: 'Connection and retry window.' })),
        toolCallTimeout: Opt(Duration()),
        description: Opt(Str()),
        pollInterval: Opt(Duration({ default: '1m' })),
        authorization: Opt(FreeObject('OAuth token Secret reference (not supported yet).')),
      },
      { required: ['address'] },
    ),
    status: Opt(
      Obj({
        resolvedAddress: Opt(Str()),
        toolCount: Opt(Int()),
        tools: Opt(List(Str(), { description: 'Names of the tools the server lists.' })),
        conditions: Opt(Conditions),
      }),
    ),
  }),
  adapt({ spec }, ctx) {
    if (spec.authorization !== undefined)
      ctx.warn('spec.authorization', 'is not supported yet and is ignored')
    return {
      spec: {
        address: valueSource(spec.address, 'spec.address', ctx) ?? { value: '' },
        transport: spec.transport ?? 'http',
        headers: headers(spec.headers, 'spec.headers', ctx),
        ...(spec.description === undefined ? {} : { description: spec.description }),
        timeoutSeconds: parseDuration(spec.timeout ?? '30s'),
        ...(spec.toolCallTimeout === undefined
          ? {}
          : { toolCallTimeoutSeconds: parseDuration(spec.toolCallTimeout) }),
        pollIntervalSeconds: parseDuration(spec.pollInterval ?? '1m'),
      },
    }
  },
  toStatus: (status) => ({
    ...(status.resolvedAddress === undefined ? {} : { resolvedAddress: status.resolvedAddress }),
    ...(status.toolCount === undefined ? {} : { toolCount: status.toolCount }),
    ...(status.tools === undefined ? {} : { tools: status.tools }),
    conditions: conditionsAs(status, 'Available'),
  }),
})
