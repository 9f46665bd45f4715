import { describe, expect, it } from 'vitest'
import { decodeYaml } from '../../test/manifests.ts'
import { decodeDocument, formatProblem } from './index.ts'

/** Decodes one document and returns its problems, formatted as a user sees them. */
function problems(yaml: string): string[] {
  return decodeYaml(yaml).problems.map(formatProblem)
}

describe('bad manifests get specific, located errors', () => {
  it('replicas out of range', () => {
    expect(
      problems(`
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: big }
spec: { replicas: 51, model: gpt-4o, systemPrompt: hi }
`),
    ).toEqual(['inline.yaml (document 1) ArkAgent default/big: spec.replicas: must be <= 50, got 51'])
  })

  it('wrong types and missing required fields, each at its path', () => {
    expect(
      problems(`
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: typed }
spec:
  systemPrompt: hi
  limits: { timeoutSeconds: "soon" }
  tools: [{ name: t, url: "ftp://x", method: FETCH }]
`),
    ).toEqual([
      'inline.yaml (document 1) ArkAgent default/typed: spec.model: is required',
      'inline.yaml (document 1) ArkAgent default/typed: spec.tools[0].url: must be an http:// or https:// URL, got "ftp://x"',
      'inline.yaml (document 1) ArkAgent default/typed: spec.tools[0].method: must be one of "GET", "POST", "PUT", "PATCH", got "FETCH"',
      'inline.yaml (document 1) ArkAgent default/typed: spec.limits.timeoutSeconds: must be an integer, got "soon"',
    ])
  })

  it('unknown apiVersion and kind say what exists', () => {
    expect(problems('apiVersion: ark.mckinsey.com/v1\nkind: Agent\nmetadata: { name: a }\n')).toEqual([
      'inline.yaml (document 1) Agent a: apiVersion: apiVersion ark.mckinsey.com/v1 does not serve Agent; use ark.mckinsey.com/v1alpha1',
    ])
    expect(problems('apiVersion: arkonis.dev/v1alpha1\nkind: ArkAgnet\nmetadata: { name: a }\n')).toEqual([
      'inline.yaml (document 1) ArkAgnet a: kind: kind ArkAgnet is not part of arkonis.dev/v1alpha1; it has ArkAgent, ArkService, ArkTeam, ArkSettings, ArkMemory',
    ])
    expect(problems('apiVersion: ark.mckinsey.com/v9\nkind: Widget\nmetadata: { name: a }\n')).toEqual([
      'inline.yaml (document 1) Widget a: apiVersion: unknown apiVersion ark.mckinsey.com/v9',
    ])
  })

  it('kinds of other systems are ignored with a warning, not an error', () => {
    const d = decodeYaml('apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\n')
    expect(d.problems.map((p) => [p.severity, p.message])).toEqual([
      ['warning', 'apps/v1 Deployment is not a kind ark reads; ignored'],
    ])
  })

  it('unknown fields are warnings and the resource still loads', () => {
    const d = decodeYaml(`
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: typo }
spec: { prompt: hi, promt: hello }
`)
    expect(d.resources.map((r) => r.key)).toEqual(['Agent/default/typo'])
    expect(d.problems.map(formatProblem)).toEqual([
      'inline.yaml (document 1) Agent default/typo: spec.promt: unknown field, ignored',
    ])
  })

  it('metadata: invalid names and a missing name', () => {
    expect(problems('apiVersion: v1\nkind: ConfigMap\nmetadata: { name: Bad_Name }\n')).toEqual([
      'inline.yaml (document 1) ConfigMap default/Bad_Name: metadata.name: must be a lowercase RFC 1123 name: letters, digits and -, starting and ending with a letter or digit, got "Bad_Name"',
    ])
    expect(problems('apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n')).toEqual([
      'inline.yaml (document 1) ConfigMap: metadata.name: is required',
    ])
    expect(problems('apiVersion: v1\nkind: ConfigMap\n')).toEqual([
      'inline.yaml (document 1) ConfigMap: metadata: is required',
    ])
  })

  it('not a mapping, or no apiVersion', () => {
    expect(problems('- a\n- b\n')).toEqual([
      'inline.yaml (document 1): a manifest must be a mapping with apiVersion, kind and metadata',
    ])
    expect(problems('kind: Agent\nmetadata: { name: x }\n')).toEqual([
      'inline.yaml (document 1) x: apiVersion: is required',
    ])
  })

  it('cross-field rules: value vs valueFrom, tool type blocks, team graph, webhook inputSchema JSON', () => {
    expect(
      problems(`
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: p }
spec:
  parameters:
    - { name: a, value: x, valueFrom: { configMapKeyRef: { name: c, key: k } } }
    - { name: b }
    - { name: b, valueFrom: { configMapKeyRef: { name: c, key: k }, secretKeyRef: { name: s, key: k } } }
`),
    ).toEqual([
      'inline.yaml (document 1) Agent default/p: spec.parameters[0]: sets both value and valueFrom; set one',
      'inline.yaml (document 1) Agent default/p: spec.parameters[1]: must set value or valueFrom',
      'inline.yaml (document 1) Agent default/p: spec.parameters[2].name: duplicate name "b"',
      'inline.yaml (document 1) Agent default/p: spec.parameters[2].valueFrom: sets configMapKeyRef and secretKeyRef; set exactly one',
    ])
    expect(
      problems(`
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: t }
spec: { type: http, mcp: { mcpServerRef: { name: m }, toolName: x } }
`),
    ).toEqual([
      'inline.yaml (document 1) Tool default/t: spec.mcp: is set but type is http; remove it',
      'inline.yaml (document 1) Tool default/t: spec.http: is required for type http',
    ])
    expect(
      problems(`
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: g }
spec:
  strategy: graph
  members: [{ name: a, type: agent }]
  graph: { edges: [{ from: a, to: b }] }
`),
    ).toEqual([
      'inline.yaml (document 1) Team default/g: spec.graph.edges[0].to: "b" is not a member of the team',
    ])
    expect(
      problems(`
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: w }
spec:
  model: gpt-4o
  tools: [{ name: t, url: "http://x", inputSchema: "{not json" }]
`),
    ).toEqual([
      'inline.yaml (document 1) ArkAgent default/w: spec.systemPrompt: is required: set systemPrompt or systemPromptRef',
      expect.stringMatching(
        /^inline\.yaml \(document 1\) ArkAgent default\/w: spec\.tools\[0\]\.inputSchema: is not valid JSON: /,
      ),
    ])
  })

  it('ArkTeam pipelines: a cycle, a step read before it ran, a wait for a role with no step, a role twice', () => {
    const team = (pipeline: string, output = '') => `apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: t }
spec:
  roles: [{ name: a, arkAgent: x }, { name: b, arkAgent: y }, { name: c, arkAgent: z }]
  pipeline:
${pipeline}${output}
`
    expect(problems(team('    - { role: a, dependsOn: [b] }\n    - { role: b, dependsOn: [a] }'))).toEqual([
      'inline.yaml (document 1) ArkTeam default/t: spec.pipeline: the steps\' dependsOn form a cycle through "a": the pipeline could never finish',
    ])
    expect(
      problems(
        team(
          '    - { role: a }\n    - { role: b, inputs: { prompt: "{{ .steps.a.output }} {{ .steps.c.output }}" } }',
          '\n  output: "{{ .steps.nope.output }}"',
        ),
      ),
    ).toEqual([
      'inline.yaml (document 1) ArkTeam default/t: spec.pipeline[1].inputs.prompt: reads steps.a, which step "b" does not depend on: add "a" to its dependsOn',
      'inline.yaml (document 1) ArkTeam default/t: spec.pipeline[1].inputs.prompt: reads steps.c, but no step has role "c"',
      'inline.yaml (document 1) ArkTeam default/t: spec.output: reads steps.nope, but no step has role "nope"',
    ])
    expect(problems(team('    - { role: a, dependsOn: [c] }\n    - { role: a }'))).toEqual([
      'inline.yaml (document 1) ArkTeam default/t: spec.pipeline[1].role: role "a" has a step already',
      'inline.yaml (document 1) ArkTeam default/t: spec.pipeline[0].dependsOn[0]: role "c" has no step in the pipeline to wait for',
    ])
  })

  it('a Secret error names the key, never the value', () => {
    const out = problems(`
apiVersion: v1
kind: Secret
metadata: { name: s }
data: { token: "not base64 at all!!", n: 12345 }
`)
    expect(out.join('\n')).not.toContain('not base64 at all')
    expect(out.join('\n')).not.toContain('12345')
    expect(out).toEqual(['inline.yaml (document 1) Secret default/s: data.n: must be a string'])
  })

  it('a kubectl List is expanded, problems point into items[]', () => {
    const d = decodeDocument({
      value: {
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } },
          { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'b' }, data: { k: 1 } },
        ],
      },
      file: 'list.json',
      index: 0,
    })
    expect(d.resources.map((r) => r.key)).toEqual(['ConfigMap/default/a'])
    expect(d.problems.map(formatProblem)).toEqual([
      'list.json (document 1) ConfigMap default/b: items[1].data.k: must be a string, got 1',
    ])
  })
})
