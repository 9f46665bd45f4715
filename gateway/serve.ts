/** What both runtime adapters take and give. */
export interface ServeOptions {
  readonly port: number
  readonly host: string
}

export interface ServeHandle {
  /** The port bound (useful with port 0). */
  readonly port: number
  close(): Promise<void>
}

/** Serves `fetch` on whichever runtime this is. */
export async function serve(
  fetch: (request: Request) => Response | Promise<Response>,
  options: ServeOptions,
): Promise<ServeHandle> {
  if ('Deno' in globalThis) return (await import('./serve-deno.ts')).serveDeno(fetch, options)
  return (await import('./serve-node.ts')).serveNode(fetch, options)
}
