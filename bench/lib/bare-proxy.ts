/**
 * The least a Node proxy can do for `model/<name>`, as the passthrough scenario's floor: read the body, parse
 * it, set the upstream's model, forward it over a keep-alive connection and write the answer back. No routing,
 * no validation, no metrics, no redaction. ark's passthrough is measured against this in the same run, so the
 * ratio keeps what ark adds on top of any second Node hop and drops what the machine charges for the hop
 * itself (process wake-ups, which differ several-fold between machine kinds here).
 *
 * `node bench/lib/bare-proxy.ts --upstream <url> --model <name>`; prints `listening <url>` when ready.
 */
import { Agent, createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { upstream: { type: 'string' }, model: { type: 'string' } } })
if (values.upstream === undefined || values.model === undefined) {
  console.error('usage: bare-proxy.ts --upstream <url> --model <name>')
  process.exit(2)
}
const upstream = new URL(
  'chat/completions',
  values.upstream.endsWith('/') ? values.upstream : `${values.upstream}/`,
)
const model = values.model
const agent = new Agent({ keepAlive: true, maxSockets: 256 })

const server = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    let body: string
    try {
      body = JSON.stringify({ ...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as object), model })
    } catch {
      res.writeHead(400).end()
      return
    }
    const forward = request(
      upstream,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (answer) => {
        const parts: Buffer[] = []
        answer.on('data', (chunk: Buffer) => parts.push(chunk))
        answer.on('end', () => {
          const payload = Buffer.concat(parts)
          res.writeHead(answer.statusCode ?? 502, {
            'content-type': answer.headers['content-type'] ?? 'application/json',
            'content-length': payload.length,
          })
          res.end(payload)
        })
      },
    )
    forward.on('error', () => res.writeHead(502).end())
    forward.end(body)
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${String((server.address() as AddressInfo).port)}`)
})
process.on('SIGTERM', () => process.exit(0))
