/**
 * The compiled build (`npm run build`, build.ts) is the ark that containers run: built into a folder outside the
 * project, where no TypeScript source is within reach, and run by Node with type stripping off. `ark dev` serves
 * an agent whose Wasm tool runs on a plugin thread and reads a manifest large enough for the parse thread (both
 * are Workers loaded by URL, which tsc does not rewrite); `ark controller` runs seed 000's Query to done on the
 * real API server.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import type { KubeServer } from './kube.ts'
import { startKube } from './kube.ts'
import { SUPPORT_AGENT_ON_MOCK } from './seed-000.ts'

const run = promisify(execFile)

let dir: string
let out: string
let kube: KubeServer
const processes: ArkProcess[] = []

/** Node with type stripping off: a `.ts` module anywhere in the build's graph fails to load. */
const NODE_FLAGS = ['--no-experimental-strip-types']

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ark-dist-'))
  out = join(dir, 'ark')
  const [, started] = await Promise.all([run(process.execPath, ['build.ts', '--out-dir', out]), startKube()])
  kube = started
  await kube.installCrds()
  // The packages ark imports, as `npm ci --omit=dev` beside the build would install them.
  await symlink(resolve('node_modules'), join(out, 'node_modules'), 'dir')
}, 120_000)

afterAll(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop()))
  await kube.stop()
  await rm(dir, { recursive: true, force: true })
})

async function ark(args: readonly string[], ready?: string): Promise<ArkProcess> {
  const p = await startArk(args, { entry: join(out, 'bin', 'ark.js'), nodeFlags: NODE_FLAGS, ready })
  processes.push(p)
  return p
}

/** Every file of the build, relative to it (node_modules left out). */
async function filesOf(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries
    .filter((e) => e.isFile() && !e.parentPath.includes('node_modules'))
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
}

describe('the compiled build', () => {
  it('holds JavaScript, the built-in plugins and a package.json, and no TypeScript, tests or benchmarks', async () => {
    const files = await filesOf(out)
    expect(files).toContain('bin/ark.js')
    expect(files).toContain('sandbox/worker.js')
    expect(files).toContain('controller/store/parse-worker.js')
    expect(files).toEqual(expect.arrayContaining(['plugins/dist/text-stats.wasm', 'plugins/dist/http.wasm']))
    expect(files).toEqual(
      expect.arrayContaining([
        'gateway/ui/assets/index.html',
        'gateway/ui/assets/app.js',
        'gateway/ui/assets/style.css',
      ]),
    )
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([])
    expect(files.filter((f) => /\.test\.|^bench\/|^test\//.test(f))).toEqual([])
    const { stdout } = await run(process.execPath, [...NODE_FLAGS, join(out, 'bin', 'ark.js'), '--version'])
    expect(stdout.trim()).toMatch(/^ark \d+\.\d+\.\d+$/)
  })

  it('ark dev runs a Wasm tool on its plugin thread and reads a large manifest on its parse thread', async () => {
    const manifests = join(dir, 'manifests')
    await run('mkdir', ['-p', manifests])
    await writeFile(
      join(manifests, 'counter.yaml'),
      `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock-1 } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Tool
metadata: { name: stats }
spec:
  type: wasm
  inputSchema: { type: object, properties: { text: { type: string } }, required: [text] }
  wasm: { module: { builtin: text-stats } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: counter }
spec: { prompt: Count words., tools: [{ type: custom, name: stats }] }
`,
    )
    // Over the 8 KiB that parse-thread.ts parses inline: this file goes to the parse Worker.
    const padding = Array.from({ length: 300 }, (_, i) => `# padding line ${String(i)} of a large manifest`)
    await writeFile(
      join(manifests, 'large.yaml'),
      `${padding.join('\n')}
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: from-large-file }
spec: { prompt: hi }
`,
    )
    const dev = await ark(['dev', '-f', manifests, '--port', '0', '--probe-interval', '0'])
    const client = new OpenAI({ baseURL: `${dev.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    await vi.waitFor(
      async () => {
        const ids = (await client.models.list()).data.map((m) => m.id)
        expect(ids).toEqual(expect.arrayContaining(['agent/counter', 'agent/from-large-file']))
      },
      { timeout: 10_000, interval: 100 },
    )
    const completion = await client.chat.completions.create({
      model: 'agent/counter',
      messages: [{ role: 'user', content: 'stats {"text": "one two three"}' }],
    })
    const answer = completion.choices[0]?.message.content ?? ''
    expect(JSON.parse(answer.replace(/^stats: /, ''))).toMatchObject({ words: 3, lines: 1 })
    // The dashboard's files are found beside the compiled gateway.
    const page = await fetch(`${dev.url}/ui/app.js`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('/ui/api/state')
  })

  it("ark controller runs seed 000's Query to done on the real API server", async () => {
    const ns = await kube.namespace('dist')
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], { input: SUPPORT_AGENT_ON_MOCK })
    await ark(
      [
        'controller',
        '--kubeconfig',
        kube.kubeconfig,
        '--namespaces',
        ns,
        '--lease-namespace',
        ns,
        '--port',
        '0',
      ],
      'synced',
    )
    await kube.kubectl(['apply', '-n', ns, '-f', '-'], {
      input: `apiVersion: ark.mckinsey.com/v1alpha1
kind: Query
metadata: { name: test-password-reset }
spec:
  input: How do I reset my password?
  targets: [{ type: agent, name: support-agent }]
`,
    })
    await vi.waitFor(
      async () => {
        const phase = await kube.kubectl([
          'get',
          'query',
          'test-password-reset',
          '-n',
          ns,
          '-o',
          'jsonpath={.status.phase}',
        ])
        expect(phase).toBe('done')
      },
      { timeout: 20_000, interval: 200 },
    )
  })
})
