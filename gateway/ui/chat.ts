/**
 * `POST /ui/api/chat`: the dashboard's playground. It takes the body of an OpenAI chat completion (checked as
 * /v1/chat/completions checks it) and answers with the run's own events as server-sent events, so that the
 * page shows what the OpenAI face cannot carry: each model call, each tool call with its arguments and
 * result, a team's turns, and the text as it streams. The caller sees only its own run, which it asked for.
 *
 * Events (`data:` JSON, one per event): `llm.start`, `delta`, `llm.complete`, `tool.start`, `tool.complete`,
 * `team.turn`, `team.turn.complete`, and last `done` (outcome, usage, the answer) or `error` (OpenAI's error
 * object, as a stream of chunks ends with one).
 */
import type { Context } from 'hono'
import type { Admission } from '../admission.ts'
import { failureOf } from '../admission.ts'
import type { StreamLimits } from '../http/response-stream.ts'
import { ResponseStream } from '../http/response-stream.ts'
import type { Logger } from '../log.ts'
import { followClient } from '../http/client-gone.ts'
import type { GatewayEnv } from '../openai/chat.ts'
import { checkChat } from '../openai/chat.ts'
import { cutStreamError, errorBody, renderRefusal, streamFailure } from '../openai/errors.ts'
import type { AgentEvent } from '../runtime/events.ts'
import { succeeded } from '../runtime/task.ts'

export interface PlaygroundDeps {
  readonly admission: Admission
  readonly stream: StreamLimits
  readonly log: Logger
}

/** The most of a tool's arguments or result an event carries: the page shows them, it does not keep them. */
const MAX_TOOL_TEXT = 4000

function cut(text: string): string {
  return text.length <= MAX_TOOL_TEXT
    ? text
    : `${text.slice(0, MAX_TOOL_TEXT)}… (${String(text.length)} characters)`
}

/** A run event as the page reads it; undefined for those it does not show. */
function pageEvent(e: AgentEvent): Record<string, unknown> | undefined {
  switch (e.type) {
    case 'llm.start':
      return { type: e.type, model: e.model, iteration: e.iteration }
    case 'llm.delta':
      return { type: 'delta', text: e.text }
    case 'llm.complete':
      return {
        type: e.type,
        model: e.model,
        seconds: e.seconds,
        toolCalls: e.toolCalls,
        tokens: e.usage.totalTokens,
        ...(e.error === undefined ? {} : { error: e.error }),
      }
    case 'tool.start':
      return { type: e.type, id: e.id, tool: e.tool, arguments: cut(e.arguments) }
    case 'tool.complete':
      return {
        type: e.type,
        id: e.id,
        tool: e.tool,
        outcome: e.outcome,
        seconds: e.seconds,
        result: cut(e.result),
      }
    case 'team.turn':
      return { type: e.type, turn: e.turn, member: e.member }
    case 'team.turn.complete':
      return { type: e.type, turn: e.turn, member: e.member, outcome: e.outcome, seconds: e.seconds }
    default:
      return undefined
  }
}

const sse = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`

export async function playgroundChat(c: Context<GatewayEnv>, deps: PlaygroundDeps): Promise<Response> {
  const checked = checkChat(c, deps.admission)
  if (checked instanceof Response) return checked
  const { request, admissible } = checked
  const id = `ui-${crypto.randomUUID()}`
  const { cancel, cleanup } = followClient(c.req.raw)
  const out = new ResponseStream(
    deps.stream,
    (why) => {
      cancel.abort(why)
      const error = cutStreamError(why)
      return error === undefined ? undefined : sse({ type: 'error', error })
    },
    c.env?.drop,
  )
  const conversation = request.metadata.conversation_id
  const admitted = await deps.admission.submit(admissible, {
    id,
    via: 'ui',
    messages: request.messages,
    parameters: request.metadata,
    stream: true,
    signal: cancel.signal,
    abort: (reason: unknown) => cancel.abort(reason),
    ...(conversation === undefined ? {} : { conversation: { id: conversation } }),
    onEvent: (e: AgentEvent) => {
      const shown = pageEvent(e)
      if (shown === undefined) return undefined
      const written = out.write(sse(shown))
      // Only answer text pauses the run for a slow reader, as on the OpenAI face.
      return e.type === 'llm.delta' ? written : undefined
    },
  })
  if ('refusal' in admitted) {
    cleanup()
    return renderRefusal(admitted.refusal)
  }
  const { run } = admitted
  void run.result
    .then(
      (result) => {
        if (succeeded(result)) {
          void out.write(
            sse({
              type: 'done',
              outcome: result.outcome,
              content: result.content ?? '',
              iterations: result.iterations,
              usage: result.usage,
            }),
          )
        } else {
          const { status, message, code } = failureOf(result)
          void out.write(
            sse({ type: 'error', outcome: result.outcome, error: errorBody(status, message, { code }) }),
          )
        }
      },
      (err: unknown) => {
        // The task id (ui-...) tells the playground's failures apart in the log.
        void out.write(sse({ type: 'error', error: streamFailure(deps.log, run.id, err) }))
      },
    )
    .finally(() => {
      out.close()
      cleanup()
    })
  return new Response(out.body, {
    headers: {
      ...run.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': id,
    },
  })
}
