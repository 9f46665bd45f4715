import { conditionsAs } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import { Conditions, Enum, Int, Obj, Opt, Str } from '../../schema.ts'
import { ARKONIS_GROUP } from '../group.ts'

export const ArkSettings = defineKind({
  group: ARKONIS_GROUP,
  version: 'v1alpha1',
  kind: 'ArkSettings',
  plural: 'arksettings',
  internal: 'Settings',
  shortNames: ['aoset'],
  crd: true,
  printerColumns: [
    { name: 'Memory', type: 'string', jsonPath: '.spec.memoryBackend' },
    { name: 'Output', type: 'string', jsonPath: '.spec.outputFormat' },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj({
      temperature: Opt(Str({ pattern: '^(0(\\.[0-9]+)?|1(\\.0+)?)$' })),
      outputFormat: Opt(Str({ description: 'e.g. `structured-json`.' })),
      memoryBackend: Opt(Enum(['in-context', 'vector-store', 'redis'], { default: 'in-context' })),
      promptFragments: Opt(
        Obj({
          persona: Opt(Str({ description: 'Prepended to the agent’s system prompt.' })),
          outputRules: Opt(Str({ description: 'Appended to the agent’s system prompt.' })),
        }),
      ),
    }),
    status: Opt(Obj({ observedGeneration: Opt(Int()), conditions: Opt(Conditions) })),
  }),
  adapt({ spec }) {
    const f = spec.promptFragments ?? {}
    return {
      spec: {
        ...(spec.temperature === undefined ? {} : { temperature: spec.temperature }),
        ...(spec.outputFormat === undefined ? {} : { outputFormat: spec.outputFormat }),
        memoryBackend: spec.memoryBackend ?? 'in-context',
        ...(f.persona === undefined ? {} : { persona: f.persona }),
        ...(f.outputRules === undefined ? {} : { outputRules: f.outputRules }),
      },
    }
  },
  toStatus: (status) => ({ conditions: conditionsAs(status, 'Ready') }),
})
