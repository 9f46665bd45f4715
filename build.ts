/**
 * `npm run build`: ark compiled to JavaScript in dist/ (or `--out-dir <dir>`), for containers and anywhere memory
 * counts. `node dist/bin/ark.js <command>` is the same CLI as `node bin/ark.ts <command>`.
 *
 * Why ship JavaScript when Node runs the TypeScript sources as they are: Node strips types with a Wasm build of
 * amaro that stays loaded, about 27 MiB of every process's RSS, and `ark controller` in a 128 MiB container is
 * OOM-killed from sources but not from this build (bench/scenarios/controller.ts measured both).
 *
 * tsc compiles what bin/ark.ts reaches (tsconfig.build.json names the entry points, so tests and benchmarks
 * stay out) and rewrites `.ts` import specifiers to `.js`; the built-in Wasm plugins are copied beside it, where
 * sandbox/modules.ts looks for them, and so are the dashboard's page and script (gateway/ui/assets); a package.json marks the output as ES modules wherever it is copied. The
 * packages it imports resolve from the node_modules above it, or from one installed beside it.
 */
import { execFileSync } from 'node:child_process'
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = fileURLToPath(new URL('.', import.meta.url))
const { values } = parseArgs({ options: { 'out-dir': { type: 'string', default: 'dist' } } })
const out = resolve(values['out-dir'])

// A fresh output, so a module deleted from the sources does not live on in the build. Only a folder this
// script made (or an empty one) is removed: a mistyped --out-dir must not wipe something else.
if (existsSync(out) && readdirSync(out).length > 0) {
  if (!existsSync(join(out, 'bin', 'ark.js'))) {
    console.error(
      `build: ${out} is not empty and holds no earlier build (bin/ark.js); choose another --out-dir`,
    )
    process.exit(2)
  }
  rmSync(out, { recursive: true })
}

const node = process.execPath
execFileSync(node, [join(root, 'plugins', 'build.ts')], { stdio: 'inherit' })
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
execFileSync(node, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit' })

mkdirSync(join(out, 'plugins'), { recursive: true })
cpSync(join(root, 'plugins', 'dist'), join(out, 'plugins', 'dist'), { recursive: true })
// The dashboard's page, script and style (gateway/ui/assets.ts reads them from beside itself); not its tsconfig.
cpSync(join(root, 'gateway', 'ui', 'assets'), join(out, 'gateway', 'ui', 'assets'), {
  recursive: true,
  filter: (source) => !source.endsWith('tsconfig.json'),
})
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string
  version: string
  engines: unknown
  dependencies: unknown
}
writeFileSync(
  join(out, 'package.json'),
  `${JSON.stringify(
    {
      name: pkg.name,
      version: pkg.version,
      private: true,
      type: 'module',
      engines: pkg.engines,
      bin: { ark: 'bin/ark.js' },
      dependencies: pkg.dependencies,
    },
    null,
    2,
  )}\n`,
)
chmodSync(join(out, 'bin', 'ark.js'), 0o755)
console.log(`build: ${out}; run it with: node ${join(values['out-dir'], 'bin', 'ark.js')} <command>`)
