/**
 * A flood: `node bench/lib/flood.ts <url> <requests> <body>` sends that many POSTs at once, each on a
 * connection of its own, prints `sent` once every request is written out, then one JSON line counting the
 * answers by status (and `error` for a connection that failed), and exits. A process of its own, so that
 * the flood's answers never delay the client that measures the other namespace.
 */
import { Agent, request } from 'node:http'

const [url = '', count = '0', body = ''] = process.argv.slice(2)
const agent = new Agent({ keepAlive: false, maxSockets: Infinity })
const statuses: Record<string, number> = {}
const tally = (key: string) => (statuses[key] = (statuses[key] ?? 0) + 1)

const total = Number(count)
let written = 0
/** Once per request, when it is written out or has failed: `sent` once every one has. */
const out = () => {
  if (++written === total) console.log('sent')
}
const one = () =>
  new Promise<void>((resolve) => {
    let counted = false
    const once = () => {
      if (counted) return
      counted = true
      out()
    }
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume()
        res.on('end', () => {
          tally(String(res.statusCode))
          resolve()
        })
        res.on('error', () => {
          tally('error')
          resolve()
        })
      },
    )
    req.on('error', () => {
      once()
      tally('error')
      resolve()
    })
    req.on('finish', once)
    req.end(body)
  })

const all = Array.from({ length: total }, one)
await Promise.all(all)
console.log(JSON.stringify(statuses))
