import { conditionsAs, localRef } from '../../adapt.ts'
import { defineKind } from '../../define.ts'
import type { AdaptContext, Generated } from '../../define.ts'
import type { JsonSchema, PipelineStep, TeamMember, TurnLimits } from '../../resources.ts'
import { Conditions, Int, List, Name, Obj, Opt, Str, StringMap } from '../../schema.ts'
import { ARKONIS_GROUP } from '../group.ts'
import { AgentFields, adaptAgentFields } from './shared.ts'

const { model, ...optionalAgentFields } = AgentFields

/** A role is an existing ArkAgent (`arkAgent`), another team (`arkTeam`), or an agent defined inline. */
const Role = Obj(
  {
    name: Name(),
    arkAgent: Opt(Name()),
    arkTeam: Opt(Name()),
    model: Opt(model),
    ...optionalAgentFields,
    replicas: Opt(Int({ minimum: 0, maximum: 50 })),
    canDelegate: Opt(
      List(Name(), { description: 'Roles this role may hand work to with the `delegate` tool.' }),
    ),
  },
  { required: ['name'] },
)

const Step = Obj(
  {
    role: Name(),
    dependsOn: Opt(List(Name())),
    inputs: Opt(StringMap({ description: 'Templates, e.g. `{{ .steps.research.output }}`.' })),
    outputSchema: Opt(Str({ description: 'JSON Schema of the step output, as a JSON string.' })),
  },
  { required: ['role'] },
)

export const ArkTeam = defineKind({
  group: ARKONIS_GROUP,
  version: 'v1alpha1',
  kind: 'ArkTeam',
  plural: 'arkteams',
  internal: 'Team',
  shortNames: ['aoteam'],
  crd: true,
  printerColumns: [
    { name: 'Entry', type: 'string', jsonPath: '.spec.entry' },
    { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  body: Obj({
    spec: Obj(
      {
        roles: List(Role, { minItems: 1 }),
        entry: Opt(Name('Role that receives inbound tasks (dynamic mode).')),
        pipeline: Opt(List(Step)),
        output: Opt(Str({ description: 'Template of the team result.' })),
        timeoutSeconds: Opt(Int({ minimum: 1 })),
        maxTokens: Opt(Int({ minimum: 1 })),
      },
      { required: ['roles'] },
    ),
    status: Opt(Obj({ observedGeneration: Opt(Int()), conditions: Opt(Conditions) })),
  }),
  adapt({ spec }, ctx) {
    const members: TeamMember[] = []
    const generated: Generated<'Agent'>[] = []
    const roleNames = new Set(spec.roles.map((r) => r.name))
    const seen = new Set<string>()
    spec.roles.forEach((r, i) => {
      const at = `spec.roles[${i}]`
      if (seen.has(r.name)) ctx.error(`${at}.name`, `role "${r.name}" is defined twice`)
      seen.add(r.name)
      for (const [j, d] of (r.canDelegate ?? []).entries()) {
        if (!roleNames.has(d)) ctx.error(`${at}.canDelegate[${j}]`, `"${d}" is not a role of this team`)
      }
      const canDelegate = r.canDelegate ?? []
      // A role that names an existing agent may still bound its turns (limits); an inline role's limits are its
      // agent's own.
      const turn: TurnLimits = {
        ...(r.limits?.timeoutSeconds === undefined ? {} : { timeoutSeconds: r.limits.timeoutSeconds }),
        ...(r.limits?.maxTokensPerCall === undefined ? {} : { maxTokensPerCall: r.limits.maxTokensPerCall }),
      }
      const limits = Object.keys(turn).length === 0 ? {} : { limits: turn }
      const kinds = [r.arkAgent, r.arkTeam, r.model].filter((v) => v !== undefined).length
      if (kinds !== 1) {
        ctx.error(
          at,
          'must set exactly one of arkAgent (an existing agent), arkTeam, or model (an inline agent)',
        )
      } else if (r.arkAgent !== undefined) {
        members.push({ name: r.name, type: 'agent', ref: localRef(r.arkAgent, ctx), canDelegate, ...limits })
      } else if (r.arkTeam !== undefined) {
        members.push({ name: r.name, type: 'team', ref: localRef(r.arkTeam, ctx), canDelegate })
      } else if (r.model !== undefined) {
        // As ark-operator does, an inline role becomes an agent of its own, named <team>-<role>.
        const ref = localRef(`${ctx.name}-${r.name}`, ctx)
        const agent = adaptAgentFields({ ...r, model: r.model }, at, ctx)
        generated.push({ kind: 'Agent', ref, spec: { ...agent, replicas: r.replicas ?? 1 } })
        members.push({ name: r.name, type: 'agent', ref, canDelegate })
      }
    })

    const pipeline: PipelineStep[] = (spec.pipeline ?? []).map((s, i) => {
      const at = `spec.pipeline[${i}]`
      if (!roleNames.has(s.role)) ctx.error(`${at}.role`, `"${s.role}" is not a role of this team`)
      for (const [j, d] of (s.dependsOn ?? []).entries()) {
        if (!roleNames.has(d)) ctx.error(`${at}.dependsOn[${j}]`, `"${d}" is not a role of this team`)
      }
      let outputSchema: JsonSchema | undefined
      if (s.outputSchema !== undefined) {
        try {
          outputSchema = JSON.parse(s.outputSchema) as JsonSchema
        } catch (err) {
          ctx.error(`${at}.outputSchema`, `is not valid JSON: ${(err as Error).message}`)
        }
      }
      return {
        member: s.role,
        dependsOn: s.dependsOn ?? [],
        inputs: s.inputs ?? {},
        ...(outputSchema === undefined ? {} : { outputSchema }),
      }
    })
    checkPipeline(pipeline, spec.output, roleNames, ctx)
    const dynamic = pipeline.length === 0
    if (dynamic && spec.entry === undefined)
      ctx.error('spec.entry', 'is required without a pipeline: which role takes tasks?')
    if (spec.entry !== undefined && !roleNames.has(spec.entry)) {
      ctx.error('spec.entry', `"${spec.entry}" is not a role of this team`)
    }
    return {
      spec: {
        members,
        strategy: dynamic ? 'dynamic' : 'pipeline',
        loops: false,
        ...(spec.entry === undefined ? {} : { entry: spec.entry }),
        pipeline,
        ...(spec.output === undefined ? {} : { output: spec.output }),
        ...(spec.timeoutSeconds === undefined ? {} : { timeoutSeconds: spec.timeoutSeconds }),
        ...(spec.maxTokens === undefined ? {} : { maxTokens: spec.maxTokens }),
      },
      generated,
    }
  },
  toStatus: (status) => ({ conditions: conditionsAs(status, 'Available') }),
})

/** `{{ .steps.<role>...}}` in a pipeline template: the step it reads. */
const STEP_REFERENCE = /\{\{\s*\.steps\.([A-Za-z_][\w-]*)[\w.-]*\s*\}\}/g

/**
 * What would make a pipeline never finish or read nothing: a role with two steps (a step is named by its
 * role), a cycle of dependsOn, and a template reading a step that has not run by then (one its step does not
 * depend on, directly or not) or that does not exist.
 */
function checkPipeline(
  pipeline: readonly PipelineStep[],
  output: string | undefined,
  roles: ReadonlySet<string>,
  ctx: AdaptContext,
): void {
  const steps = new Map<string, PipelineStep>()
  pipeline.forEach((s, i) => {
    if (steps.has(s.member)) ctx.error(`spec.pipeline[${i}].role`, `role "${s.member}" has a step already`)
    steps.set(s.member, s)
  })
  pipeline.forEach((s, i) => {
    s.dependsOn.forEach((d, j) => {
      // A role with no step would never be done: the step waiting for it would never start.
      if (!steps.has(d) && roles.has(d))
        ctx.error(
          `spec.pipeline[${i}].dependsOn[${j}]`,
          `role "${d}" has no step in the pipeline to wait for`,
        )
    })
  })
  // Ancestors of each step, found depth-first; a step met again on its own path is a cycle.
  const ancestors = new Map<string, Set<string>>()
  const visiting = new Set<string>()
  let cycle: string | undefined
  const visit = (role: string): Set<string> => {
    const known = ancestors.get(role)
    if (known !== undefined) return known
    const out = new Set<string>()
    if (visiting.has(role)) {
      cycle ??= role
      return out
    }
    visiting.add(role)
    for (const d of steps.get(role)?.dependsOn ?? []) {
      out.add(d)
      for (const a of visit(d)) out.add(a)
    }
    visiting.delete(role)
    ancestors.set(role, out)
    return out
  }
  for (const role of steps.keys()) visit(role)
  if (cycle !== undefined) {
    ctx.error(
      'spec.pipeline',
      `the steps' dependsOn form a cycle through "${cycle}": the pipeline could never finish`,
    )
    return
  }
  pipeline.forEach((s, i) => {
    const before = ancestors.get(s.member) ?? new Set<string>()
    for (const [key, template] of Object.entries(s.inputs)) {
      for (const m of template.matchAll(STEP_REFERENCE)) {
        const role = m[1] ?? ''
        if (!steps.has(role))
          ctx.error(
            `spec.pipeline[${i}].inputs.${key}`,
            `reads steps.${role}, but no step has role "${role}"`,
          )
        else if (!before.has(role))
          ctx.error(
            `spec.pipeline[${i}].inputs.${key}`,
            `reads steps.${role}, which step "${s.member}" does not depend on: add "${role}" to its dependsOn`,
          )
      }
    }
  })
  for (const m of (output ?? '').matchAll(STEP_REFERENCE)) {
    const role = m[1] ?? ''
    if (!steps.has(role)) ctx.error('spec.output', `reads steps.${role}, but no step has role "${role}"`)
  }
}
