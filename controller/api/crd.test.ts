import { readFileSync, readdirSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { KIND_DEFS, generateCrds } from './index.ts'

const DIR = 'deploy/crds'

describe('CRDs are generated from the schemas', () => {
  it('the committed deploy/crds match the schemas (run `npm run crds` after changing a schema)', () => {
    const generated = generateCrds()
    expect(readdirSync(DIR).sort()).toEqual(generated.map((f) => f.file).sort())
    for (const f of generated) expect(readFileSync(`${DIR}/${f.file}`, 'utf8'), f.file).toBe(f.content)
  })

  it('every schema is structural, as the apiserver requires', () => {
    const problems: string[] = []
    const walk = (node: unknown, path: string) => {
      if (typeof node !== 'object' || node === null) return
      const s = node as Record<string, unknown>
      const free =
        s['x-kubernetes-preserve-unknown-fields'] === true || s['x-kubernetes-int-or-string'] === true
      if (s.type === undefined && !free) problems.push(`${path}: no type`)
      for (const banned of ['anyOf', 'oneOf', 'patternProperties', '$ref', '$id']) {
        if (banned in s) problems.push(`${path}: ${banned}`)
      }
      if (s.additionalProperties === false) problems.push(`${path}: additionalProperties false`)
      if (s.properties !== undefined && typeof s.additionalProperties === 'object') {
        problems.push(`${path}: properties with additionalProperties`)
      }
      for (const [k, v] of Object.entries((s.properties as Record<string, unknown> | undefined) ?? {}))
        walk(v, `${path}.${k}`)
      if (s.items !== undefined) walk(s.items, `${path}[]`)
      if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${path}{}`)
    }
    for (const f of generateCrds().filter((x) => x.file !== 'kustomization.yaml')) {
      const crd = parse(f.content) as { spec: { versions: { schema: { openAPIV3Schema: unknown } }[] } }
      for (const v of crd.spec.versions) walk(v.schema.openAPIV3Schema, f.file)
    }
    expect(problems).toEqual([])
  })

  it('short names are unique and shadow none of kubectl’s built-in ones (test/kube-crds.test.ts checks a server)', () => {
    // kubectl's own: core, apps, batch, networking, policy, scheduling, storage, apiextensions.
    const BUILT_IN =
      'cm cs csr cj crd crds ds deploy ep eps ev hpa ing limits netpol no ns pc pdb po psp pv pvc quota rc rs sa sc sts svc'
    const builtIn = new Set(BUILT_IN.split(' '))
    const names = KIND_DEFS.filter((d) => d.crd).flatMap((d) => d.shortNames ?? [])
    expect(names.filter((n) => builtIn.has(n))).toEqual([])
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([])
  })

  it('ArkAgent keeps seed 003’s bounds and defaults, and the scale subresource', () => {
    const f = generateCrds().find((x) => x.file === 'arkonis.dev_arkagents.yaml')!
    const crd = parse(f.content) as {
      spec: {
        versions: {
          subresources: unknown
          schema: {
            openAPIV3Schema: { properties: { spec: { properties: Record<string, Record<string, unknown>> } } }
          }
        }[]
      }
    }
    const v = crd.spec.versions[0]!
    const spec = v.schema.openAPIV3Schema.properties.spec.properties
    expect(spec.replicas).toMatchObject({ type: 'integer', minimum: 0, maximum: 50, default: 1 })
    expect((spec.limits as { properties: Record<string, unknown> }).properties).toMatchObject({
      maxTokensPerCall: { default: 8000 },
      maxConcurrentTasks: { default: 5 },
      timeoutSeconds: { default: 120 },
    })
    expect(v.subresources).toEqual({
      status: {},
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' },
    })
  })
})
