/**
 * `npm run build:plugins`: compiles each plugin folder here (plugins/<name>/index.ts, AssemblyScript on the
 * Extism PDK) to plugins/dist/<name>.wasm, offline. A plugin whose .wasm is newer than its sources and
 * plugins/lib/ is skipped, so `npm start` and `npm test` can run it every time.
 */
import { mkdir, readdir, stat } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('.', import.meta.url))
// asc names elements (the `abort` override) by path from the working directory.
process.chdir(fileURLToPath(new URL('..', import.meta.url)))
const dist = `${root}dist`
const force = process.argv.includes('--force')

async function newest(dir: string): Promise<number> {
  let t = 0
  for (const f of await readdir(dir))
    if (f.endsWith('.ts')) t = Math.max(t, (await stat(`${dir}/${f}`)).mtimeMs)
  return t
}

async function mtime(file: string): Promise<number> {
  try {
    return (await stat(file)).mtimeMs
  } catch {
    return 0
  }
}

/** What this script uses of the AssemblyScript compiler's API. */
interface Asc {
  main(
    args: string[],
    options: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
  ): Promise<{ error: Error | null }>
}
// Imported by a name TypeScript does not follow: the compiler's typings declare AssemblyScript's own globals,
// which would change the meaning of ordinary TypeScript in the rest of the project.
const compiler = 'assemblyscript/asc'
const asc = (await import(compiler)) as { default: Asc }

await mkdir(dist, { recursive: true })
const lib = await newest(`${root}lib`)
const names = (await readdir(root, { withFileTypes: true }))
  .filter((e) => e.isDirectory() && e.name !== 'lib' && e.name !== 'dist')
  .map((e) => e.name)
  .sort()
let failed = false
for (const name of names) {
  const out = `${dist}/${name}.wasm`
  if (!force && (await mtime(out)) > Math.max(lib, await newest(`${root}${name}`))) continue
  const { error } = await asc.default.main(
    [
      `plugins/${name}/index.ts`,
      '--outFile',
      out,
      '--use',
      'abort=plugins/lib/ark/arkAbort',
      '--optimizeLevel',
      '3',
      '--shrinkLevel',
      '1',
      '--noAssert',
    ],
    // Compiler diagnostics, with source excerpts, go straight to the terminal.
    { stdout: process.stdout, stderr: process.stderr },
  )
  if (error) {
    failed = true
    console.error(`plugins/${name}: ${error.message}`)
  } else console.log(`plugins/dist/${name}.wasm`)
}
if (failed) process.exit(1)
