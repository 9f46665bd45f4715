import { conditionsAs } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import { Conditions, Enum, Int, Obj, Opt, Str, StringMap } from '../../schema.ts'
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
      temperature: Opt(
        Str({
          pattern: '^(0(\\.[0-9]+)?|1(\\.0+)?)$',
          description:
            'Sampling temperature (0 to 1), sent on every model call of the agents that reference these settings, unless their Model sets its own.',
        }),
      ),
      outputFormat: Opt(
        Str({
          description:
            '`structured-json` (or `json`): the answer is asked to be one JSON object (OpenAI-compatible models in JSON mode, others by the prompt); `markdown`, `plain`: the prompt asks for that format. Other values change nothing.',
        }),
      ),
      memoryBackend: Opt(Enum(['in-context', 'vector-store', 'redis'], { default: 'in-context' })),
      promptFragments: Opt(
        StringMap({
          description:
            'Named prompt fragments merged into the agent’s system prompt: `persona` before it, `outputRules` after everything else, other keys after the prompt in alphabetical order, each separated by a blank line.',
        }),
      ),
    }),
    status: Opt(Obj({ observedGeneration: Opt(Int()), conditions: Opt(Conditions) })),
  }),
  adapt({ spec }) {
    const f = spec.promptFragments ?? {}
    const { persona, outputRules } = f
    // ark-operator's order: persona, the prompt, the other fragments by name, outputRules last.
    const fragments = Object.keys(f)
      .filter((name) => name !== 'persona' && name !== 'outputRules' && f[name] !== '')
      .sort()
      .map((name) => ({ name, text: f[name] ?? '' }))
    return {
      spec: {
        ...(spec.temperature === undefined ? {} : { temperature: spec.temperature }),
        ...(spec.outputFormat === undefined ? {} : { outputFormat: spec.outputFormat }),
        memoryBackend: spec.memoryBackend ?? 'in-context',
        ...(persona === undefined || persona === '' ? {} : { persona }),
        ...(outputRules === undefined || outputRules === '' ? {} : { outputRules }),
        ...(fragments.length === 0 ? {} : { fragments }),
      },
    }
  },
  toStatus: (status) => ({ conditions: conditionsAs(status, 'Ready') }),
})
