/**
 * A provider whose every output has its Model's secrets redacted: answer text as it streams and whole, tool
 * call arguments, and every error it throws (whose messages reach clients, logs and, through probes, the
 * Model's status). An upstream that echoes the key back, in any form, cannot make it leave ark through an
 * agent run, a mapped `model/<name>` call or a status condition. The registry wraps every provider it
 * creates; the secrets also join the logger's set (knownSecrets) until the provider is disposed.
 */
import type { AssistantMessage, ToolCall } from '../messages.ts'
import type { Completion, CompletionRequest, Provider } from '../provider.ts'
import { ProviderError } from '../provider.ts'
import type { Redactor } from '../redactor.ts'
import { knownSecrets } from '../redactor.ts'

export function withRedaction(provider: Provider, redactor: Redactor): Provider {
  if (redactor.empty) return { ...provider, redactor }
  const release = knownSecrets.add(redactor)
  const fail = (err: unknown) => redactedError(err, redactor)
  const wrapped: Provider = {
    provider: provider.provider,
    model: provider.model,
    redactor,
    ...(provider.standIn === undefined ? {} : { standIn: redactor.text(provider.standIn) }),

    async complete(request: CompletionRequest): Promise<Completion> {
      const onDelta = request.onDelta
      if (onDelta === undefined) {
        try {
          return redactedCompletion(await provider.complete(request), redactor)
        } catch (err) {
          throw fail(err)
        }
      }
      // A secret may be split across deltas: the stream holds back a tail that could start one.
      const text = redactor.textStream()
      let completion: Completion
      try {
        completion = await provider.complete({
          ...request,
          onDelta: (piece) => {
            const out = text.push(piece)
            return out === '' ? undefined : onDelta(out)
          },
        })
      } catch (err) {
        throw fail(err)
      }
      const rest = text.end()
      if (rest !== '') await onDelta(rest)
      return redactedCompletion(completion, redactor)
    },

    async probe(signal) {
      try {
        await provider.probe(signal)
      } catch (err) {
        throw fail(err)
      }
    },

    dispose() {
      release()
      provider.dispose?.()
    },
  }
  const forward = provider.forward?.bind(provider)
  if (forward !== undefined) {
    wrapped.forward = async (body, signal) => {
      try {
        return await forward(body, signal)
      } catch (err) {
        throw fail(err)
      }
    }
  }
  return wrapped
}

/** The completion with secrets out of its text and tool arguments; the same object when there were none. */
function redactedCompletion(completion: Completion, redactor: Redactor): Completion {
  const m = completion.message
  const content = m.content === null ? null : redactor.text(m.content)
  let calls: ToolCall[] | undefined
  const given = m.tool_calls
  if (given !== undefined) {
    for (let i = 0; i < given.length; i++) {
      const call = given[i] as ToolCall
      const args = redactor.text(call.function.arguments)
      if (args === call.function.arguments) continue
      calls ??= [...given]
      calls[i] = { ...call, function: { ...call.function, arguments: args } }
    }
  }
  if (content === m.content && calls === undefined) return completion
  const message: AssistantMessage =
    given === undefined ? { ...m, content } : { ...m, content, tool_calls: calls ?? given }
  return { ...completion, message }
}

/**
 * The error with secrets out of its message (and code, which upstreams choose too). A new error, without
 * the cause: an SDK's error carries the whole upstream answer. Aborts pass as they are: their reasons are
 * ark's own, and the loop tells a timeout from a cancellation by them.
 */
export function redactedError(err: unknown, redactor: Redactor): unknown {
  if (err instanceof ProviderError) {
    const message = redactor.text(err.message)
    const code = redactor.text(err.code)
    if (message === err.message && code === err.code) return err
    return new ProviderError(message, { ...(err.status === undefined ? {} : { status: err.status }), code })
  }
  if (err instanceof Error) {
    if (err.name === 'AbortError' || err.name === 'TimeoutError') return err
    const message = redactor.text(err.message)
    if (message === err.message) return err
    const copy = new Error(message)
    copy.name = err.name
    return copy
  }
  return typeof err === 'string' ? redactor.text(err) : err
}
