/**
 * The reference MCP server (`@modelcontextprotocol/server-everything`) for tests: spawned on a free port over
 * streamable HTTP (`/mcp`) or the legacy SSE transport (`/sse`, messages on `/message`), stopped by its PID.
 * It binds every interface, which is why it only ever runs in tests. Its tools include `echo` (`{ message }`
 * -> `Echo: <message>`) and `get-sum` (`{ a, b }` -> `The sum of a and b is a+b.`).
 *
 * It runs on the Node that runs the tests (process.execPath), not on the `#!/usr/bin/env node` of its bin, so
 * that it does not depend on the machine's Node. It logs one line per session it opens; `sessions()` counts
 * them, which is how a test sees how many MCP connections a client made.
 */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { realpathSync } from 'node:fs'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { freePort } from './fakes/http.ts'

/** The bin of the installed package (a symlink to its dist/index.js). */
export const EVERYTHING_BIN = realpathSync(
  fileURLToPath(new URL('../node_modules/.bin/mcp-server-everything', import.meta.url)),
)

export type EverythingTransport = 'streamableHttp' | 'sse'

export interface EverythingServer {
  /** The MCP endpoint: `http://127.0.0.1:<port>/mcp` (streamable HTTP) or `/sse`. */
  readonly url: string
  readonly port: number
  readonly transport: EverythingTransport
  /** The PID of the running server (it changes on restart). */
  readonly pid: number
  /** Sessions the server has opened since it (re)started: one per MCP connection a client made. */
  sessions(): number
  /** SIGTERM, and waits for it to exit. */
  stop(): Promise<void>
  /** SIGKILL (a crash), and waits for it to exit. */
  kill(): Promise<void>
  /** Starts it again on the same port (after stop or kill), with no sessions. */
  restart(): Promise<void>
}

export interface EverythingOptions {
  /** A port of the caller's choosing (default: a free one). */
  readonly port?: number
}

/** Lines that the server prints when a session opens, per transport. */
const SESSION_LINE: Record<EverythingTransport, RegExp> = {
  streamableHttp: /^Session initialized with ID: /,
  sse: /^Client Connected: /,
}

export async function startEverything(
  transport: EverythingTransport = 'streamableHttp',
  options: EverythingOptions = {},
): Promise<EverythingServer> {
  const port = options.port ?? (await freePort())
  let child: ChildProcess | undefined
  let sessions = 0
  let output = ''

  const onLines = (chunk: Buffer): void => {
    const text = chunk.toString('utf8')
    // The last few KiB, for the error when it does not start.
    output = (output + text).slice(-4096)
    for (const line of text.split('\n')) if (SESSION_LINE[transport].test(line)) sessions++
  }

  const start = async (): Promise<void> => {
    sessions = 0
    output = ''
    const c = spawn(process.execPath, [EVERYTHING_BIN, transport], {
      env: { ...process.env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child = c
    c.stdout.on('data', onLines)
    c.stderr.on('data', onLines)
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) break
      if (await listening(port)) return
      await new Promise((r) => setTimeout(r, 50))
    }
    c.kill('SIGKILL')
    throw new Error(`mcp-server-everything ${transport} did not start on port ${String(port)}:\n${output}`)
  }

  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()))
    c.kill(signal)
    await exited
  }

  await start()
  const path = transport === 'sse' ? '/sse' : '/mcp'
  return {
    url: `http://127.0.0.1:${String(port)}${path}`,
    port,
    transport,
    get pid() {
      return child?.pid ?? -1
    },
    sessions: () => sessions,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
    restart: start,
  }
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
