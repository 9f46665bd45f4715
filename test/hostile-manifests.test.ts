/**
 * Issue 15: one manifest file froze the gateway. The hostile files of test/fixtures/hostile-manifests land in
 * the folder that a running gateway (`ark dev`'s assembly) follows live, while requests keep coming: each
 * file is refused with a problem naming it and the limit, and every request meanwhile gets its right answer.
 */
import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { startEmbedded, type Embedded } from '../bin/embedded.ts'
import { formatProblem } from '../controller/api/index.ts'
import { serve, silentLogger, type ServeHandle } from '../gateway/index.ts'
import { HOSTILE_CASES, writeHostileManifests } from './fixtures/hostile-manifests/hostile.ts'

let dir: string | undefined
let system: Embedded | undefined
let server: ServeHandle | undefined

afterEach(async () => {
  await server?.close()
  await system?.close()
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  dir = system = server = undefined
})

async function waitFor(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('hostile manifests in the folder a running gateway follows', () => {
  it(
    'are refused one by one, naming file and limit, while requests keep being answered',
    { timeout: 120_000 },
    async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'ark-hostile-'))
      await copyFile(path.join('test/fixtures/hostile-manifests/good.yaml'), path.join(dir, 'good.yaml'))
      const kept =
        'apiVersion: ark.mckinsey.com/v1alpha1\nkind: Agent\nmetadata: { name: kept }\nspec: { prompt: hi }\n'
      await writeFile(path.join(dir, 'kept.yaml'), kept)
      system = await startEmbedded({
        manifests: dir,
        log: silentLogger,
        probeIntervalSeconds: 0,
      })
      server = await serve(system.gateway.fetch, { host: '127.0.0.1', port: 0 })
      const url = `http://127.0.0.1:${String(server.port)}/v1/chat/completions`
      const ask = async (agent: string): Promise<string> => {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: `agent/${agent}`, messages: [{ role: 'user', content: 'hi' }] }),
        })
        const body = (await response.json()) as { choices?: { message: { content: string } }[] }
        return `${String(response.status)} ${body.choices?.[0]?.message.content ?? JSON.stringify(body)}`
      }
      expect(await ask('steady')).toBe('200 You said: hi')
      expect(await ask('kept')).toBe('200 You said: hi')

      const store = system.controlPlane.store
      const answers: string[] = []
      let loading = true
      const traffic = (async () => {
        while (loading) answers.push(await ask('steady'))
      })()

      await writeHostileManifests(dir)
      // A file that loaded turns hostile: what it last held stays.
      await writeFile(path.join(dir, 'kept.yaml'), `${'- '.repeat(10_000)}x\n`)
      const printed = () => store.problems().map((p) => `${p.severity}: ${formatProblem(p)}`)
      const expected = [
        ...HOSTILE_CASES.flatMap((c) =>
          c.problem === undefined ? [] : [`${c.problem.severity}: ${c.problem.text}`],
        ),
        'error: kept.yaml:1: collections nested deeper than the limit of 100 levels for one manifest file; flatten the structure',
        'warning: kept.yaml: keeping the 1 resource(s) last loaded from this file until it can be read again',
      ]
      const huge = () => [...store.list()].some((r) => r.kind === 'ConfigMap' && r.ref.name === 'huge')
      await waitFor(
        'every hostile file to be reported',
        () => expected.every((line) => printed().includes(line)) && huge(),
      )
      const answeredWhileLoading = answers.length
      loading = false
      await traffic

      expect(printed().sort()).toEqual(expected.sort())
      // Requests kept coming all along, and every one got its answer.
      expect(answeredWhileLoading).toBeGreaterThan(0)
      expect(answers.filter((a) => a !== '200 You said: hi')).toEqual([])
      // The good resources of the folder, the kept one included, still work.
      expect(await ask('steady')).toBe('200 You said: hi')
      expect(await ask('kept')).toBe('200 You said: hi')
    },
  )

  it(
    'are refused the same way on Deno, parse worker and FIFO check included',
    { timeout: 60_000 },
    async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'ark-hostile-'))
      await writeHostileManifests(dir, { withGood: true })
      const validate = async (command: string, args: string[]): Promise<string> => {
        try {
          await promisify(execFile)(command, [...args, 'bin/ark.ts', 'validate', dir!], {
            env: { ...process.env, ARK_MANIFESTS: '', DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' },
          })
          return 'exit 0'
        } catch (err) {
          const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string }
          return `exit ${String(code)}\n${stdout}${stderr}`
        }
      }
      const deno = await validate('node_modules/.bin/deno', ['run', '--allow-read', '--allow-env'])
      expect(deno).toContain('warning: fifo.yaml: a FIFO (named pipe), not a regular file; skipped')
      expect(deno).toBe(await validate(process.execPath, []))
    },
  )
})
