/**
 * The system under fuzz, as a process of its own: a fake OpenAI, a fake Anthropic and a gateway (the gateway
 * suite's agents plus Models on the fakes) behind one URL. Out of the test's process so that a gateway that
 * hangs (a loop that never yields) or dies shows as requests without answers and an exit, which the suite
 * reports, instead of taking the test runner down with it.
 *
 * `node test/fuzz-target.ts` prints `listening <url>` and serves until SIGTERM or its stdin closes.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FakeUpstream as FakeAnthropic } from './fakes/anthropic-upstream.ts'
import { startFakeAnthropic } from './fakes/anthropic-upstream.ts'
import type { FakeUpstream } from './fakes/openai-upstream.ts'
import { startFakeOpenAI } from './fakes/openai-upstream.ts'
import { startGateway } from './gateway-server.ts'

/** The Models the fuzz requests name (test/fuzz-requests.ts): two OpenAI-wire, one mapped to Anthropic. */
function models(openai: FakeUpstream, anthropic: FakeAnthropic): string {
  return `
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: gpt }
spec:
  provider: openai
  model: { value: gpt-4o }
  pollInterval: 1h
  config: { openai: { baseUrl: { value: "${openai.url}" }, apiKey: { value: sk-fuzz } } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: azure-gpt }
spec:
  provider: azure
  model: { value: gpt-4o-deploy }
  pollInterval: 1h
  config:
    azure:
      baseUrl: { value: "${openai.origin}" }
      apiKey: { value: azure-fuzz }
      apiVersion: { value: "2024-10-21" }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: claude }
spec:
  provider: anthropic
  model: { value: claude-opus-4-7 }
  pollInterval: 1h
  config: { anthropic: { baseUrl: { value: "${anthropic.url}" }, apiKey: { value: sk-ant-fuzz } } }
`
}

async function main(): Promise<void> {
  const openai = await startFakeOpenAI({ record: false })
  const anthropic = await startFakeAnthropic()
  const dir = await mkdtemp(join(tmpdir(), 'ark-fuzz-'))
  await copyFile('test/fixtures/gateway/agents.yaml', join(dir, 'agents.yaml'))
  await writeFile(join(dir, 'models.yaml'), models(openai, anthropic))
  // Pools wide enough that valid requests run rather than meet a full queue (429 is not what is under test).
  const gw = await startGateway(dir, { poolConcurrency: 64, maxQueued: 4096 })
  // Every target answers before the run starts: a Model still being probed would answer 503.
  for (const model of [
    'agent/support-agent',
    'model/gpt',
    'model/azure-gpt',
    'model/claude',
    'model/default',
  ]) {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'ready?' }] }),
      })
      await res.body?.cancel()
      if (res.status === 200) break
      if (attempt > 100) throw new Error(`${model} does not answer: ${String(res.status)}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  let closing = false
  const stop = () => {
    if (closing) return
    closing = true
    void (async () => {
      await gw.close()
      await openai.close()
      await anthropic.close()
      await rm(dir, { recursive: true, force: true })
      process.exit(0)
    })()
  }
  process.once('SIGTERM', stop)
  // The parent going away (however it ends) closes our stdin: do not outlive it.
  process.stdin.on('end', stop)
  process.stdin.resume()
  process.stdout.write(`listening ${gw.url}\n`)
}

if (import.meta.main) await main()
