/** Runs the sandbox suite on Deno and prints one JSON report for sandbox.test.ts. */
import { cases, startSuite } from './suite.ts'

declare const Deno: { version: { deno: string } }

const ctx = await startSuite()
const results: { name: string; error?: string }[] = []
for (const c of cases) {
  try {
    await c.run(ctx)
    results.push({ name: c.name })
  } catch (err) {
    results.push({ name: c.name, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
  }
}
await ctx.close()
// eslint-disable-next-line no-console -- the report sandbox.test.ts reads
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, results }))
