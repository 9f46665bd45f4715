/**
 * How a Query's target runs: through the gateway's admission, exactly as a /v1/chat/completions request
 * would (the same pools, in-process or on Redis), with the run's events turned into the Events seed 000
 * shows (AgentExecutionStart, LLMCallStart, LLMCallComplete, ToolCallStart, ToolCallComplete,
 * AgentExecutionComplete). A model target is one call to the Model, without an agent. The controller sees
 * only the QueryRunner interface; this file is where the control plane meets the data plane.
 */
import type { QueryRunner, TargetOutcome, TargetRequest } from '../controller/index.ts'
import type { Catalog } from '../controller/index.ts'
import type { AgentEvent, ChatMessage, Gateway, Logger } from '../gateway/index.ts'
import { Admission, checkChatRequest, failureOf, sleep, succeeded } from '../gateway/index.ts'

export function queryRunner(catalog: Catalog, gateway: Gateway, log: Logger): QueryRunner {
  const admission = new Admission({
    catalog,
    queue: gateway.queue,
    metrics: gateway.metrics,
    log,
    providerFor: (agent) => gateway.runtime.providerFor(agent),
    memories: gateway.memories,
    budget: gateway.budget,
    runs: gateway.runs,
  })
  return {
    async run(request: TargetRequest): Promise<TargetOutcome> {
      const { target, namespace } = request
      const checked = checkChatRequest({ model: 'query', messages: request.messages })
      if (!checked.ok) {
        return { ok: false, reason: 'InvalidInput', message: `spec.input: ${checked.message}` }
      }
      const messages = checked.value.messages
      if (target.type === 'model') return runModel(catalog, gateway, request, messages)
      if (target.type !== 'agent' && target.type !== 'team') {
        return {
          ok: false,
          reason: 'UnsupportedTarget',
          message: `${target.type} targets are not served by this version of ark yet; target an agent, a team or a model`,
        }
      }
      const kind = target.type
      const name = `${kind}/${namespace}/${target.name}`
      let found = admission.check(name, request.parameters)
      // An agent created together with its Query may not have had its availability computed yet: wait for
      // the verdict (briefly) rather than failing a Query that would run a moment later.
      for (
        let waited = 0;
        'refusal' in found && found.refusal.code === 'Pending' && waited < PENDING_WAIT_MS;
        waited += 100
      ) {
        const slept = await sleep(100, request.signal).then(
          () => true,
          () => false,
        )
        if (!slept) break // the Query was canceled or timed out
        found = admission.check(name, request.parameters)
      }
      if ('refusal' in found) {
        const { refusal } = found
        const reason =
          refusal.code === 'not_found'
            ? 'TargetNotFound'
            : refusal.status === 503
              ? 'TargetNotAvailable'
              : 'TargetRefused'
        const message =
          refusal.code === 'not_found' ? `${kind} ${namespace}/${target.name} not found` : refusal.message
        return { ok: false, reason, message }
      }
      // A team tells its own story (TeamExecutionStart, each member's turn); an agent's starts here.
      if (kind === 'agent')
        request.onEvent('AgentExecutionStart', `Executing agent ${namespace}/${target.name}`)
      const conversation = request.conversationId ?? request.sessionId
      const admitted = await admission.submit(found, {
        via: 'query',
        messages,
        parameters: request.parameters,
        stream: false,
        signal: request.signal,
        // ARK: conversationId is the memory thread; sessionId stood for it before conversations existed.
        ...(conversation === undefined
          ? {}
          : {
              conversation: {
                id: conversation,
                query: request.query ?? conversation,
                ...(request.memory === undefined ? {} : { memory: request.memory }),
              },
            }),
        onEvent: (e: AgentEvent) => {
          tell(request, e, kind === 'team')
        },
      })
      if ('refusal' in admitted) {
        return { ok: false, reason: 'TargetRefused', message: admitted.refusal.message }
      }
      const result = await admitted.run.result
      const usage = result.usage
      if (succeeded(result)) {
        if (kind === 'agent')
          request.onEvent('AgentExecutionComplete', 'Agent execution completed successfully')
        return { ok: true, content: result.content ?? '', usage }
      }
      const failure = failureOf(result)
      if (kind === 'agent')
        request.onEvent('AgentExecutionFailed', `Agent execution failed: ${failure.message}`, 'Warning')
      return {
        ok: false,
        reason:
          result.outcome === 'cancelled'
            ? 'Canceled'
            : result.outcome === 'timeout'
              ? 'Timeout'
              : 'TargetFailed',
        message: failure.message,
        usage,
      }
    },
  }
}

/** How long a Query waits for its agent's first availability verdict. */
const PENDING_WAIT_MS = 10_000

/**
 * A run's events as the Query's Events. A team's follow ARK's names: TeamExecution, TeamTurn and TeamMember
 * (Start, Complete, Error), and the AgentExecution of each member agent.
 */
function tell(request: TargetRequest, e: AgentEvent, team: boolean): void {
  switch (e.type) {
    case 'team.start':
      request.onEvent(
        'TeamExecutionStart',
        `Executing team ${e.team.slice('team/'.length)} (${e.strategy}, ${String(e.members)} members)`,
      )
      return
    case 'team.turn':
      request.onEvent(
        'TeamTurnStart',
        `Executing turn ${String(e.turn)} for team ${e.team.slice('team/'.length)}`,
      )
      request.onEvent(
        'TeamMemberStart',
        `Executing member ${e.member} in team ${e.team.slice('team/'.length)}`,
      )
      return
    case 'team.turn.complete':
      if (e.error === undefined) {
        request.onEvent('TeamMemberComplete', `Member ${e.member} completed`)
        request.onEvent('TeamTurnComplete', `Team turn ${String(e.turn)} completed successfully`)
      } else request.onEvent('TeamMemberError', e.error, 'Warning')
      return
    case 'team.complete':
      if (e.outcome === 'answer' || e.outcome === 'terminated') {
        const tokens = `${String(e.usage.totalTokens)} tokens`
        const why = e.note === undefined ? '' : `: ${e.note}`
        request.onEvent(
          'TeamExecutionComplete',
          `Team execution completed after ${String(e.turns)} turns, ${tokens}${why}`,
        )
      } else request.onEvent('TeamExecutionError', `Team execution ended with ${e.outcome}`, 'Warning')
      return
    case 'agent.start':
      if (team) request.onEvent('AgentExecutionStart', `Executing ${e.agent}`)
      return
    case 'agent.complete':
      if (team) {
        if (e.outcome === 'answer' || e.outcome === 'terminated')
          request.onEvent('AgentExecutionComplete', `${e.agent} completed successfully`)
        else request.onEvent('AgentExecutionFailed', `${e.agent} ended with ${e.outcome}`, 'Warning')
      }
      return
    case 'llm.start':
      request.onEvent('LLMCallStart', `Calling model ${e.model}`)
      return
    case 'llm.complete':
      if (e.error === undefined) request.onEvent('LLMCallComplete', 'Model call completed successfully')
      else request.onEvent('LLMCallFailed', `Model call failed: ${e.error}`, 'Warning')
      return
    case 'tool.start':
      request.onEvent('ToolCallStart', `Calling tool ${e.tool}`)
      return
    case 'tool.complete':
      if (e.outcome === 'ok') request.onEvent('ToolCallComplete', `Tool ${e.tool} completed successfully`)
      else request.onEvent('ToolCallFailed', `Tool ${e.tool} failed: ${e.outcome}`, 'Warning')
      return
    default:
      return
  }
}

async function runModel(
  catalog: Catalog,
  gateway: Gateway,
  request: TargetRequest,
  messages: readonly ChatMessage[],
): Promise<TargetOutcome> {
  const ref = { namespace: request.namespace, name: request.target.name }
  const model = catalog.get('Model', ref)
  if (model === undefined) {
    return { ok: false, reason: 'TargetNotFound', message: `model ${ref.namespace}/${ref.name} not found` }
  }
  const available = catalog.available(model.key)
  if (available?.status !== 'True') {
    return {
      ok: false,
      reason: 'TargetNotAvailable',
      message: `model ${ref.namespace}/${ref.name} is not available: ${available?.reason ?? 'Pending'}: ${available?.message ?? 'its availability has not been computed yet'}`,
    }
  }
  const provider = gateway.runtime.modelProvider(model)
  request.onEvent('LLMCallStart', `Calling model ${provider.model}`)
  try {
    const completion = await provider.complete({ messages, tools: [], signal: request.signal })
    request.onEvent('LLMCallComplete', 'Model call completed successfully')
    const content = completion.message.content
    return { ok: true, content: typeof content === 'string' ? content : '', usage: completion.usage }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    request.onEvent('LLMCallFailed', `Model call failed: ${message}`, 'Warning')
    return { ok: false, reason: request.signal.aborted ? 'Canceled' : 'TargetFailed', message }
  }
}
