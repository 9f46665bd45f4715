/**
 * The sandbox suite: hostile plugins against every limit, and friendly ones through the same paths.
 * Runtime-neutral (node:assert, node:http) so that the same cases run on Node under vitest (sandbox.test.ts)
 * and on Deno (deno-suite.ts).
 */
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { PluginSpec, SandboxedPlugin } from './index.ts'
import { ModuleRejected, Sandbox, SandboxError, sha256 } from './index.ts'
import type { PluginName } from './testdata/plugins.ts'
import { wasm } from './testdata/plugins.ts'

export interface SuiteContext {
  readonly sandbox: Sandbox
  /** A local HTTP server: /hello answers 200, /echo echoes the body, /to/<url> redirects there. */
  readonly web: string
  /** Another local server's origin, never granted: a redirect target that must be refused. */
  readonly other: string
}

export interface Case {
  readonly name: string
  run(ctx: SuiteContext): Promise<void>
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const bytesOf = (s: string): Uint8Array => new TextEncoder().encode(s)

async function plugin(ctx: SuiteContext, name: PluginName, spec: Partial<PluginSpec> = {}) {
  return ctx.sandbox.load({ source: { bytes: await wasm(name), name }, function: 'call', ...spec })
}

/** The error `work` fails with, which must be a `type`; `success` says what it means when it does not fail. */
async function thrown<E extends Error>(
  work: Promise<unknown>,
  type: new (...args: never[]) => E,
  success: string,
): Promise<E> {
  try {
    await work
  } catch (err) {
    if (err instanceof type) return err
    throw err
  }
  assert.fail(success)
}

const failure = (call: Promise<unknown>) => thrown(call, SandboxError, 'the call succeeded')
const rejection = (load: Promise<unknown>) => thrown(load, ModuleRejected, 'the module was accepted')

/** The built-in webhook plugin's wire format: request JSON, a newline, the body. */
function webhook(url: string, method = 'GET', body = '', headers: Record<string, string> = {}): Uint8Array {
  return bytesOf(`${JSON.stringify({ url, method, headers })}\n${body}`)
}

function httpPlugin(ctx: SuiteContext, allowedHosts: string[]): Promise<SandboxedPlugin> {
  return ctx.sandbox.load({ source: { builtin: 'http' }, function: 'call', allowedHosts })
}

const hostOf = (url: string): string => new URL(url).host

export const cases: Case[] = [
  {
    name: 'echo answers its input byte for byte, many times over on one instance',
    async run(ctx) {
      const echo = await ctx.sandbox.load({ source: { builtin: 'echo' }, function: 'call' })
      const input = bytesOf('héllo, wörld ✓')
      for (let i = 0; i < 50; i++) assert.deepEqual(await echo.call(input), input)
      assert.deepEqual(await echo.call(new Uint8Array(0)), new Uint8Array(0))
    },
  },
  {
    name: 'config values reach the plugin',
    async run(ctx) {
      const echo = await ctx.sandbox.load({
        source: { builtin: 'echo' },
        function: 'config',
        config: { greeting: 'bonjour' },
      })
      assert.equal(text(await echo.call(bytesOf('greeting'))), 'bonjour')
      assert.equal(text(await echo.call(bytesOf('missing'))), '')
    },
  },
  {
    name: 'the example custom tool (text-stats) counts words',
    async run(ctx) {
      const stats = await ctx.sandbox.load({ source: { builtin: 'text-stats' }, function: 'call' })
      const out = JSON.parse(
        text(await stats.call(bytesOf(JSON.stringify({ text: 'the cat and the hat\nthe end' })))),
      ) as Record<string, unknown>
      assert.deepEqual(out, { words: 7, lines: 2, characters: 27, longest: 'the', top: 'the' })
      const err = await failure(stats.call(bytesOf('{}')))
      assert.equal(err.kind, 'error')
      assert.match(err.message, /needs a string argument "text"/)
    },
  },
  {
    name: 'an infinite loop is stopped at its timeout; the event loop stays free and the next call works',
    async run(ctx) {
      const loop = await plugin(ctx, 'loop', { limits: { timeoutMs: 300 } })
      let ticks = 0
      const ticker = setInterval(() => ticks++, 10)
      const started = performance.now()
      const err = await failure(loop.call(new Uint8Array(0)))
      const elapsed = performance.now() - started
      clearInterval(ticker)
      assert.equal(err.kind, 'timeout')
      assert.match(err.message, /did not finish within 300 ms/)
      // Stopped, not left running: well before a second timeout would pass.
      assert.ok(elapsed < 300 + 1500, `stopped after ${String(Math.round(elapsed))} ms`)
      // The gateway's own timers kept firing while the plugin spun.
      assert.ok(ticks >= 10, `only ${String(ticks)} timer ticks during the loop`)
      const seven = await plugin(ctx, 'seven')
      assert.deepEqual(await seven.call(new Uint8Array(0)), new Uint8Array([7]))
      // The same looping plugin is stopped again, on a new thread.
      assert.equal((await failure(loop.call(new Uint8Array(0)))).kind, 'timeout')
    },
  },
  {
    name: 'a call whose caller gives up is stopped',
    async run(ctx) {
      const loop = await plugin(ctx, 'loop', { limits: { timeoutMs: 60_000 } })
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 100)
      const started = performance.now()
      const err = await failure(loop.call(new Uint8Array(0), { signal: controller.signal }))
      assert.equal(err.kind, 'error')
      assert.match(err.message, /cancelled/)
      assert.ok(performance.now() - started < 5000)
    },
  },
  {
    name: 'memory growth stops at the cap',
    async run(ctx) {
      const grow = await plugin(ctx, 'grow', { limits: { memoryMiB: 2 } })
      const err = await failure(grow.call(new Uint8Array(0)))
      assert.equal(err.kind, 'memory')
      assert.match(err.message, /2 MiB/)
    },
  },
  {
    name: 'host memory asked for through the kernel stops at the cap',
    async run(ctx) {
      const bomb = await plugin(ctx, 'allocBomb', { limits: { memoryMiB: 8 } })
      const err = await failure(bomb.call(new Uint8Array(0)))
      assert.equal(err.kind, 'memory')
      assert.match(err.message, /over its cap of 8388608/)
    },
  },
  {
    name: 'host memory taken by reading config values in a loop stops at the cap',
    async run(ctx) {
      const bomb = await plugin(ctx, 'configBomb', {
        config: { k: 'x'.repeat(65536) },
        limits: { memoryMiB: 8, timeoutMs: 20_000 },
      })
      const err = await failure(bomb.call(new Uint8Array(0)))
      assert.equal(err.kind, 'memory')
    },
  },
  {
    name: 'a memory limit beyond what Wasm can address is refused',
    async run(ctx) {
      const err = await rejection(plugin(ctx, 'seven', { limits: { memoryMiB: 8192 } }))
      assert.match(err.message, /memoryMiB 8192 is over the 4096 MiB/)
    },
  },
  {
    name: 'a plugin that catches the host refusing it is still stopped, and at once',
    async run(ctx) {
      const sneaky = await plugin(ctx, 'sneaky', { limits: { memoryMiB: 8, timeoutMs: 30_000 } })
      const started = performance.now()
      const err = await failure(sneaky.call(new Uint8Array(0)))
      // The negative size is the first limit it broke; the thread is terminated, not left to its loop.
      assert.equal(err.kind, 'trap')
      assert.match(err.message, /host allocation of -\d+ bytes/)
      assert.ok(performance.now() - started < 10_000)
    },
  },
  {
    name: "a plugin's own error message is cut to a bounded length",
    async run(ctx) {
      const err = await failure((await plugin(ctx, 'hugeError')).call(new Uint8Array(0)))
      assert.equal(err.kind, 'error')
      assert.ok(err.message.length < 17_000, `${String(err.message.length)} characters`)
      assert.match(err.message, /^x{1000}.*… \(1048576 characters in all\)$/s)
    },
  },
  {
    name: 'after a trap the next call runs on a new instance',
    async run(ctx) {
      const counter = await plugin(ctx, 'counter')
      const call = async (input: string) => [...(await counter.call(bytesOf(input)))]
      assert.deepEqual(await call(''), [1])
      assert.deepEqual(await call(''), [2])
      assert.equal((await failure(counter.call(bytesOf('trap')))).kind, 'trap')
      assert.deepEqual(await call(''), [1])
    },
  },
  {
    name: 'the timeout also bounds waiting for a free thread',
    async run() {
      const sandbox = new Sandbox({ maxThreads: 1 })
      try {
        const loop = await sandbox.load({
          source: { bytes: await wasm('loop'), name: 'loop' },
          function: 'call',
          limits: { timeoutMs: 3000 },
        })
        const echo = await sandbox.load({
          source: { builtin: 'echo' },
          function: 'call',
          limits: { timeoutMs: 200 },
        })
        const busy = failure(loop.call(new Uint8Array(0)))
        await new Promise((r) => setTimeout(r, 50))
        const started = performance.now()
        const err = await failure(echo.call(new Uint8Array(1)))
        assert.equal(err.kind, 'timeout')
        assert.match(err.message, /no plugin thread was free within 200 ms/)
        assert.ok(performance.now() - started < 2000)
        assert.equal((await busy).kind, 'timeout')
      } finally {
        await sandbox.close()
      }
    },
  },
  {
    name: 'plugins dropped to bound their number are registered again when called',
    async run() {
      const sandbox = new Sandbox({ maxThreads: 1, maxPlugins: 2 })
      try {
        const load = (greeting: string) =>
          sandbox.load({ source: { builtin: 'echo' }, function: 'config', config: { greeting } })
        const first = await load('one')
        await load('two')
        await load('three')
        assert.equal(text(await first.call(bytesOf('greeting'))), 'one')
      } finally {
        await sandbox.close()
      }
    },
  },
  {
    name: 'a 100 MB output is refused',
    async run(ctx) {
      const huge = await plugin(ctx, 'hugeOutput', { limits: { memoryMiB: 256 } })
      const err = await failure(huge.call(new Uint8Array(0)))
      assert.equal(err.kind, 'too_large')
      assert.match(err.message, /104857600 bytes, over its limit of 1048576/)
      // Under the default memory cap the same plugin cannot even ask for the bytes.
      const capped = await plugin(ctx, 'hugeOutput')
      assert.equal((await failure(capped.call(new Uint8Array(0)))).kind, 'memory')
    },
  },
  {
    name: 'an input over the limit is refused before it reaches the plugin',
    async run(ctx) {
      const echo = await ctx.sandbox.load({
        source: { builtin: 'echo' },
        function: 'call',
        limits: { maxInputBytes: 16 },
      })
      const err = await failure(echo.call(new Uint8Array(17)))
      assert.equal(err.kind, 'too_large')
      assert.deepEqual(await echo.call(new Uint8Array(16)), new Uint8Array(16))
    },
  },
  {
    name: 'a trap is reported as one',
    async run(ctx) {
      const err = await failure((await plugin(ctx, 'trap')).call(new Uint8Array(0)))
      assert.equal(err.kind, 'trap')
      assert.match(err.message, /unreachable/)
    },
  },
  {
    name: 'reading a file is impossible: WASI has no preopened directory and path_open fails',
    async run(ctx) {
      const out = await (await plugin(ctx, 'readFile')).call(new Uint8Array(0))
      const EBADF = 8
      assert.deepEqual([...out], [EBADF, EBADF])
    },
  },
  {
    name: 'modules that cannot run are refused at load, with the reason',
    async run(ctx) {
      const foreign = await rejection(plugin(ctx, 'foreignImport'))
      assert.match(foreign.message, /imports function env\.read_file, which ark does not provide/)
      const huge = await rejection(plugin(ctx, 'hugeMemory'))
      assert.match(huge.message, /initial memory 2048 MiB .* exceeds the cap of 64 MiB/)
      const garbage = await rejection(
        ctx.sandbox.load({ source: { bytes: bytesOf('not wasm at all'), name: 'x' }, function: 'call' }),
      )
      assert.match(garbage.message, /not a WebAssembly module/)
      const noExport = await rejection(plugin(ctx, 'seven', { function: 'run' }))
      assert.match(noExport.message, /exports no function "run" \(it exports: call\)/)
      const missing = await rejection(ctx.sandbox.load({ source: { builtin: 'nope' }, function: 'call' }))
      assert.match(missing.message, /built-in plugin nope: .*nope\.wasm does not exist/)
      const device = await rejection(ctx.sandbox.load({ source: { path: '/dev/zero' }, function: 'call' }))
      assert.match(device.message, /\/dev\/zero is not a regular file/)
      const badHost = await rejection(plugin(ctx, 'seven', { allowedHosts: ['https://api.example.com/'] }))
      assert.match(badHost.message, /^allowedHosts: /)
      const noFile = await rejection(
        ctx.sandbox.load({ source: { path: '/nonexistent/x.wasm' }, function: 'call' }),
      )
      assert.match(noFile.message, /\/nonexistent\/x\.wasm does not exist/)
    },
  },
  {
    name: 'https modules must match their sha256; downloads are cached by digest',
    async run() {
      const bytes = await wasm('seven')
      const digest = await sha256(bytes)
      let downloads = 0
      const sandbox = new Sandbox({
        fetch: () => {
          downloads++
          return Promise.resolve(new Response(bytes as Uint8Array<ArrayBuffer>))
        },
      })
      try {
        const url = 'https://plugins.example/seven.wasm'
        const wrong = await rejection(
          sandbox.load({ source: { url, sha256: '0'.repeat(64) }, function: 'call' }),
        )
        assert.match(wrong.message, new RegExp(`has sha256 ${digest}, not the 0{64} the Tool requires`))
        const seven = await sandbox.load({ source: { url, sha256: digest }, function: 'call' })
        assert.deepEqual(await seven.call(new Uint8Array(0)), new Uint8Array([7]))
        await sandbox.load({ source: { url, sha256: digest }, function: 'call' })
        assert.equal(downloads, 2)
        const http = await rejection(
          sandbox.load({
            source: { url: 'http://plugins.example/x.wasm', sha256: digest },
            function: 'call',
          }),
        )
        assert.match(http.message, /over https only/)
      } finally {
        await sandbox.close()
      }
    },
  },
  {
    name: 'webhooks reach a granted host',
    async run(ctx) {
      const http = await httpPlugin(ctx, [hostOf(ctx.web)])
      assert.equal(text(await http.call(webhook(`${ctx.web}/hello`))), '200\nhello')
      const posted = text(await http.call(webhook(`${ctx.web}/echo`, 'POST', '{"a":1}', { 'x-k': 'v' })))
      assert.equal(posted, '200\nPOST v {"a":1}')
      assert.equal(text(await http.call(webhook(`${ctx.web}/missing`))), '404\nno such page')
    },
  },
  {
    name: 'a host not granted, 127.0.0.1 not granted and 169.254.169.254 are denied, also through redirects',
    async run(ctx) {
      const none = await httpPlugin(ctx, [])
      const denied = await failure(none.call(webhook(`${ctx.web}/hello`)))
      assert.equal(denied.kind, 'denied')
      assert.match(denied.message, /grants no hosts/)

      const other = await httpPlugin(ctx, ['api.example.com'])
      const loopback = await failure(other.call(webhook(`${ctx.web}/hello`)))
      assert.equal(loopback.kind, 'denied')
      assert.match(loopback.message, /127\.0\.0\.1/)

      const metadata = await httpPlugin(ctx, ['169.254.169.254', hostOf(ctx.web)])
      const direct = await failure(metadata.call(webhook('http://169.254.169.254/latest/meta-data/')))
      assert.equal(direct.kind, 'denied')
      assert.match(direct.message, /169\.254\.169\.254/)

      const granted = await httpPlugin(ctx, [hostOf(ctx.web)])
      const viaRedirect = await failure(
        granted.call(
          webhook(`${ctx.web}/to/${encodeURIComponent('http://169.254.169.254/latest/meta-data/')}`),
        ),
      )
      assert.equal(viaRedirect.kind, 'denied')
      assert.match(viaRedirect.message, /redirect/)
      const toOther = await failure(
        granted.call(webhook(`${ctx.web}/to/${encodeURIComponent(`${ctx.other}/hello`)}`)),
      )
      assert.equal(toOther.kind, 'denied')
      // A redirect within what was granted is followed.
      const inside = await granted.call(webhook(`${ctx.web}/to/${encodeURIComponent(`${ctx.web}/hello`)}`))
      assert.equal(text(inside), '200\nhello')
    },
  },
  {
    name: 'many calls at once on few threads all answer',
    async run(ctx) {
      const echo = await ctx.sandbox.load({ source: { builtin: 'echo' }, function: 'call' })
      const inputs = Array.from({ length: 40 }, (_, i) => bytesOf(`call ${String(i)}`))
      const outputs = await Promise.all(inputs.map((input) => echo.call(input)))
      assert.deepEqual(outputs.map(text), inputs.map(text))
    },
  },
]

/** Starts the suite's sandbox and web servers. */
export async function startSuite(): Promise<SuiteContext & { close(): Promise<void> }> {
  const web = await listen((path, body, headers) => {
    if (path === '/hello') return { status: 200, body: 'hello' }
    if (path === '/echo') return { status: 200, body: `POST ${String(headers['x-k'] ?? '')} ${body}` }
    if (path.startsWith('/to/')) return { status: 302, body: '', location: decodeURIComponent(path.slice(4)) }
    return { status: 404, body: 'no such page' }
  })
  const other = await listen(() => ({ status: 200, body: 'other' }))
  const sandbox = new Sandbox({ maxThreads: 2 })
  return {
    sandbox,
    web: web.url,
    other: other.url,
    async close() {
      await sandbox.close()
      await web.close()
      await other.close()
    },
  }
}

type Handler = (
  path: string,
  body: string,
  headers: Record<string, string | string[] | undefined>,
) => { status: number; body: string; location?: string }

async function listen(handler: Handler): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Uint8Array[] = []
    req.on('data', (c: Uint8Array) => chunks.push(c))
    req.on('end', () => {
      const r = handler(req.url ?? '/', Buffer.concat(chunks).toString('utf8'), req.headers)
      res.writeHead(r.status, r.location === undefined ? {} : { location: r.location })
      res.end(r.body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${String(port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
