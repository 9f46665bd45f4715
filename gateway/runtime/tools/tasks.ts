/**
 * The task tools of seed 003 ("Built-in tools"): `submit_subtask` queues work for another agent and returns at
 * once (supervisor/worker patterns), `get_subtask_result` collects it, and `delegate` hands work to a team role
 * and waits for the answer. The runtime does the work (ToolContext.tasks); these only speak to the model.
 */
import type { BuiltinTool, TaskHost, ToolContext, ToolResult } from './tool.ts'
import { TaskToolError } from './tool.ts'

export const submitSubtask: BuiltinTool = {
  description:
    'Starts a task for another agent and returns its id at once, without waiting for it; collect the answer later with get_subtask_result. Start several to have agents work in parallel.',
  inputSchema: {
    type: 'object',
    properties: {
      agent: {
        type: 'string',
        minLength: 1,
        description: 'The agent to run it: its name, or namespace/name for one in another namespace.',
      },
      input: { type: 'string', description: 'The task for the agent, in plain words.' },
    },
    required: ['agent', 'input'],
    additionalProperties: false,
  },
  execute: (args, context) =>
    withTasks('submit_subtask', context, async (tasks) => {
      const s = await tasks.submit(String(args.agent), String(args.input))
      return { content: JSON.stringify({ id: s.id, agent: s.agent, status: 'submitted' }) }
    }),
}

export const getSubtaskResult: BuiltinTool = {
  description:
    'The answer of a task started with submit_subtask: status "succeeded" with its content, "failed" with the error, or "running". Waits for the task to end unless wait is false.',
  inputSchema: {
    type: 'object',
    properties: {
      id: { type: 'string', minLength: 1, description: 'The id submit_subtask returned.' },
      wait: {
        type: 'boolean',
        description: 'Wait for the task to end (default true); false answers at once, maybe "running".',
      },
    },
    required: ['id'],
    additionalProperties: false,
  },
  execute: (args, context) =>
    withTasks('get_subtask_result', context, async (tasks) => {
      const state = await tasks.result(String(args.id), args.wait !== false, context.signal)
      // A failed subtask is an answer about the subtask, not a failure of this call.
      return { content: JSON.stringify(state) }
    }),
}

export const delegate: BuiltinTool = {
  description:
    'Hands a task to another role of your team and returns that agent’s answer. Only the roles your team lets you delegate to can take it.',
  inputSchema: {
    type: 'object',
    properties: {
      role: { type: 'string', minLength: 1, description: 'The team role to hand the task to.' },
      input: { type: 'string', description: 'The task for that role, in plain words.' },
    },
    required: ['role', 'input'],
    additionalProperties: false,
  },
  execute: (args, context) =>
    withTasks('delegate', context, async (tasks) => ({
      content: await tasks.delegate(String(args.role), String(args.input), context.signal),
    })),
}

export const TASK_TOOLS: Readonly<Record<string, BuiltinTool>> = {
  submit_subtask: submitSubtask,
  get_subtask_result: getSubtaskResult,
  delegate,
}

/** A refusal is the model's to act on, so it comes back as a tool error rather than a failure. */
async function withTasks(
  name: string,
  context: ToolContext,
  work: (tasks: TaskHost) => Promise<ToolResult>,
): Promise<ToolResult> {
  if (context.tasks === undefined)
    return { content: `error: ${name} needs a task queue, which this runtime lacks`, isError: true }
  try {
    return await work(context.tasks)
  } catch (err) {
    if (err instanceof TaskToolError) return { content: `error: ${err.message}`, isError: true }
    throw err
  }
}
