/**
 * `ark chat <target>`: a conversation with an agent, team or model, a line at a time, the answer streamed as
 * it is written. It talks the OpenAI API with the OpenAI SDK: to a running gateway (`--url`), or to the
 * manifests of a folder served in this process, without a port. The whole conversation is sent each turn, as
 * OpenAI clients do. `/reset` starts again; `/exit` or the end of input leaves.
 */
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import OpenAI from 'openai'
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions'
import { silentLogger } from '../gateway/index.ts'
import { startEmbedded } from './embedded.ts'

export interface ChatOptions {
  /** As the OpenAI routes name it: agent/<name>, team/<name>, model/<name>, or an agent's name. */
  readonly target: string
  /** A gateway's base URL (http://localhost:8080); absent: the manifests in this process. */
  readonly url?: string
  readonly apiKey?: string
  readonly manifests: string
  readonly input: Readable
  readonly output: Writable
  /** Show a prompt before each line (a terminal). */
  readonly prompt: boolean
}

export async function runChat(options: ChatOptions): Promise<number> {
  const { output } = options
  const write = (text: string) => output.write(text)
  let close = async () => {}
  let client: OpenAI
  if (options.url !== undefined) {
    client = new OpenAI({
      baseURL: `${options.url.replace(/\/+$/, '')}/v1`,
      apiKey: options.apiKey ?? 'none',
      maxRetries: 0,
    })
  } else {
    const system = await startEmbedded({
      manifests: options.manifests,
      providers: { withoutKey: 'mock' },
      probeIntervalSeconds: 0,
      log: silentLogger,
      watch: false,
    })
    close = () => system.close()
    // The gateway's own fetch: the same routes and streaming as over HTTP, without opening a port.
    client = new OpenAI({
      baseURL: 'http://ark.local/v1',
      apiKey: 'none',
      maxRetries: 0,
      fetch: async (url, init) => await system.gateway.fetch(new Request(url, init), undefined),
    })
  }
  const messages: ChatCompletionMessageParam[] = []
  const lines = createInterface({ input: options.input, terminal: false })
  let failed = false
  try {
    if (options.prompt) write(`chatting with ${options.target}; /reset starts again, /exit leaves\n> `)
    for await (const line of lines) {
      const text = line.trim()
      if (text === '/exit') break
      if (text === '/reset') {
        messages.length = 0
        write(options.prompt ? '(a new conversation)\n> ' : '')
        continue
      }
      if (text === '') {
        if (options.prompt) write('> ')
        continue
      }
      messages.push({ role: 'user', content: text })
      try {
        const stream = await client.chat.completions.create({ model: options.target, messages, stream: true })
        let answer = ''
        for await (const chunk of stream) {
          const delta = chunk.choices[0]?.delta.content ?? ''
          answer += delta
          write(delta)
        }
        messages.push({ role: 'assistant', content: answer })
        write('\n')
      } catch (err) {
        // The turn did not happen: it is not kept, and the conversation goes on.
        messages.pop()
        failed = true
        write(`error: ${err instanceof Error ? err.message : String(err)}\n`)
      }
      if (options.prompt) write('> ')
    }
  } finally {
    lines.close()
    await close()
  }
  return failed ? 1 : 0
}
