/**
 * The auth scenario's in-process gateways, in a worker thread (bench/scenarios/auth.ts starts it): `open`;
 * `keys`, asking for a key without scope or limits; and `limits`, whose key has a scope and every limit
 * (none of which it reaches, so each check a limited key goes through is paid). Each is built as `ark dev`
 * builds its gateway (--max-in-flight, --queue-wait) over one catalog of the bench's manifests (stack.ts),
 * and called with the HTTP half's request to agent/mock-agent through @hono/node-server's listener
 * (node-inject.ts), as a served request is.
 *
 * A worker, because the adapter replaces the global Request and Response (as in a server), which must not
 * change what the other scenarios of the same bench run measure. The three share it, and so share its
 * collector: a batch of one pays for garbage of the others' as theirs pay for its own, which keeps pairs of
 * batches comparable. Tried and dropped: a process (or a worker) each, which is closer to a server (its code
 * sees one shape of request) but whose batches of the same gateway read 46 to 218 us a request as each
 * heap collected on its own rhythm.
 *
 * Messages: `{ which, n }` answers `{ microseconds }`, the process's CPU time per request over `n` requests
 * to that gateway (the thread that asked waits meanwhile), or `{ error }`; `{ close: true }` ends it. The
 * first message, unasked, says they are built and warm.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parentPort } from 'node:worker_threads'
import { startControlPlane } from '../../controller/index.ts'
import { DEFAULTS, KeyRing, createGateway, newKey } from '../../gateway/index.ts'
import { CHAT_MESSAGES, manifests } from './stack.ts'
import { nodeInjector } from './node-inject.ts'

export type Which = 'open' | 'keys' | 'limits'
export type Ask = { readonly which: Which; readonly n: number } | { readonly close: true }
export type Answer = { readonly microseconds: number } | { readonly error: string }

const port = parentPort
if (port === null) throw new Error('auth-gateways.ts runs in a worker thread (bench/scenarios/auth.ts)')
const send = (answer: Answer) => port.postMessage(answer)

const dir = await mkdtemp(join(tmpdir(), 'ark-bench-auth-'))
// The bench's manifests, as `ark dev` in the HTTP half serves them; no request here reaches the upstream.
await writeFile(join(dir, 'bench.yaml'), manifests('http://127.0.0.1:9'))
const cp = await startControlPlane(dir, { watch: false })
const { key, sha256 } = newKey()
const keys = new KeyRing()
keys.replace([{ id: 'bench', sha256 }])
const limitedKeys = new KeyRing()
limitedKeys.replace([
  {
    id: 'bench',
    sha256,
    scope: { namespaces: ['default'], targets: ['agent/*'] },
    limits: { requestsPerSecond: 1e9, burst: 1e9, tokensPerDay: 1e15 },
  },
])
const asArkDev = {
  catalog: cp.catalog,
  maxInFlight: DEFAULTS.maxInFlight,
  maxQueueWaitMs: DEFAULTS.maxQueueWaitMs,
}
const gateways = {
  open: createGateway(asArkDev),
  keys: createGateway({ ...asArkDev, auth: { keys } }),
  limits: createGateway({ ...asArkDev, auth: { keys: limitedKeys } }),
}
const injectors = {
  open: nodeInjector((r) => gateways.open.fetch(r, undefined)),
  keys: nodeInjector((r) => gateways.keys.fetch(r, undefined)),
  limits: nodeInjector((r) => gateways.limits.fetch(r, undefined)),
}
const request = {
  method: 'POST',
  url: '/v1/chat/completions',
  // The same request to each, Authorization included: the OpenAI SDK sends one to an open gateway too (its
  // apiKey is required), so the header's own cost is not the checks'.
  headers: { host: '127.0.0.1', 'content-type': 'application/json', authorization: `Bearer ${key}` },
  body: JSON.stringify({ model: 'agent/mock-agent', messages: CHAT_MESSAGES }),
}

async function time(which: Which, n: number): Promise<number> {
  const inject = injectors[which]
  // CPU time, not wall time: everything a request costs is this process's, and on a shared VM wall time
  // also counts what other tenants took.
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    const res = await inject(request)
    if (res.status !== 200 || !res.raw.includes('"chat.completion"'))
      throw new Error(`${which}: ${String(res.status)} ${res.raw.slice(0, 300)}`)
    // Back to the event loop now and then, as a server is between requests: until the microtask queue
    // drains, every WeakRef made meanwhile keeps its target (a run's composed AbortSignals), and a batch
    // that never yields grew the heap by 1.7 KB a request and paid ever longer collections for it.
    if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve))
  }
  const used = process.cpuUsage(c0)
  return (used.user + used.system) / n
}

port.on('message', (ask: Ask) => {
  if ('close' in ask) {
    void (async () => {
      for (const g of Object.values(gateways)) await g.close()
      await cp.close()
      await rm(dir, { recursive: true, force: true })
      port.close()
    })()
    return
  }
  time(ask.which, ask.n).then(
    (microseconds) => send({ microseconds }),
    (err: unknown) => send({ error: err instanceof Error ? err.message : String(err) }),
  )
})
// Warm all (JIT, prepared agents) before anything is measured, then say so.
for (const which of ['open', 'keys', 'limits'] as const) await time(which, 4000)
send({ microseconds: 0 })
