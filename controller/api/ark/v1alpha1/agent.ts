import { conditionsAs, parameters, ref } from '../../adapt.ts'
import type { AgentTool, AgentSpec, NamedValue } from '../../resources.ts'
import { defineKind } from '../../define.ts'
import {
  Conditions,
  Enum,
  FreeObject,
  List,
  Name,
  NamespacedRef,
  Obj,
  Opt,
  Parameter,
  Str,
  ValueFrom,
} from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

const ToolFunction = Obj({ name: Name(), value: Opt(Str()), valueFrom: Opt(ValueFrom) })

const AgentToolDoc = Obj(
  {
    type: Enum(['built-in', 'builtin', 'custom', 'mcp', 'http', 'agent', 'team'], {
      description: '`built-in`: provided by the runtime. Others name a Tool resource (`custom`: any type).',
    }),
    name: Opt(Name('Tool resource name, or the built-in tool name.')),
    description: Opt(Str({ description: 'Description shown to the model, overriding the Tool’s.' })),
    functions: Opt(List(ToolFunction)),
    partial: Opt(
      Obj({
        name: Opt(Name('The Tool resource this entry exposes under `name`.')),
        parameters: Opt(
          List(ToolFunction, { description: 'Arguments fixed by the agent, hidden from the model.' }),
        ),
      }),
    ),
  },
  { required: ['type'] },
)

const Override = Obj({
  resourceType: Enum(['model', 'mcpserver']),
  headers: List(Obj({ name: Name(), value: Obj({ value: Opt(Str()), valueFrom: Opt(ValueFrom) }) })),
  labelSelector: Opt(FreeObject()),
})

export const Agent = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'Agent',
  plural: 'agents',
  internal: 'Agent',
  crd: true,
  printerColumns: [
    { name: 'Model', type: 'string', jsonPath: '.spec.modelRef.name' },
    { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status' },
    { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].reason' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj({
      prompt: Opt(
        Str({ description: 'System prompt; `{{.name}}` placeholders are filled from parameters.' }),
      ),
      description: Opt(Str()),
      modelRef: Opt(NamespacedRef),
      executionEngine: Opt(NamespacedRef),
      tools: Opt(List(AgentToolDoc)),
      parameters: Opt(List(Parameter)),
      outputSchema: Opt(FreeObject('JSON Schema the final answer must satisfy.')),
      overrides: Opt(List(Override)),
    }),
    status: Opt(Obj({ conditions: Opt(Conditions) })),
  }),
  adapt({ spec }, ctx) {
    const path = 'spec'
    const tools: AgentTool[] = []
    ;(spec.tools ?? []).forEach((t, i) => {
      const at = `${path}.tools[${i}]`
      const fixed: NamedValue[] = [
        ...parameters(t.functions, `${at}.functions`, ctx),
        ...parameters(t.partial?.parameters, `${at}.partial.parameters`, ctx),
      ]
      if (t.type === 'built-in' || t.type === 'builtin') {
        if (t.name === undefined) return ctx.error(`${at}.name`, 'is required: which built-in tool?')
        tools.push({
          kind: 'builtin',
          name: t.name,
          ...(t.description === undefined ? {} : { description: t.description }),
        })
        return
      }
      const target = t.partial?.name ?? t.name
      if (target === undefined) return ctx.error(`${at}.name`, 'is required: the name of a Tool resource')
      tools.push({
        kind: 'ref',
        ref: ref({ name: target }, ctx),
        ...(t.partial?.name !== undefined && t.name !== undefined ? { as: t.name } : {}),
        ...(t.type === 'custom' ? {} : { expectType: t.type }),
        ...(t.description === undefined ? {} : { description: t.description }),
        fixed,
      })
    })
    if (spec.overrides !== undefined) ctx.warn(`${path}.overrides`, 'is not supported yet and is ignored')

    const a = ctx.meta.annotations ?? {}
    const a2aServer = a['ark.mckinsey.com/a2a-server-name']
    const a2aAddress = a['ark.mckinsey.com/a2a-server-address']
    const a2aSkills = a['ark.mckinsey.com/a2a-server-skills']

    const out: AgentSpec = {
      ...(spec.description === undefined ? {} : { description: spec.description }),
      ...(spec.prompt === undefined ? {} : { prompt: { inline: spec.prompt } }),
      // ARK falls back to the namespace's `default` Model; an agent on an execution engine needs none.
      ...(spec.modelRef !== undefined
        ? { model: { ref: ref(spec.modelRef, ctx) } }
        : spec.executionEngine === undefined
          ? { model: { ref: ref({ name: 'default' }, ctx) } }
          : {}),
      ...(spec.executionEngine === undefined ? {} : { executionEngine: ref(spec.executionEngine, ctx) }),
      tools,
      parameters: parameters(spec.parameters, `${path}.parameters`, ctx),
      ...(spec.outputSchema === undefined ? {} : { outputSchema: spec.outputSchema }),
      limits: {},
      ...(a2aServer === undefined && a2aAddress === undefined
        ? {}
        : {
            a2a: {
              ...(a2aServer === undefined ? {} : { serverName: a2aServer }),
              ...(a2aAddress === undefined ? {} : { address: a2aAddress }),
              ...(a2aSkills === undefined ? {} : { skills: a2aSkills }),
            },
          }),
    }
    return { spec: out }
  },
  toStatus: (status) => ({ conditions: conditionsAs(status, 'Available') }),
})
