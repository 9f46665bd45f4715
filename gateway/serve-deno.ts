/** Serving on Deno: the app's fetch behind Deno.serve. */
import type { ServeHandle, ServeOptions } from './serve.ts'

interface DenoServer {
  readonly addr: { readonly port: number }
  shutdown(): Promise<void>
}
declare const Deno: {
  serve(
    options: { port: number; hostname: string; onListen?: () => void },
    handler: (request: Request) => Response | Promise<Response>,
  ): DenoServer
}

export function serveDeno(
  fetch: (request: Request) => Response | Promise<Response>,
  options: ServeOptions,
): Promise<ServeHandle> {
  const server = Deno.serve({ port: options.port, hostname: options.host, onListen: () => {} }, fetch)
  return Promise.resolve({ port: server.addr.port, close: () => server.shutdown() })
}
