/**
 * `ark run <file> [input]`: seed 003's local run. The team (or agent) a file declares runs in this process,
 * with the models it names (`--provider auto`: real where a key is set, the mock otherwise) or every model
 * answered by the mock (`--provider mock`: nothing leaves the process), printed as `ark query` prints a
 * query. `--dry-run` runs nothing: it checks the file, names what would run and estimates the input tokens of
 * each first model call (4 characters a token, as ark's own budget checks estimate them).
 */
import type { ObjectRef, QueryTarget } from '../controller/api/index.ts'
import { formatProblem, resourceKey } from '../controller/api/index.ts'
import type { Embedded } from './embedded.ts'
import type { QueryOptions } from './query.ts'
import { parseTarget, queryOn, startLocal } from './query.ts'
import { textTable } from './table.ts'

export interface RunOptions extends Omit<QueryOptions, 'manifests' | 'target' | 'withoutKey'> {
  readonly file: string
  /** What to run when the file declares several: as `ark query` names it. */
  readonly target?: string
  readonly provider: 'mock' | 'auto'
  readonly dryRun: boolean
}

export async function runFile(options: RunOptions): Promise<number> {
  const system = await startLocal(options.file, {
    withoutKey: 'mock',
    mockEverything: options.provider === 'mock',
    timeoutSeconds: options.timeoutSeconds,
    ...(options.log === undefined ? {} : { log: options.log }),
  })
  try {
    // A file that does not read (YAML, schema) does not run; warnings (unknown fields, other kinds) do not stop it.
    const errors = system.controlPlane.store.problems().filter((p) => p.severity === 'error')
    if (errors.length > 0) {
      for (const p of errors) options.err(`ark run: ${formatProblem(p)}\n`)
      return 1
    }
    const chosen = options.target === undefined ? onlyTarget(system) : parseTarget(options.target)
    if ('error' in chosen) {
      options.err(`ark run: ${chosen.error}\n`)
      return 2
    }
    if (options.dryRun) return await plan(system, chosen, options)
    return await queryOn(system, chosen, options)
  } finally {
    await system.close()
  }
}

/** The file's one team, else its one agent; or why neither can be picked. */
function onlyTarget(system: Embedded): { namespace: string; target: QueryTarget } | { error: string } {
  const { catalog } = system.controlPlane
  const teams = catalog.list('Team')
  const agents = catalog.list('Agent')
  const pick = (type: 'team' | 'agent', ref: ObjectRef) => ({
    namespace: ref.namespace,
    target: { type, name: ref.name },
  })
  const [team] = teams
  if (teams.length === 1 && team !== undefined) return pick('team', team.ref)
  const [agent] = agents
  if (teams.length === 0 && agents.length === 1 && agent !== undefined) return pick('agent', agent.ref)
  if (teams.length === 0 && agents.length === 0) return { error: 'the file declares no team or agent to run' }
  const names = [
    ...teams.map((t) => `team/${t.ref.namespace}/${t.ref.name}`),
    ...(teams.length > 0 ? [] : agents.map((a) => `agent/${a.ref.namespace}/${a.ref.name}`)),
  ]
  return { error: `the file declares several: ${names.join(', ')}; say which with --target` }
}

/** What would run, and the input tokens of each agent's first model call. */
async function plan(
  system: Embedded,
  { namespace, target }: { readonly namespace: string; readonly target: QueryTarget },
  options: RunOptions,
): Promise<number> {
  const { catalog } = system.controlPlane
  const ref = { namespace, name: target.name }
  const agents: ObjectRef[] = []
  let head: string
  if (target.type === 'team') {
    const team = catalog.get('Team', ref)
    if (team === undefined) return missing(options, `team ${namespace}/${target.name}`)
    head = `team/${namespace}/${target.name} (${team.spec.strategy}, ${String(team.spec.members.length)} members)`
    for (const m of team.spec.members) if (m.type === 'agent') agents.push(m.ref)
  } else if (target.type === 'agent') {
    if (catalog.get('Agent', ref) === undefined) return missing(options, `agent ${namespace}/${target.name}`)
    head = `agent/${namespace}/${target.name}`
    agents.push(ref)
  } else {
    options.err(`ark run: --dry-run plans teams and agents, not ${target.type}s\n`)
    return 2
  }
  const rows: string[][] = [['AGENT', 'MODEL', 'TOOLS', 'AVAILABLE', 'FIRST CALL ~TOKENS']]
  let total = 0
  let unavailable = 0
  for (const a of agents) {
    const agent = catalog.get('Agent', a)
    if (agent === undefined) {
      rows.push([a.name, '-', '-', 'False (not found)', '-'])
      unavailable++
      continue
    }
    const available = catalog.available(resourceKey('Agent', a.namespace, a.name))
    const ok = available?.status !== 'False'
    if (!ok) unavailable++
    let tokens: string
    try {
      const prepared = await system.gateway.runtime.prepare(agent)
      const prompt = prepared.systemMessage(options.parameters)
      const promptText =
        typeof prompt?.content === 'string' ? prompt.content : JSON.stringify(prompt?.content ?? '')
      const chars = promptText.length + options.input.length + JSON.stringify(prepared.toolDefinitions).length
      const estimate = Math.ceil(chars / 4)
      total += estimate
      tokens = String(estimate)
    } catch (err) {
      tokens = `- (${err instanceof Error ? err.message.slice(0, 80) : 'cannot prepare'})`
    }
    rows.push([
      a.name,
      agent.spec.model === undefined
        ? 'default'
        : 'ref' in agent.spec.model
          ? agent.spec.model.ref.name
          : agent.spec.model.id,
      String(agent.spec.tools.length),
      available === undefined || ok ? 'True' : `False (${available.reason})`,
      tokens,
    ])
  }
  let text = `Would run:  ${head}\nInput:      ${options.input.replace(/\s+/g, ' ').trim().slice(0, 100)}\nProvider:   ${options.provider}\n\n`
  text += `${textTable(rows)}\n`
  text += `\nAbout ${String(total)} input tokens in the first call of each agent (4 characters a token; later calls add answers and tool results). Nothing was run.\n`
  options.out(text)
  return unavailable > 0 ? 1 : 0
}

function missing(options: RunOptions, what: string): number {
  options.err(`ark run: ${what} is not in the file\n`)
  return 1
}
