/**
 * What the API-key end-to-end files share: a real `ark dev` over a folder of manifests that asks for the keys
 * of a keys file there (rewritten by tests to rotate them), keys files written from ids and digests, and the
 * OpenAI SDK's refusals as values to look at.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type OpenAI from 'openai'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'

export interface KeyEntry {
  readonly id: string
  readonly sha256: string
  /** More of the entry (scope, limits), as YAML lines indented by four spaces, each ending in a newline. */
  readonly more?: string
}

/** A keys file of these entries; `namespaces`: the namespaces' limits, as YAML lines indented by two. */
export function keysFile(entries: readonly KeyEntry[], namespaces?: string): string {
  const keys = entries.map((k) => `  - id: ${k.id}\n    sha256: ${k.sha256}\n${k.more ?? ''}`).join('')
  return `keys:\n${keys}${namespaces === undefined ? '' : `namespaces:\n${namespaces}`}`
}

export interface KeyedArk {
  readonly ark: ArkProcess
  /** The folder of the manifests and the keys file, for files a test writes beside them. */
  readonly dir: string
  /** The keys file the process follows. */
  readonly keysPath: string
  stop(): Promise<void>
}

/** `ark dev -f <dir> --api-keys <dir>/keys.yaml` and `args`, once it says keys are required. */
export async function startKeyedArk(
  name: string,
  manifests: string,
  keys: string,
  args: readonly string[] = [],
): Promise<KeyedArk> {
  const dir = await mkdtemp(join(tmpdir(), `ark-${name}-`))
  const keysPath = join(dir, 'keys.yaml')
  await writeFile(join(dir, 'agents.yaml'), manifests)
  await writeFile(keysPath, keys)
  const ark = await startArk(['dev', '-f', dir, '--port', '0', '--api-keys', keysPath, ...args], {
    ready: 'API keys required',
  })
  return {
    ark,
    dir,
    keysPath,
    async stop() {
      await ark.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** The SDK error a call was refused with, or undefined when it succeeded. */
export const refusal = (p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError> | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
  )
