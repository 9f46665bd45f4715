/**
 * The MCP connections of this process, as Prometheus sees them: read from McpClients when scraped, so that a
 * server going away shows at the next scrape and a connection that closed leaves no series behind.
 */
import { Gauge } from 'prom-client'
import type { Registry } from 'prom-client'
import type { McpClients } from './client.ts'

export function registerMcpMetrics(registry: Registry, clients: McpClients): void {
  new Gauge({
    name: 'ark_mcp_server_up',
    help: 'Whether each MCP server this process connects to is connected with its tools listed (1) or not (0: connecting, or failed and retrying).',
    labelNames: ['server'],
    registers: [registry],
    collect() {
      this.reset()
      for (const s of clients.servers()) this.labels(s.name).set(s.status === 'ready' ? 1 : 0)
    },
  })
  new Gauge({
    name: 'ark_mcp_server_tools',
    help: 'Tools each connected MCP server offers to ark (after maxTools and the checks of each entry).',
    labelNames: ['server'],
    registers: [registry],
    collect() {
      this.reset()
      for (const s of clients.servers()) this.labels(s.name).set(s.tools)
    },
  })
}
