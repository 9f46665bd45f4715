/** Runs the gateway suite on Deno (Deno.serve adapter) and prints one JSON report for gateway.test.ts. */
import { cases, clientFor } from './gateway-suite.ts'
import { startGateway } from './gateway-server.ts'

declare const Deno: { version: { deno: string } }

const gw = await startGateway()
const results: { name: string; error?: string }[] = []
for (const c of cases) {
  try {
    await c.run({ url: gw.url, client: clientFor(gw.url) })
    results.push({ name: c.name })
  } catch (err) {
    results.push({ name: c.name, error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
  }
}
await gw.close()
console.log(JSON.stringify({ runtime: `deno ${Deno.version.deno}`, results }))
