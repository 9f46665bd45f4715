/**
 * toolloop: the tool loop alone (gateway/runtime/loop.ts), in process. A provider answers with one call of
 * the `noop` tool per turn, then with text; the loop runs it with the real argument validation, events and
 * bookkeeping. The baseline does the same work by hand: the same provider calls, JSON.parse, validator and
 * tool, appending the same messages, with none of the loop's machinery. Loop minus baseline is the loop's
 * own cost per iteration.
 */
import type { ChatMessage, LoopAgent, Provider } from '../../gateway/index.ts'
import { BUILTIN_TOOLS, runLoop } from '../../gateway/index.ts'
import { compileJsonSchema } from '../../gateway/runtime/schema.ts'
import type { Completion, CompletionRequest } from '../../gateway/runtime/provider.ts'
import type { PreparedTool } from '../../gateway/runtime/tools/tool.ts'
import type { GateSession, Measure, RunContext, Scenario } from '../lib/scenario.ts'
import { median } from '../lib/stats.ts'

/** Tool-calling turns per run; the answer comes on turn ITERATIONS + 1. */
const ITERATIONS = 20
const USAGE = { promptTokens: 12, completionTokens: 3, totalTokens: 15 }

const noop = BUILTIN_TOOLS.noop
if (noop === undefined) throw new Error('the noop built-in is missing')
const tool: PreparedTool = {
  name: 'noop',
  definition: {
    type: 'function',
    function: { name: 'noop', description: noop.description, parameters: noop.inputSchema },
  },
  validator: compileJsonSchema(noop.inputSchema),
  execute: (args, context) => noop.execute(args, context),
}
const agent: LoopAgent = {
  id: 'agent/bench',
  tools: new Map([['noop', tool]]),
  toolDefinitions: [tool.definition],
  maxIterations: ITERATIONS + 1,
}

/** Calls noop until the conversation holds ITERATIONS tool results, then answers. */
function scriptedProvider(): Provider {
  let call = 0
  return {
    provider: 'mock',
    model: 'bench',
    probe: () => Promise.resolve(),
    complete(request: CompletionRequest): Promise<Completion> {
      call++
      const last = request.messages.at(-1)
      const done = last?.role === 'tool' && request.messages.length > ITERATIONS * 2
      return Promise.resolve(
        done
          ? { message: { role: 'assistant', content: 'done' }, finishReason: 'stop', usage: USAGE }
          : {
              message: {
                role: 'assistant',
                content: null,
                tool_calls: [
                  {
                    id: `call_${String(call)}`,
                    type: 'function',
                    function: { name: 'noop', arguments: '{"message":"hi"}' },
                  },
                ],
              },
              finishReason: 'tool_calls',
              usage: USAGE,
            },
      )
    },
  }
}

const start: ChatMessage[] = [
  { role: 'system', content: 'You call noop.' },
  { role: 'user', content: 'Go.' },
]
const runAgent = () => Promise.reject(new Error('no agents here'))
const neverAborted = new AbortController().signal

async function loopOnce(): Promise<number> {
  const result = await runLoop(agent, {
    task: 'bench',
    messages: start,
    provider: scriptedProvider(),
    signal: neverAborted,
    emit: () => {},
    stream: false,
    runAgent,
  })
  if (result.outcome !== 'answer' || result.iterations !== ITERATIONS + 1) {
    throw new Error(`the loop ended with ${result.outcome} after ${String(result.iterations)} iterations`)
  }
  return result.iterations
}

/** The same calls without the loop: what any loop must at least do. */
async function baselineOnce(): Promise<number> {
  const provider = scriptedProvider()
  const messages: ChatMessage[] = [...start]
  let iterations = 0
  for (;;) {
    iterations++
    const completion = await provider.complete({
      messages,
      tools: agent.toolDefinitions,
      signal: neverAborted,
    })
    const calls = completion.message.tool_calls
    if (calls === undefined || calls.length === 0) break
    messages.push(completion.message)
    for (const call of calls) {
      const args = JSON.parse(call.function.arguments) as Record<string, unknown>
      if ((tool.validator?.problems(args).length ?? 0) > 0) throw new Error('invalid arguments')
      const result = await tool.execute(args, { signal: neverAborted, runAgent })
      messages.push({ role: 'tool', tool_call_id: call.id, content: result.content })
    }
  }
  return iterations
}

/** Microseconds per iteration over `runs` back-to-back runs. */
async function timePerIteration(once: () => Promise<number>, runs: number): Promise<number> {
  let iterations = 0
  const t0 = performance.now()
  for (let i = 0; i < runs; i++) iterations += await once()
  return ((performance.now() - t0) * 1000) / iterations
}

const gc = (globalThis as { gc?: () => void }).gc

/** Heap bytes still held per iteration after `runs` runs and a full GC: anything above zero is a leak. */
async function retainedPerIteration(runs: number): Promise<number> {
  if (gc === undefined) return NaN
  gc()
  const before = process.memoryUsage().heapUsed
  let iterations = 0
  for (let i = 0; i < runs; i++) iterations += await loopOnce()
  gc()
  return (process.memoryUsage().heapUsed - before) / iterations
}

/** Heap bytes allocated per iteration (GC off the path: measured as the growth over one run after a GC). */
async function allocatedPerIteration(once: () => Promise<number>): Promise<number> {
  if (gc === undefined) return NaN
  const samples: number[] = []
  for (let i = 0; i < 20; i++) {
    gc()
    const before = process.memoryUsage().heapUsed
    const n = await once()
    samples.push((process.memoryUsage().heapUsed - before) / n)
  }
  return median(samples)
}

/** Alternating loop and baseline rounds, so that machine noise lands on both. */
async function rounds(count: number, runs: number): Promise<{ loop: number[]; baseline: number[] }> {
  const loop: number[] = []
  const baseline: number[] = []
  for (let r = 0; r < count; r++) {
    loop.push(await timePerIteration(loopOnce, runs))
    baseline.push(await timePerIteration(baselineOnce, runs))
  }
  return { loop, baseline }
}

async function warm(runs: number): Promise<void> {
  for (let i = 0; i < runs; i++) {
    await loopOnce()
    await baselineOnce()
  }
}

async function run(context: RunContext) {
  context.log(`toolloop: ${String(ITERATIONS)} tool turns + 1 answer per run; warming up`)
  await warm(2000)
  const { loop, baseline } = await rounds(9, 500)
  const loopUs = median(loop)
  const baseUs = median(baseline)
  const allocated = await allocatedPerIteration(loopOnce)
  const allocatedBase = await allocatedPerIteration(baselineOnce)
  const retained = await retainedPerIteration(2000)
  const measures: Measure[] = [
    {
      name: 'loop per iteration',
      value: loopUs,
      unit: 'us',
      target: { op: '<=', value: 25 },
      note: `baseline ${baseUs.toFixed(2)} us`,
    },
    { name: 'loop overhead per iteration', value: loopUs - baseUs, unit: 'us', note: 'loop minus baseline' },
    { name: 'loop / baseline', value: loopUs / baseUs, unit: 'x' },
    {
      name: 'heap allocated per iteration',
      value: allocated,
      unit: 'bytes',
      note: `baseline ${allocatedBase.toFixed(0)} bytes (the conversation's own messages)`,
    },
    {
      name: 'heap retained per iteration',
      value: retained,
      unit: 'bytes',
      target: { op: '<=', value: 8 },
      note: 'after 2,000 runs and a full GC; the conversations are dropped, so a leak shows here',
    },
  ]
  return {
    measures,
    notes: [
      `${String(ITERATIONS + 1)} iterations a run (${String(ITERATIONS)} with one noop call, then the answer); medians of 9 rounds of 500 runs, loop and baseline alternating.`,
      'Heap figures need --expose-gc (npm run bench passes it); allocation is heapUsed growth over one run after a full GC, median of 20.',
    ],
  }
}

async function gate(context: RunContext): Promise<GateSession> {
  context.log('toolloop gate: loop vs baseline')
  await warm(500)
  return {
    async sample() {
      const { loop, baseline } = await rounds(1, 1000)
      return { 'loop/baseline per iteration': (loop[0] ?? NaN) / (baseline[0] ?? NaN) }
    },
    close: () => Promise.resolve(),
  }
}

const scenario: Scenario = {
  name: 'toolloop',
  summary: 'the tool loop alone, in process: a provider calling a noop tool, vs the same calls made by hand',
  run,
  gate,
}
export default scenario
