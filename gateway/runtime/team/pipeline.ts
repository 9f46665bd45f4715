/**
 * ArkTeam pipelines: the steps form a DAG by `dependsOn`; a step starts as soon as every step it depends on
 * has answered, so independent steps run side by side. A step's prompt is its `inputs`, templates over the
 * team's input and earlier outputs, rendered once its dependencies are done:
 *
 * - `{{ .input }}` (or `{{ .input.prompt }}`): the text of the caller's latest message;
 *   `{{ .input.<key> }}`: the request's parameter `<key>` (OpenAI metadata, a Query's parameters);
 * - `{{ .steps.<role>.output }}`: what that step answered; `{{ .steps.<role>.data.<field> }}`: a field of it,
 *   when it answered JSON.
 *
 * One input is sent as it is; several as `key: value` lines in the order written (as ark-operator's flows
 * do), after the conversation's earlier turns; a step without inputs is sent the conversation as a
 * sequential member is (what the steps before it said, in the order they finished). A step with an outputSchema is asked for JSON matching
 * it. The team's answer is its `output` template, else what the last step no other step depends on said.
 * A failed step fails the team and stops the steps still running. The adapter has refused cycles and
 * references to steps a step does not depend on.
 */
import type { PipelineStep } from '../../../controller/api/index.ts'
import type { ChatMessage } from '../messages.ts'
import type { TeamRun, TurnOutcome } from './run.ts'
import { Stop } from './stop.ts'

/** `{{ .a.b.c }}`: a dotted path, spaces allowed inside the braces. */
const REFERENCE = /\{\{\s*\.([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)\s*\}\}/g

export interface StepOutput {
  readonly output: string
  /** The output parsed, when it is JSON. */
  readonly data?: unknown
}

/** Renders a pipeline template; a path that leads nowhere renders empty (Go's missingkey=zero). */
export function renderPipelineTemplate(
  template: string,
  input: string,
  parameters: Readonly<Record<string, string>>,
  steps: ReadonlyMap<string, StepOutput>,
): string {
  return template.replace(REFERENCE, (_, path: string) => {
    const [head, ...rest] = path.split('.')
    if (head === 'input' || (head === 'pipeline' && rest[0] === 'input')) {
      const keys = head === 'pipeline' ? rest.slice(1) : rest
      if (keys.length === 0 || (keys.length === 1 && keys[0] === 'prompt')) return input
      return keys.length === 1 ? (parameters[keys[0] ?? ''] ?? '') : ''
    }
    if (head === 'steps') {
      const [role = '', field, ...more] = rest
      const step = steps.get(role)
      if (step === undefined) return ''
      if (field === 'output' && more.length === 0) return step.output
      if (field === 'data') return textOfValue(dig(step.data, more))
    }
    return ''
  })
}

export async function runPipeline(run: TeamRun): Promise<Stop> {
  const { pipeline, output } = run.team.spec
  const outputs = new Map<string, StepOutput>()
  const done = new Set<string>()
  const started = new Set<string>()
  // The step that gives the answer, when no output template does: its text may stream as it comes.
  const sinks = pipeline.filter((s) => !pipeline.some((o) => o.dependsOn.includes(s.member)))
  const final = output === undefined ? sinks.at(-1)?.member : undefined
  let failure: Stop | undefined

  await new Promise<void>((resolve) => {
    let running = 0
    const launch = () => {
      for (const step of pipeline) {
        if (failure !== undefined) break
        if (started.has(step.member) || !step.dependsOn.every((d) => done.has(d))) continue
        started.add(step.member)
        running++
        const settled = (out: TurnOutcome | Stop) => {
          running--
          if (failure === undefined) {
            const stop = out instanceof Stop ? out : settleStep(run, out)
            if (stop !== undefined) {
              failure = stop
              run.abort(new DOMException(`a step of ${run.id} failed`, 'AbortError'))
            } else if (!(out instanceof Stop)) {
              const text = out.result.content ?? ''
              outputs.set(step.member, { output: text, ...dataOf(text) })
              done.add(step.member)
            }
          }
          if (failure === undefined) launch()
          if (running === 0) resolve()
        }
        // A step that throws (it cannot even start) fails the pipeline as a failed turn does, never hangs it.
        runStep(run, step, outputs, step.member === final).then(settled, (err: unknown) =>
          settled(err instanceof Stop ? err : Stop.failed(err instanceof Error ? err.message : String(err))),
        )
      }
      if (running === 0) resolve()
    }
    launch()
  })
  if (failure !== undefined) return failure
  if (done.size < pipeline.length) {
    // Unreachable with the adapter's checks (no cycles, known roles); said plainly if it ever happens.
    return Stop.failed(
      `${run.id}: steps ${pipeline
        .filter((s) => !done.has(s.member))
        .map((s) => s.member)
        .join(', ')} never became ready`,
    )
  }
  if (output !== undefined) {
    return new Stop(
      'answer',
      undefined,
      renderPipelineTemplate(output, run.inputText, run.request.parameters, outputs),
    )
  }
  return new Stop('answer', undefined, final === undefined ? '' : (outputs.get(final)?.output ?? ''))
}

async function runStep(
  run: TeamRun,
  step: PipelineStep,
  outputs: ReadonlyMap<string, StepOutput>,
  last: boolean,
): Promise<TurnOutcome> {
  const member = run.member(step.member)
  const entries = Object.entries(step.inputs)
  let input: readonly ChatMessage[] | undefined
  if (entries.length > 0 || step.outputSchema !== undefined) {
    const rendered = entries.map(
      ([key, template]) =>
        [key, renderPipelineTemplate(template, run.inputText, run.request.parameters, outputs)] as const,
    )
    let prompt =
      rendered.length === 0
        ? run.inputText
        : rendered.length === 1
          ? (rendered[0]?.[1] ?? '')
          : rendered.map(([k, v]) => `${k}: ${v}`).join('\n')
    if (step.outputSchema !== undefined)
      prompt += `\n\nRespond with valid JSON matching this schema:\n${JSON.stringify(step.outputSchema)}`
    input = [{ role: 'user', content: prompt }]
  }
  return run.turn(member, { last, ...(input === undefined ? {} : { input }) })
}

/** A step's turn as the pipeline reads it: a Stop when it failed (terminate ends only that step). */
function settleStep(run: TeamRun, out: TurnOutcome): Stop | undefined {
  if (out.result.outcome === 'terminated') return undefined
  return run.settle(out)
}

function dataOf(text: string): { data?: unknown } {
  const t = text.trim()
  if (!t.startsWith('{') && !t.startsWith('[')) return {}
  try {
    return { data: JSON.parse(t) as unknown }
  } catch {
    return {}
  }
}

function dig(value: unknown, path: readonly string[]): unknown {
  let v = value
  for (const key of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return undefined
    v = (v as Record<string, unknown>)[key]
  }
  return v
}

function textOfValue(v: unknown): string {
  if (v === undefined || v === null) return ''
  return typeof v === 'string' ? v : JSON.stringify(v)
}
