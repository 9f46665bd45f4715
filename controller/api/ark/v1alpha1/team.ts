import { conditionsAs, ref } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import type { TeamMember, TeamSpec } from '../../resources.ts'
import { Bool, Conditions, Enum, Int, List, Name, Obj, Opt, Str } from '../../schema.ts'
import { ARK_GROUP } from '../group.ts'

export const Team = defineKind({
  group: ARK_GROUP,
  version: 'v1alpha1',
  kind: 'Team',
  plural: 'teams',
  internal: 'Team',
  crd: true,
  printerColumns: [
    { name: 'Strategy', type: 'string', jsonPath: '.spec.strategy' },
    { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status' },
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
        description: Opt(Str()),
        members: List(Obj({ name: Name(), type: Enum(['agent', 'team']) }), { minItems: 1 }),
        strategy: Enum(['sequential', 'round-robin', 'selector', 'graph']),
        loops: Opt(Bool({ default: false, description: 'Start over after the last member until maxTurns.' })),
        maxTurns: Opt(Int({ minimum: 1 })),
        selector: Opt(
          Obj({
            agent: Opt(Name('Agent that picks the next member.')),
            selectorPrompt: Opt(Str()),
            enableTerminateTool: Opt(Bool()),
            terminatePrompt: Opt(Str()),
          }),
        ),
        graph: Opt(Obj({ edges: List(Obj({ from: Name(), to: Name() })) })),
      },
      { required: ['members', 'strategy'] },
    ),
    status: Opt(Obj({ conditions: Opt(Conditions) })),
  }),
  adapt({ spec }, ctx) {
    const members: TeamMember[] = []
    const names = new Set<string>()
    spec.members.forEach((m, i) => {
      if (names.has(m.name)) ctx.error(`spec.members[${i}].name`, `"${m.name}" is listed twice`)
      names.add(m.name)
      members.push({ name: m.name, type: m.type, ref: ref({ name: m.name }, ctx), canDelegate: [] })
    })
    if (spec.strategy === 'graph') {
      if (spec.graph === undefined) ctx.error('spec.graph', 'is required for strategy graph')
      spec.graph?.edges.forEach((e, i) => {
        for (const end of ['from', 'to'] as const) {
          if (!names.has(e[end]))
            ctx.error(`spec.graph.edges[${i}].${end}`, `"${e[end]}" is not a member of the team`)
        }
      })
    }
    if (spec.strategy === 'selector' && spec.selector?.agent === undefined) {
      ctx.error(
        'spec.selector.agent',
        'is required for strategy selector: the agent that picks the next member',
      )
    }
    if (spec.loops === true && spec.maxTurns === undefined) {
      ctx.error('spec.maxTurns', 'is required when loops is true, or the team would never stop')
    }
    const out: TeamSpec = {
      ...(spec.description === undefined ? {} : { description: spec.description }),
      members,
      strategy: spec.strategy,
      ...(spec.maxTurns === undefined ? {} : { maxTurns: spec.maxTurns }),
      loops: spec.loops ?? false,
      ...(spec.selector === undefined
        ? {}
        : {
            selector: {
              ...(spec.selector.agent === undefined ? {} : { agent: spec.selector.agent }),
              ...(spec.selector.selectorPrompt === undefined
                ? {}
                : { selectorPrompt: spec.selector.selectorPrompt }),
              enableTerminateTool: spec.selector.enableTerminateTool ?? false,
              ...(spec.selector.terminatePrompt === undefined
                ? {}
                : { terminatePrompt: spec.selector.terminatePrompt }),
            },
          }),
      ...(spec.graph === undefined ? {} : { graph: { edges: spec.graph.edges.map((e) => ({ ...e })) } }),
      pipeline: [],
    }
    return { spec: out }
  },
  toStatus: (status) => ({ conditions: conditionsAs(status, 'Available') }),
})
