import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newKey } from '../gateway/index.ts'
import { startArk } from '../test/ark-process.ts'
import { fakeModelManifest, startFakeOpenAI } from '../test/fakes/openai-upstream.ts'
import { HOSTILE_CASES, writeHostileManifests } from '../test/fixtures/hostile-manifests/hostile.ts'

const run = promisify(execFile)

/** Runs the real CLI in a child process, as `npx ark` would. */
async function ark(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/ark.ts', ...args], {
      env: { ...process.env, ARK_MANIFESTS: '' },
    })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ark-cli-'))
  await writeFile(
    join(dir, 'bad.yaml'),
    `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: big }
spec: { replicas: 51, model: gpt-4o, systemPrompt: hi }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: lonely }
spec: { prompt: hi, modelRef: { name: missing } }
`,
  )
})
afterAll(() => rm(dir, { recursive: true, force: true }))

describe('ark validate', () => {
  it('exits 0 on the examples, none of which waits for a later version any more', async () => {
    const r = await ark('validate', 'examples')
    expect(r.code).toBe(0)
    // Webhook tools run in the sandbox, research-agent's mcpServers through the MCP client, and teams run.
    expect(r.stdout).toBe('21 resources, 0 errors, 0 warnings\n')
  })

  it('exits 1 and prints every problem with file, document, resource and field', async () => {
    const r = await ark('validate', dir)
    expect(r.code).toBe(1)
    expect(r.stdout.split('\n')).toEqual([
      'error: bad.yaml:1 (document 1) ArkAgent default/big: spec.replicas: must be <= 50, got 51',
      'error: bad.yaml (document 2) Agent default/lonely: not Available: ModelNotFound: model: Model default/missing not found',
      '1 resource, 2 errors, 0 warnings',
      '',
    ])
  })

  it(
    'refuses each hostile manifest with the limit it hit, and exits 1 without crashing',
    { timeout: 60_000 },
    async () => {
      const hostile = await mkdtemp(join(tmpdir(), 'ark-hostile-'))
      try {
        await writeHostileManifests(hostile, { withGood: true })
        const r = await ark('validate', hostile)
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: '' })
        const lines = r.stdout.trimEnd().split('\n')
        expect(lines.pop()).toBe('3 resources, 8 errors, 1 warning')
        const expected = HOSTILE_CASES.flatMap((c) =>
          c.problem ? [`${c.problem.severity}: ${c.problem.text}`] : [],
        )
        expect(lines.sort()).toEqual(expected.sort())
      } finally {
        await rm(hostile, { recursive: true, force: true })
      }
    },
  )

  it('usage errors exit 2', async () => {
    expect((await ark('validate')).code).toBe(2)
    expect((await ark('frobnicate')).code).toBe(2)
    const r = await ark('get', 'widgets', '-f', 'examples')
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('unknown kind "widgets"')
  })

  it('refuses JWT flags that cannot work, saying which', async () => {
    const dev = ['dev', '-f', 'examples', '--port', '0']
    const cases: [string[], string][] = [
      [['--jwt-issuer', 'https://idp'], 'JWTs need both --jwt-issuer (ARK_JWT_ISSUER) and --jwt-audience'],
      [
        ['--jwt-issuer', 'https://idp', '--jwt-audience', 'ark'],
        'one of --jwks-url (ARK_JWKS_URL) or --jwks-file',
      ],
      [
        ['--jwt-issuer', 'https://idp', '--jwt-audience', 'ark', '--jwks-url', 'http://idp.example/jwks'],
        '--jwks-url (ARK_JWKS_URL) must be https (plain http only on loopback)',
      ],
      [
        ['--jwt-issuer', 'https://idp', '--jwt-audience', 'ark', '--jwks-file', '/nope/jwks.json'],
        '--jwks-file /nope/jwks.json: no such file',
      ],
    ]
    for (const [flags, message] of cases) {
      const r = await ark(...dev, ...flags)
      expect(r.code, flags.join(' ')).toBe(2)
      expect(r.stderr, flags.join(' ')).toContain(message)
    }
  }, 60_000)
})

describe('ark get', () => {
  it('prints a kubectl-like table with the Available condition', async () => {
    const r = await ark('get', 'agents', '-f', 'examples')
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^NAME\s+KIND\s+MODEL\s+TOOLS\s+AVAILABLE\s+REASON$/)
    expect(lines.find((l) => l.startsWith('research-agent'))).toMatch(
      /^research-agent\s+ArkAgent\s+llama3\.2\s+3\s+True\s+AllDependenciesReady$/,
    )
    expect(lines.find((l) => l.startsWith('simple-agent'))).toMatch(
      /^simple-agent\s+Agent\s+default\s+0\s+True\s+AllDependenciesReady$/,
    )
    expect(lines).toHaveLength(12)
  })

  it('filters by dialect kind and name; -o json shows status in the dialect', async () => {
    const r = await ark('get', 'arkagents', 'research-agent', '-f', 'examples', '-o', 'json')
    expect(r.code).toBe(0)
    const doc = JSON.parse(r.stdout) as {
      origin: { kind: string }
      status: { conditions: { type: string }[]; replicas: number }
    }
    expect(doc.origin.kind).toBe('ArkAgent')
    expect(doc.status.replicas).toBe(2)
    expect(doc.status.conditions[0]!.type).toBe('Available')
    expect((await ark('get', 'agent', 'nope', '-f', 'examples')).code).toBe(1)
  })

  it('never prints Secret values', async () => {
    const r = await ark('get', 'secrets', '-A', '-f', 'test/fixtures/kinds', '-o', 'yaml')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('full-secret')
    expect(r.stdout).not.toContain('secret-token')
    expect(r.stdout).not.toContain('az-key-value')
  })
})

describe('ark dev', () => {
  it(
    'serves the examples over HTTP, follows flags, and stops cleanly on SIGTERM',
    { timeout: 30_000 },
    async () => {
      const child = spawn(
        process.execPath,
        ['bin/ark.ts', 'dev', '-f', 'examples', '--port', '0', '--max-iterations', '2'],
        {
          // No key anywhere: the gpt-4o example is answered by the mock in its place.
          env: { ...process.env, ARK_MANIFESTS: '', ARK_LOG_LEVEL: 'info', OPENAI_API_KEY: '' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      )
      let out = ''
      child.stdout.on('data', (d: Buffer) => (out += d.toString()))
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "serving" line in:\n${out}`)), 20_000)
        child.stdout.on('data', () => {
          const line = out.split('\n').find((l) => l.includes('"msg":"serving"'))
          if (line !== undefined) {
            clearTimeout(timer)
            resolve((JSON.parse(line) as { url: string }).url)
          }
        })
      })
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)

      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }
      expect(models.data.map((m) => m.id)).toContain('agent/math-agent')
      const ask = (content: string) =>
        fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'math-agent', messages: [{ role: 'user', content }] }),
        })
      const answer = (await (await ask('calculator {"expression": "6*7"}')).json()) as {
        choices: { message: { content: string } }[]
      }
      expect(answer.choices[0]!.message.content).toBe('calculator: 42')
      // --max-iterations 2 reached the runtime: three tool turns do not fit.
      const bounded = await ask('calculator {"expression": "1"}\n'.repeat(3))
      expect(bounded.status).toBe(422)
      await bounded.body?.cancel()
      expect(await (await fetch(`${url}/metrics`)).text()).toContain('process_cpu_user_seconds_total')

      const direct = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'model/gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      })
      expect(
        ((await direct.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message
          .content,
      ).toBe('You said: hi')
      expect(out).toMatch(/"resource":"Model\/default\/gpt-4o","status":"True","reason":"MockStandIn"/)

      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      expect(out).toContain('"msg":"stopping"')
    },
  )

  it('refuses a bad flag value with a message that names it', async () => {
    const r = await ark('dev', '-f', 'examples', '--port', 'eighty')
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--port (PORT) must be an integer >= 0, got "eighty"')
  })

  it('ark gateway and ark worker need a usable Redis URL, and never echo it', async () => {
    const none = await ark('gateway', '-f', 'examples')
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('ark gateway needs Redis: set --redis-url or REDIS_URL')
    const db = await ark('gateway', '-f', 'examples', '--redis-url', 'redis://:hunter2@127.0.0.1:6379/main')
    expect(db.code).toBe(2)
    expect(db.stderr).toContain('names database "main", not a number')
    expect(db.stderr).not.toContain('hunter2')
    const scheme = await ark('worker', '--agent', 'x', '--redis-url', 'http://127.0.0.1:6379')
    expect(scheme.stderr).toContain('must start with redis:// or rediss://')
    const agent = await ark('worker', '--agent', 'Not/A/Name', '--redis-url', 'redis://127.0.0.1:1')
    expect(agent.code).toBe(2)
    expect(agent.stderr).toContain('--agent must be <namespace>/<name> or <name>')
  })

  it('refuses cluster flags that cannot work together, saying which', async () => {
    const redis = ['--redis-url', 'redis://127.0.0.1:1']
    const both = await ark('worker', '--agent', 'a', '--shared', ...redis)
    expect(both.code).toBe(2)
    expect(both.stderr).toContain('--agent <namespace>/<name> or --shared, not both')
    const neither = await ark('worker', ...redis)
    expect(neither.stderr).toContain('or --shared for every agent without a pool')
    const source = await ark('gateway', '--source', 'etcd', ...redis)
    expect(source.stderr).toContain('--source (ARK_SOURCE) must be one of folder, cluster, got "etcd"')
    const folder = await ark('gateway', '--source', 'folder', '--kubeconfig', '/nope', ...redis)
    expect(folder.stderr).toContain('--kubeconfig reads a cluster: it cannot go with --source folder')
    const dev = await ark('dev', '--source', 'cluster')
    expect(dev.stderr).toContain('ark dev reads a folder')
    const image = await ark('controller', '--worker-image', 'ark:1')
    expect(image.stderr).toContain('--worker-image (ARK_WORKER_IMAGE) needs --redis-url (REDIS_URL)')
    const keda = await ark('controller', '--keda', 'true', ...redis)
    expect(keda.stderr).toContain(
      '--keda (ARK_KEDA) scales the pools --worker-image (ARK_WORKER_IMAGE) creates',
    )
    const policy = await ark(
      'controller',
      '--worker-image',
      'ark:1',
      '--worker-pull-policy',
      'Sometimes',
      ...redis,
    )
    expect(policy.stderr).toContain('--worker-pull-policy (ARK_WORKER_PULL_POLICY) must be one of Always')
    // Nine processes started in turn, each loading the CLI: under CI's three test files at once this took
    // 20.05 s, past the default bound; alone, about 10 s.
  }, 60_000)
})

describe('ark query', () => {
  it('runs an agent of a folder and prints it as kubectl describe prints a Query', async () => {
    const q = await ark('query', '-f', 'examples', 'agent/math-agent', 'calculator {"expression": "6*7"}')
    expect(q.stderr).toBe('')
    expect(q.code).toBe(0)
    expect(q.stdout).toMatch(/^Name: +agent\/default\/math-agent$/m)
    expect(q.stdout).toMatch(/^Phase: +done$/m)
    expect(q.stdout).toMatch(/^Token Usage: +prompt \d+, completion \d+, total \d+$/m)
    expect(q.stdout).toContain('Response:\n  calculator: 42\n')
    // The Events seed 000 shows, in order.
    const reasons = [...q.stdout.matchAll(/^ {2}Normal +(\w+)/gm)].map((m) => m[1])
    expect(reasons).toEqual([
      'AgentExecutionStart',
      'LLMCallStart',
      'LLMCallComplete',
      'ToolCallStart',
      'ToolCallComplete',
      'LLMCallStart',
      'LLMCallComplete',
      'AgentExecutionComplete',
    ])
  })

  it('reads the input from stdin, runs teams, and prints Events as they come with --watch', async () => {
    const child = spawn(
      process.execPath,
      ['bin/ark.ts', 'query', '-f', 'examples', '--watch', 'team/support-desk'],
      {
        env: { ...process.env, ARK_MANIFESTS: '' },
      },
    )
    child.stdin.end('hello from stdin')
    let stdout = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    const code = await new Promise((resolve) => child.once('exit', resolve))
    expect(code).toBe(0)
    expect(stdout).toMatch(/^Input: +hello from stdin$/m)
    // Watched: each Event on a line of its own, before the description.
    const described = stdout.indexOf('Name:')
    expect(stdout.slice(0, described)).toMatch(
      /^\d+\.\d\ds {2}Normal {3}TeamExecutionStart +Executing team support-desk/m,
    )
    expect(stdout.slice(described)).toContain('TeamTurnComplete')
  })

  it('exits 1 for a target that cannot run, 2 for a target or input it cannot read', async () => {
    const missing = await ark('query', '-f', 'examples', 'agent/nope', 'hi')
    expect(missing.code).toBe(1)
    expect(missing.stdout).toMatch(/^Phase: +error$/m)
    expect(missing.stdout).toMatch(/^Reason: +TargetNotFound$/m)
    const bad = await ark('query', '-f', 'examples', 'widget/x/y/z', 'hi')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('is not agent/<name>, team/<name>, model/<name>')
    const param = await ark('query', '-f', 'examples', '-p', 'novalue', 'agent/math-agent', 'hi')
    expect(param.code).toBe(2)
    expect(param.stderr).toContain('--param "novalue" is not name=value')
  })
})

/** Runs `ark chat` with `lines` on its stdin; resolves with what it printed and its exit code. */
async function chat(
  args: readonly string[],
  lines: string,
  env: Record<string, string> = {},
): Promise<{ code: unknown; stdout: string }> {
  const child = spawn(process.execPath, ['bin/ark.ts', 'chat', ...args], {
    env: { ...process.env, ARK_MANIFESTS: '', ...env },
  })
  child.stdin.end(lines)
  let stdout = ''
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
  const code = await new Promise((resolve) => child.once('exit', resolve))
  return { code, stdout }
}

describe('ark chat', () => {
  it('holds a conversation a line at a time with the manifests of a folder, and starts again on /reset', async () => {
    const { code, stdout } = await chat(
      ['-f', 'examples', 'agent/math-agent'],
      'hello\ncalculator {"expression": "6*7"}\n/reset\nagain\n/exit\nnever sent\n',
    )
    expect(code).toBe(0)
    expect(stdout).toBe('You said: hello\ncalculator: 42\nYou said: again\n')
  })

  it('talks to a running gateway with the key from ARK_API_KEY, sends the conversation, says when a turn fails', async () => {
    const upstream = await startFakeOpenAI()
    const folder = await mkdtemp(join(dir, 'chat-'))
    await writeFile(
      join(folder, 'agent.yaml'),
      `${fakeModelManifest(upstream.url)}---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: talker }
spec: { prompt: You talk. }
`,
    )
    const { key, sha256 } = newKey()
    await writeFile(join(dir, 'chat-keys.json'), JSON.stringify({ keys: [{ id: 'chat', sha256 }] }))
    const gateway = await startArk([
      'dev',
      '-f',
      folder,
      '--port',
      '0',
      '--probe-interval',
      '0',
      '--api-keys',
      join(dir, 'chat-keys.json'),
    ])
    try {
      const keyed = await chat(['--url', gateway.url, 'agent/talker'], 'first\nsecond\n/reset\nthird\n', {
        ARK_API_KEY: key,
      })
      expect(keyed).toEqual({ code: 0, stdout: 'You said: first\nYou said: second\nYou said: third\n' })
      // Each turn sent the conversation so far; /reset started it again.
      const sent = upstream.calls
        .filter((c) => c.path.endsWith('/chat/completions'))
        .map((c) =>
          (c.body as { messages: { role: string; content: string }[] }).messages
            .filter((m) => m.role !== 'system')
            .map((m) => `${m.role}: ${m.content}`),
        )
      expect(sent).toEqual([
        ['user: first'],
        ['user: first', 'assistant: You said: first', 'user: second'],
        ['user: third'],
      ])
      const keyless = await chat(['--url', gateway.url, 'agent/talker'], 'hi\n')
      expect(keyless.code).toBe(1)
      expect(keyless.stdout).toMatch(/^error: 401 /)
      expect(keyless.stdout).not.toContain(key)
    } finally {
      await gateway.stop()
      await upstream.close()
    }
  })
})

describe('ark run', () => {
  /** Seed 003's shape: ArkAgents on model ids (no Model resource), and an ArkTeam of them. */
  const SEED_003 = `apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: researcher }
spec:
  model: llama3.2
  systemPrompt: You are a research agent. Gather and summarize information accurately and concisely.
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkAgent
metadata: { name: writer }
spec: { model: gpt-4o, systemPrompt: You write. }
---
apiVersion: arkonis.dev/v1alpha1
kind: ArkTeam
metadata: { name: research-team }
spec:
  roles: [{ name: research, arkAgent: researcher }, { name: write, arkAgent: writer }]
  pipeline: [{ role: research }, { role: write, dependsOn: [research] }]
`

  it('runs the team a file declares on the mock model, printed as ark query prints it', async () => {
    const file = join(dir, 'team.yaml')
    await writeFile(file, SEED_003)
    // A key in the environment must not matter: --provider mock keeps every call in the process.
    const { stdout, stderr } = await run(
      process.execPath,
      ['bin/ark.ts', 'run', file, '--provider', 'mock', 'find out about tides'],
      { env: { ...process.env, ARK_MANIFESTS: '', OPENAI_API_KEY: 'sk-would-be-sent' } },
    )
    expect(stderr).toBe('')
    expect(stdout).toMatch(/^Name: +team\/default\/research-team$/m)
    expect(stdout).toMatch(/^Phase: +done$/m)
    expect(stdout).toContain('TeamExecutionStart')
    expect(stdout).toContain('Executing member research in team research-team')
  })

  it('--dry-run names what would run and estimates each first call, running nothing', async () => {
    const file = join(dir, 'team-dry.yaml')
    await writeFile(file, SEED_003)
    const dry = await ark('run', file, '--dry-run', 'find out about tides')
    expect(dry.code).toBe(0)
    expect(dry.stdout).toMatch(/^Would run: +team\/default\/research-team \(pipeline, 2 members\)$/m)
    const row = (name: string) => new RegExp(`^${name} +(\\S+) +\\d+ +True +(\\d+)$`, 'm').exec(dry.stdout)
    const researcher = row('researcher')
    const writer = row('writer')
    expect(researcher?.[1]).toBe('llama3.2')
    expect(writer?.[1]).toBe('gpt-4o')
    // The system prompt, the input and the tool definitions, 4 characters a token.
    const estimate = (m: RegExpExecArray | null) => Number(m?.[2])
    const prompt = 'You are a research agent. Gather and summarize information accurately and concisely.'
    expect(estimate(researcher)).toBeGreaterThan(
      Math.ceil((prompt.length + 'find out about tides'.length) / 4),
    )
    expect(estimate(writer)).toBeLessThan(estimate(researcher))
    expect(dry.stdout).not.toContain('Phase:')
  })

  it('asks which one when a file declares several, and refuses a bad --provider', async () => {
    const several = await ark('run', 'examples/agents.yaml', 'hi')
    expect(several.code).toBe(2)
    expect(several.stderr).toMatch(
      /the file declares several: agent\/default\/\S+, .*; say which with --target/,
    )
    const picked = await ark(
      'run',
      'examples/support-agent.yaml',
      '--target',
      'agent/support-agent',
      '--provider',
      'mock',
      'hi',
    )
    expect(picked.stdout).toMatch(/^Name: +agent\/default\/support-agent$/m)
    const broken = join(dir, 'broken.yaml')
    await writeFile(broken, SEED_003.replace('model: llama3.2', 'model: [not, a, string]'))
    const unreadable = await ark('run', broken, 'hi')
    expect(unreadable.code).toBe(1)
    expect(unreadable.stderr).toMatch(/^ark run: .*broken\.yaml.*ArkAgent default\/researcher: spec\.model/m)
    const bad = await ark('run', 'examples/support-agent.yaml', '--provider', 'openai', 'hi')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--provider must be mock or auto')
  })
})
