/**
 * The built-in tools every agent can list by name: noop, terminate, calculator, and the task tools
 * (submit_subtask, get_subtask_result, delegate; tasks.ts).
 */
import type { BuiltinTool } from './tool.ts'
import { CalculatorError, evaluate } from './calculator.ts'
import { TASK_TOOLS } from './tasks.ts'

export const noop: BuiltinTool = {
  description: 'Does nothing and succeeds. Returns its message argument, if any.',
  inputSchema: { type: 'object', properties: { message: { type: 'string' } } },
  execute: (args) => ({ content: typeof args.message === 'string' ? args.message : 'ok' }),
}

export const terminate: BuiltinTool = {
  description:
    'Ends the task now. Call it when the work is done or cannot be done; its response is the final answer.',
  inputSchema: {
    type: 'object',
    properties: { response: { type: 'string', description: 'The final answer to return.' } },
  },
  execute: (args) => ({ content: typeof args.response === 'string' ? args.response : '', terminate: true }),
}

export const calculator: BuiltinTool = {
  description:
    'Evaluates an arithmetic expression exactly: + - * / % ^, parentheses, and functions such as sqrt, abs, round, min, max, log, sin.',
  inputSchema: {
    type: 'object',
    properties: { expression: { type: 'string', description: 'For example (2 + 3) * 4 / sqrt(16)' } },
    required: ['expression'],
    additionalProperties: false,
  },
  execute(args) {
    try {
      return { content: String(evaluate(String(args.expression))) }
    } catch (err) {
      if (err instanceof CalculatorError) return { content: err.message, isError: true }
      throw err
    }
  },
}

export const BUILTIN_TOOLS: Readonly<Record<string, BuiltinTool>> = {
  noop,
  terminate,
  calculator,
  ...TASK_TOOLS,
}
