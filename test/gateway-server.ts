/**
 * Starts the gateway the way `ark dev` does (control plane over a manifests folder, gateway, a real listening
 * socket), on whichever runtime runs this file, with the small limits the gateway suite relies on.
 */
import { startEmbedded } from '../bin/embedded.ts'
import type { EmbeddedOptions } from '../bin/embedded.ts'
import type { BuiltinTool } from '../gateway/index.ts'
import { serve, silentLogger } from '../gateway/index.ts'

/** An embedder's own tool: the "custom tool" of the suite. */
export const lookup: BuiltinTool = {
  description: 'Looks a fact up by key.',
  inputSchema: { type: 'object', properties: { key: { type: 'string' } }, required: ['key'] },
  execute(args) {
    const facts: Record<string, string> = { 'capital-of-france': 'Paris', answer: '42' }
    const value = facts[String(args.key)]
    return value === undefined
      ? { content: `no fact named ${String(args.key)}`, isError: true }
      : { content: value }
  },
}

export interface RunningGateway {
  readonly url: string
  close(): Promise<void>
}

export const SUITE_LIMITS = {
  maxIterations: 5,
  poolConcurrency: 1,
  maxQueued: 1,
  maxBodyBytes: 2 * 1024 * 1024,
} as const

export async function startGateway(
  manifests = 'test/fixtures/gateway',
  options: Partial<EmbeddedOptions> = {},
): Promise<RunningGateway> {
  const system = await startEmbedded({
    manifests,
    watch: false,
    builtins: { lookup },
    log: silentLogger,
    // As `ark dev` on 127.0.0.1: loopback names only.
    allowedHosts: 'loopback',
    ...SUITE_LIMITS,
    ...options,
  })
  // With the Node lane, as `ark dev` serves (Deno has none): the suite's passthrough cases go through it.
  const lane = system.gateway.lane
  const server = await serve(system.gateway.fetch, {
    host: '127.0.0.1',
    port: 0,
    ...(lane === undefined ? {} : { lane }),
  })
  return {
    url: `http://127.0.0.1:${String(server.port)}`,
    async close() {
      await server.close()
      await system.close()
    },
  }
}
