import { describe, expect, it } from 'vitest'
import type { Completion, CompletionRequest, Provider } from '../provider.ts'
import { ProviderError } from '../provider.ts'
import { Redactor, knownSecrets } from '../redactor.ts'
import { withRedaction } from './redacting.ts'

const KEY = 'sk-wrapped-canary-0123456789'
const B64 = Buffer.from(`Bearer ${KEY}`).toString('base64')
/** What is left of B64: the characters of `Bearer ` and the last one, which holds 4 bits of the key. */
const B64_LEFT = 'QmVhcmVyIH[REDACTED]k='

/** A provider that says the key in every way it can: split across deltas, whole, in tool arguments, in errors. */
function echoing(failWith?: Error): Provider {
  return {
    provider: 'mock',
    model: 'echo',
    async complete(request: CompletionRequest): Promise<Completion> {
      if (failWith !== undefined) throw failWith
      const text = `key ${KEY} and ${B64}.`
      // Pieces of 3 characters: the key is never whole in one delta.
      for (let i = 0; i < text.length; i += 3) await request.onDelta?.(text.slice(i, i + 3))
      return {
        message: {
          role: 'assistant',
          content: text,
          tool_calls: [{ id: 'c1', type: 'function', function: { name: 't', arguments: `{"k":"${KEY}"}` } }],
        },
        usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
        finishReason: 'tool_calls',
      }
    },
    probe() {
      return Promise.reject(new ProviderError(`401 bad key ${KEY}`, { status: 401, code: KEY }))
    },
  }
}

const signal = new AbortController().signal
const request = { messages: [], tools: [], signal }

describe('withRedaction', () => {
  const redactor = Redactor.of([KEY])

  it('takes the key out of streamed deltas, the answer and tool arguments', async () => {
    const p = withRedaction(echoing(), redactor)
    let streamed = ''
    const c = await p.complete({ ...request, onDelta: (t) => void (streamed += t) })
    expect(streamed).toBe(`key [REDACTED] and ${B64_LEFT}.`)
    expect(c.message.content).toBe(streamed)
    expect(c.message.tool_calls?.[0]?.function.arguments).toBe('{"k":"[REDACTED]"}')
    const whole = await p.complete(request)
    expect(whole.message.content).toBe(streamed)
    p.dispose?.()
  })

  it('takes the key out of errors, with their status, and out of probe verdicts', async () => {
    const p = withRedaction(echoing(new ProviderError(`400 ${KEY}`, { status: 400, code: 'bad' })), redactor)
    const err = await p.complete(request).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ProviderError)
    expect((err as ProviderError).message).toBe('400 [REDACTED]')
    expect((err as ProviderError).status).toBe(400)
    const probe = await p.probe(signal).catch((e: unknown) => e)
    expect((probe as ProviderError).message).toBe('401 bad key [REDACTED]')
    expect((probe as ProviderError).code).toBe('[REDACTED]')
    const plain = withRedaction(echoing(new TypeError(`fetch failed: ${B64}`)), redactor)
    const e2 = await plain.complete(request).catch((e: unknown) => e)
    expect((e2 as Error).message).toBe(`fetch failed: ${B64_LEFT}`)
    expect((e2 as Error).name).toBe('TypeError')
    p.dispose?.()
    plain.dispose?.()
  })

  it('lets aborts through as they are', async () => {
    const abort = new DOMException(`cancelled`, 'AbortError')
    const p = withRedaction(echoing(abort), redactor)
    await expect(p.complete(request)).rejects.toBe(abort)
    p.dispose?.()
  })

  it('makes the key known to the logger while the provider lives', () => {
    const own = Redactor.of(['sk-only-this-test-knows-it'])
    expect(knownSecrets.redactor.text('sk-only-this-test-knows-it')).toBe('sk-only-this-test-knows-it')
    const p = withRedaction(echoing(), own)
    expect(knownSecrets.redactor.text('x sk-only-this-test-knows-it')).toBe('x [REDACTED]')
    p.dispose?.()
    p.dispose?.()
    expect(knownSecrets.redactor.text('sk-only-this-test-knows-it')).toBe('sk-only-this-test-knows-it')
  })
})
