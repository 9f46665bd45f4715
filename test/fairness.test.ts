/**
 * Admission under a flood, on the real `ark dev` through the OpenAI SDK: one namespace floods its agent while
 * another's requests go on. The flood is refused fast (503 `overloaded` past its share of --max-in-flight,
 * 503 `queue_timeout` for what waited past --queue-wait), and the other namespace is answered throughout.
 * The latency the other namespace sees meanwhile is measured by `npm run bench -- fairness`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'

/** One slow mock agent per namespace, each with the same Model. */
const manifests = (namespace: string) => `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default, namespace: ${namespace} }
spec:
  provider: mock
  model: { value: mock-1 }
  config: { mock: { properties: { latencyMs: { value: "700" } } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: slow, namespace: ${namespace} }
spec: { prompt: I take my time. }
`

let dir: string
let ark: ArkProcess

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ark-fairness-'))
  await writeFile(join(dir, 'flood.yaml'), manifests('flood'))
  await writeFile(join(dir, 'quiet.yaml'), manifests('quiet'))
  // 100 runs at once, so 90 for a namespace alone; one task at a time per agent, the rest wait up to 1 s.
  ark = await startArk([
    'dev',
    '-f',
    dir,
    '--port',
    '0',
    '--max-in-flight',
    '100',
    '--pool-concurrency',
    '1',
    '--queue-size',
    '1000',
    '--queue-wait',
    '1',
  ])
}, 30_000)

afterAll(async () => {
  await ark.stop()
  await rm(dir, { recursive: true, force: true })
})

const openai = () => new OpenAI({ baseURL: `${ark.url}/v1`, apiKey: 'unused', maxRetries: 0 })

/** The answer's text, or the error's status and code. */
async function ask(model: string, content: string): Promise<string> {
  try {
    const r = await openai().chat.completions.create({ model, messages: [{ role: 'user', content }] })
    return r.choices[0]?.message.content ?? ''
  } catch (err) {
    if (!(err instanceof OpenAI.APIError)) throw err
    const e = err as InstanceType<typeof OpenAI.APIError>
    if (e.code === 'queue_timeout') {
      expect(e.headers?.get('retry-after')).toBe('5')
      // Nothing ran: the SDKs may retry it (they are told not to for runs that failed).
      expect(e.headers?.get('x-should-retry')).toBeNull()
    }
    return `${String(e.status)} ${String(e.code)}`
  }
}

describe('a flood from one namespace', () => {
  it('is refused fast past its share and its wait, while another namespace is answered', async () => {
    const flood = Array.from({ length: 300 }, (_, i) => ask('agent/flood/slow', `flood ${String(i)}`))
    // Once the flood holds its share, the quiet namespace's requests, one after another.
    await new Promise((r) => setTimeout(r, 200))
    const quiet: string[] = []
    for (let i = 0; i < 3; i++) quiet.push(await ask('agent/quiet/slow', `quiet ${String(i)}`))
    expect(quiet).toEqual(['You said: quiet 0', 'You said: quiet 1', 'You said: quiet 2'])

    const answers = await Promise.all(flood)
    const count = (match: (a: string) => boolean) => answers.filter(match).length
    const answered = count((a) => a.startsWith('You said: flood'))
    const overloaded = count((a) => a === '503 overloaded')
    const waitedOut = count((a) => a === '503 queue_timeout')
    expect({ answered: answered > 0, overloaded: overloaded > 0, waitedOut: waitedOut > 0 }).toEqual({
      answered: true,
      overloaded: true,
      waitedOut: true,
    })
    // Every request got one of these answers.
    expect(answered + overloaded + waitedOut).toBe(300)
    // Every slot is free again.
    expect(await ask('agent/flood/slow', 'after')).toBe('You said: after')
  }, 30_000)
})
