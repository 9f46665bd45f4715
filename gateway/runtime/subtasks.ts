/**
 * The runtime's side of the task tools (tools/tasks.ts), one `RunTasks` per run: the subtasks the run queued
 * and their results, held in the process that runs it until the run ends (then what still runs is
 * cancelled), and delegation to the roles of the agent's teams. Subtasks go through the same queue as any
 * task, so in a distributed setup they run in whichever process serves the other agent's pool.
 */
import type { ObjectRef, TeamMember } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { Task, TaskResult } from './task.ts'
import { notRun, succeeded } from './task.ts'
import type { SubmittedTask, SubtaskState, TaskHost } from './tools/tool.ts'
import { TaskToolError } from './tools/tool.ts'

/** Agents calling agents calling agents: deeper than this is a loop, not a plan. */
export const MAX_DEPTH = 8

/** Subtasks one run may queue: a model that spawns without end would otherwise flood the pools. */
export const MAX_SUBTASKS = 32

/** Runs a task through its agent's pool and waits for the result. */
export type Submit = (task: Task, signal: AbortSignal) => Promise<TaskResult>

/** Puts a task in its agent's pool and resolves once the pool accepted it, the result still to come. */
export type Enqueue = (task: Task, signal: AbortSignal) => Promise<{ readonly result: Promise<TaskResult> }>

/** `<namespace>/<name>`: how the chain and the tools name an agent. */
export function agentKey(ref: ObjectRef): string {
  return `${ref.namespace}/${ref.name}`
}

/** A task for another agent on behalf of `parent`: one user message, one level deeper, the chain extended. */
export function childTask(parent: Task, agent: ObjectRef, input: string): Task {
  return {
    // Random, not counted: a task taken over after its worker died runs again, and its children must not
    // collide with those of the first attempt.
    id: `${parent.id}.${crypto.randomUUID().slice(0, 12)}`,
    agent,
    messages: [{ role: 'user', content: input }],
    parameters: parent.parameters,
    stream: false,
    depth: parent.depth + 1,
    chain: [...(parent.chain ?? []), agentKey(parent.agent)],
  }
}

/** Throws when a task at `depth` may not start another one. */
export function checkDepth(depth: number): void {
  if (depth + 1 >= MAX_DEPTH)
    throw new TaskToolError(`agents call agents more than ${String(MAX_DEPTH)} deep; do this part yourself`)
}

/** Where a role leads in one team. */
export interface DelegationTarget {
  readonly team: string
  readonly member: TeamMember
}

/**
 * The roles `agent` may delegate to, over every team of its namespace that has it as a member with
 * canDelegate: role name to where it leads in each of those teams.
 */
export function delegationRoles(
  catalog: Catalog,
  agent: ObjectRef,
): ReadonlyMap<string, readonly DelegationTarget[]> {
  const roles = new Map<string, DelegationTarget[]>()
  for (const team of catalog.list('Team')) {
    if (team.ref.namespace !== agent.namespace) continue
    for (const self of team.spec.members) {
      if (self.type !== 'agent' || self.canDelegate.length === 0) continue
      if (self.ref.name !== agent.name || self.ref.namespace !== agent.namespace) continue
      for (const role of self.canDelegate) {
        // The adapter refuses a canDelegate that names no role; there is nowhere to go.
        const member = team.spec.members.find((m) => m.name === role)
        if (member === undefined) continue
        let targets = roles.get(role)
        if (targets === undefined) roles.set(role, (targets = []))
        targets.push({ team: team.ref.name, member })
      }
    }
  }
  return roles
}

interface Subtask {
  readonly id: string
  readonly agent: string
  readonly result: Promise<TaskResult>
  settled?: TaskResult
}

export interface RunTasksOptions {
  readonly catalog: Catalog
  /** The task of the run these tools serve. */
  readonly parent: Task
  readonly submit: Submit | undefined
  /** Without it, `submit` queues subtasks (and a full pool shows in the subtask's result, not at once). */
  readonly enqueue: Enqueue | undefined
}

/** The task tools' host for one run. Nothing is allocated until a tool is called. */
export class RunTasks implements TaskHost {
  readonly #catalog: Catalog
  readonly #parent: Task
  readonly #submit: Submit | undefined
  readonly #enqueue: Enqueue | undefined
  #subtasks: Map<string, Subtask> | undefined
  /** Aborted when the run ends: subtasks outlive the tool call that queued them, not the run. */
  #ended: AbortController | undefined
  #count = 0

  constructor(options: RunTasksOptions) {
    this.#catalog = options.catalog
    this.#parent = options.parent
    this.#submit = options.submit
    this.#enqueue = options.enqueue
  }

  async submit(agent: string, input: string): Promise<SubmittedTask> {
    const parent = this.#parent
    checkDepth(parent.depth)
    const ref = this.#agentRef(agent)
    const key = agentKey(ref)
    if (this.#catalog.get('Agent', ref) === undefined)
      throw new TaskToolError(`there is no agent ${key}; name an agent of this installation`)
    const subtasks = (this.#subtasks ??= new Map())
    if (subtasks.size >= MAX_SUBTASKS) {
      throw new TaskToolError(
        `this task has already submitted ${String(MAX_SUBTASKS)} subtasks, as many as one task may; collect their results with get_subtask_result`,
      )
    }
    const enqueue = this.#enqueueOrSubmit()
    const ended = (this.#ended ??= new AbortController())
    const task = childTask(parent, ref, input)
    // Ids are short and counted: they only mean something to this run, and the model copies them.
    const id = `subtask-${String(++this.#count)}`
    let settle: (r: TaskResult) => void = ignore
    const entry: Subtask = { id, agent: key, result: new Promise<TaskResult>((r) => (settle = r)) }
    // Taken before the queue answers, so that calls of the same turn count against the bound.
    subtasks.set(id, entry)
    let admission: { readonly result: Promise<TaskResult> }
    try {
      admission = await enqueue(task, ended.signal)
    } catch (err) {
      subtasks.delete(id)
      throw err
    }
    admission.result.then(
      (r) => {
        entry.settled = r
        settle(r)
      },
      (err: unknown) => {
        const r = notRun(task, 'error', err instanceof Error ? err.message : String(err))
        entry.settled = r
        settle(r)
      },
    )
    return { id, agent: key }
  }

  async result(id: string, wait: boolean): Promise<SubtaskState> {
    const entry = this.#subtasks?.get(id)
    if (entry === undefined) {
      const known = [...(this.#subtasks?.keys() ?? [])]
      throw new TaskToolError(
        `there is no subtask "${id}" in this task; ${known.length === 0 ? 'it has submitted none' : `its subtasks are ${known.join(', ')}`}`,
      )
    }
    // The tool loop stops waiting when the run's signal fires; the subtask is cancelled when the run ends.
    const r = entry.settled ?? (wait ? await entry.result : undefined)
    if (r === undefined) return { id, agent: entry.agent, status: 'running' }
    return succeeded(r)
      ? { id, agent: entry.agent, status: 'succeeded', content: r.content ?? '' }
      : { id, agent: entry.agent, status: 'failed', error: r.error ?? `it ended with ${r.outcome}` }
  }

  async delegate(role: string, input: string, signal: AbortSignal): Promise<string> {
    const parent = this.#parent
    const self = parent.agent
    const roles = delegationRoles(this.#catalog, self)
    if (roles.size === 0)
      throw new TaskToolError(`${self.name} may not delegate: no team lets it (canDelegate of its role)`)
    const targets = roles.get(role)
    if (targets === undefined) {
      throw new TaskToolError(
        `${self.name} may not delegate to role "${role}"; it may delegate to: ${[...roles.keys()].sort().join(', ')}`,
      )
    }
    const [first] = targets
    if (first === undefined) throw new Error(`role ${role} leads nowhere`)
    const target = first.member
    if (
      targets.some((t) => t.member.type !== target.type || agentKey(t.member.ref) !== agentKey(target.ref))
    ) {
      throw new TaskToolError(
        `role "${role}" is ambiguous: ${targets.map((t) => `team ${t.team} gives it to ${t.member.type} ${t.member.ref.name}`).join(', ')}; the teams must agree on who plays it`,
      )
    }
    if (target.type === 'team')
      throw new TaskToolError(
        `role "${role}" of team ${first.team} is a team; delegate hands work to agents only`,
      )
    checkDepth(parent.depth)
    const chain = [...(parent.chain ?? []), agentKey(self)]
    const key = agentKey(target.ref)
    if (chain.includes(key)) {
      // Names alone where the whole chain is in the agent's namespace, which is the usual case.
      const local = [...chain, key].every((k) => k.startsWith(`${self.namespace}/`))
      const names = [...chain, key].map((k) => (local ? k.slice(self.namespace.length + 1) : k))
      throw new TaskToolError(`delegation cycle: ${names.join(' → ')}`)
    }
    if (this.#catalog.get('Agent', target.ref) === undefined)
      throw new TaskToolError(`role "${role}" of team ${first.team} is agent ${key}, which does not exist`)
    const submit = this.#submit
    if (submit === undefined) throw new Error('delegate needs a task queue, which this runtime lacks')
    const result = await submit(childTask(parent, target.ref, input), signal)
    if (!succeeded(result))
      throw new TaskToolError(
        `role "${role}" (agent ${target.ref.name}) failed: ${result.error ?? `it ended with ${result.outcome}`}`,
      )
    return result.content ?? ''
  }

  /** Cancels what still runs and drops the results: nobody can collect them once the run is over. */
  close(): void {
    this.#ended?.abort(new DOMException('the task that submitted it ended', 'AbortError'))
    this.#subtasks?.clear()
  }

  /** `name` in the caller's namespace, or `namespace/name`. */
  #agentRef(agent: string): ObjectRef {
    const parts = agent.trim().split('/')
    if (parts.length === 1 && parts[0] !== '')
      return { namespace: this.#parent.agent.namespace, name: parts[0] as string }
    if (parts.length === 2 && parts[0] !== '' && parts[1] !== '')
      return { namespace: parts[0] as string, name: parts[1] as string }
    throw new TaskToolError(`"${agent}" is not an agent name; use name or namespace/name`)
  }

  #enqueueOrSubmit(): Enqueue {
    if (this.#enqueue !== undefined) return this.#enqueue
    const submit = this.#submit
    if (submit === undefined) throw new Error('submit_subtask needs a task queue, which this runtime lacks')
    return (task, signal) => Promise.resolve({ result: submit(task, signal) })
  }
}

function ignore(): void {
  // Replaced before it can be called.
}
