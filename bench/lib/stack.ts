/**
 * The processes most scenarios need: a mock OpenAI upstream (test/fakes/openai-upstream.ts, the same fake the
 * provider tests use) and `ark dev` (or `ark gateway` and `ark worker`) serving manifests that point at it.
 * Each in a process of its own.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ServerProcess } from './processes.ts'
import { startServer, stopAll } from './processes.ts'

const root = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url))

export const UPSTREAM_MODEL = 'gpt-4o-mini'
/** The request every scenario sends: one short user message, answered by the mock model in one turn. */
export const CHAT_MESSAGES = [{ role: 'user', content: 'Say hello to the benchmark.' }]
export const JSON_HEADERS = { 'content-type': 'application/json' }

export function startUpstream(): Promise<ServerProcess> {
  return startServer('mock upstream', {
    args: [root('test/fakes/openai-upstream.ts'), '--port', '0'],
    ready: (line) => /^listening (\S+)/.exec(line)?.[1],
  })
}

/** The fake Anthropic Messages API (test/fakes/anthropic-upstream.ts), the same mock model behind it. */
export function startAnthropicUpstream(): Promise<ServerProcess> {
  return startServer('mock anthropic upstream', {
    args: [root('test/fakes/anthropic-upstream.ts'), '--port', '0'],
    ready: (line) => /^listening (\S+)/.exec(line)?.[1],
  })
}

/** bench/lib/bare-proxy.ts in front of the upstream: the floor of any Node proxy, for passthrough. */
export function startBareProxy(upstreamUrl: string): Promise<ServerProcess> {
  return startServer('bare proxy', {
    args: [root('bench/lib/bare-proxy.ts'), '--upstream', upstreamUrl, '--model', UPSTREAM_MODEL],
    ready: (line) => /^listening (\S+)/.exec(line)?.[1],
  })
}

/**
 * Model `upstream` (openai, at the mock upstream), Model `mock` (ark's in-process mock), and one agent on
 * each: `agent/mock-agent` and `agent/openai-agent`; `team/mock-team`, four agents like mock-agent taking
 * their turns in sequence. With `anthropicUrl`, also Model `claude` (anthropic, there) and
 * `agent/anthropic-agent` on it.
 */
export function manifests(upstreamUrl: string, anthropicUrl?: string): string {
  const anthropic =
    anthropicUrl === undefined
      ? ''
      : `---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: claude }
spec:
  provider: anthropic
  model: { value: claude-sonnet-4-5 }
  pollInterval: 1h
  config:
    anthropic:
      baseUrl: { value: "${anthropicUrl}" }
      apiKey: { value: sk-ant-bench }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: anthropic-agent }
spec:
  prompt: You answer in one sentence.
  modelRef: { name: claude }
`
  return `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: upstream }
spec:
  provider: openai
  model: { value: ${UPSTREAM_MODEL} }
  pollInterval: 1h
  config:
    openai:
      baseUrl: { value: "${upstreamUrl}" }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: mock }
spec:
  provider: mock
  model: { value: mock }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: mock-agent }
spec:
  prompt: You answer in one sentence.
  modelRef: { name: mock }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: openai-agent }
spec:
  prompt: You answer in one sentence.
  modelRef: { name: upstream }
${TEAM_MEMBERS.map(
  (name) => `---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: ${name} }
spec:
  prompt: You answer in one sentence.
  modelRef: { name: mock }
`,
).join('')}---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Team
metadata: { name: mock-team }
spec:
  strategy: sequential
  members: [${TEAM_MEMBERS.map((name) => `{ name: ${name}, type: agent }`).join(', ')}]
${anthropic}`
}

/** The members of `team/mock-team`, in turn order. */
export const TEAM_MEMBERS = ['member-1', 'member-2', 'member-3', 'member-4'] as const

export interface ArkProcess extends ServerProcess {
  /** http://127.0.0.1:PORT/v1/chat/completions */
  readonly completions: string
}

/**
 * `ark dev` (or `ark gateway`, with REDIS_URL in `env`) over the bench manifests. The upstream URL may be
 * any when no route calls agent/openai-agent; with `anthropicUrl`, agent/anthropic-agent calls it.
 */
export async function startArk(
  upstreamUrl: string,
  env: Readonly<Record<string, string>> = {},
  command: 'dev' | 'gateway' = 'dev',
  anthropicUrl?: string,
): Promise<ArkProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'ark-bench-'))
  await writeFile(join(dir, 'bench.yaml'), manifests(upstreamUrl, anthropicUrl))
  let ark: ServerProcess
  try {
    ark = await startServer(`ark ${command}`, {
      args: [root('bin/ark.ts'), command, '-f', dir, '--port', '0', '--probe-interval', '0'],
      // The ready line is logged at info; ark logs nothing per request, so info costs nothing under load.
      env: { ARK_LOG_LEVEL: 'info', ...env },
      ready: (line) => (line.includes('"msg":"serving"') ? /"url":"([^"]+)"/.exec(line)?.[1] : undefined),
    })
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  return {
    ...ark,
    completions: `${ark.url}/v1/chat/completions`,
    stop: async () => {
      await ark.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** `ark worker` for one agent of the bench manifests, taking tasks from Redis at `env.REDIS_URL`. */
export async function startWorker(
  agent: string,
  env: Readonly<Record<string, string>>,
  extraArgs: readonly string[] = [],
): Promise<ServerProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'ark-bench-'))
  await writeFile(join(dir, 'bench.yaml'), manifests('http://127.0.0.1:9'))
  try {
    const worker = await startServer(`ark worker ${agent}`, {
      args: [root('bin/ark.ts'), 'worker', '--agent', agent, '-f', dir, '--port', '0', ...extraArgs],
      env: { ARK_LOG_LEVEL: 'info', ...env },
      ready: (line) => (line.includes('"msg":"taking tasks"') ? 'ready' : undefined),
    })
    return {
      ...worker,
      stop: async () => {
        await worker.stop()
        await rm(dir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/** Sends one request and checks that it succeeds, so that a broken setup fails with its reason, not a 0 req/s. */
export async function expectCompletion(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<void> {
  let last = ''
  for (let attempt = 0; attempt < 50; attempt++) {
    const res = await fetch(url, { method: 'POST', headers, body })
    const text = await res.text()
    if (res.ok && text.includes('chat.completion')) return
    last = `${String(res.status)} ${text.slice(0, 300)}`
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${url} does not answer completions: ${last}`)
}

export { stopAll }
