/**
 * A real redis-server for tests: spawned on a free port with persistence off, stopped by its PID. `.ci/run`
 * installs the binary when the machine lacks it.
 */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import { freePort } from './fakes/http.ts'

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** Stops the server (SIGKILL when `hard`). */
  stop(hard?: boolean): Promise<void>
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>
}

export async function startRedis(): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    )
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    probe.on('error', () => {})
    for (let i = 0; i < 100; i++) {
      try {
        await probe.connect()
        await probe.ping()
        probe.disconnect()
        return
      } catch {
        probe.disconnect()
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    throw new Error(`redis-server did not start on port ${String(port)}`)
  }
  const stop = async (hard = false): Promise<void> => {
    const c = child
    if (c === undefined || c.exitCode !== null) return
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()))
    c.kill(hard ? 'SIGKILL' : 'SIGTERM')
    await exited
  }
  await start()
  return { url: `redis://127.0.0.1:${String(port)}`, port, stop, restart: start }
}
