/**
 * Runs on Deno (`deno task smoke`): loads the examples through the same store, catalog and reconcilers, and
 * prints what it found as JSON, so the Node test suite can compare the two runtimes.
 */
import { startControlPlane } from '../controller/index.ts'

// Typed through globalThis so that Node's typecheck of this file needs no Deno declarations.
const { Deno } = globalThis as unknown as { Deno: { args: string[]; version: { deno: string } } }

const cp = await startControlPlane(Deno.args[0] ?? 'examples', { watch: false })
const out: Record<string, string> = {}
for (const r of cp.store.list()) {
  const c = cp.store.status(r.key)?.conditions.find((x) => x.type === 'Available')
  out[r.key] = c === undefined ? '-' : `${c.status} ${c.reason}`
}
await cp.close()
console.log(
  JSON.stringify({
    runtime: `deno ${Deno.version.deno}`,
    resources: out,
    problems: cp.store.problems().length,
  }),
)
