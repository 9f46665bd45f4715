import { describe, expect, it } from 'vitest'
import type { JsonRpcId } from './wire.ts'
import { bounded, parseUrl, requestIdOf, responseIdOf } from './wire.ts'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** `text` as a body cut into pieces at `cuts`, read through `bounded`. */
async function through(
  text: string,
  cuts: number[],
  options: { max: number; events: boolean; truncate?: boolean; id?: JsonRpcId },
): Promise<{ out: string; oversize: [number, JsonRpcId | undefined][]; ended: unknown[]; error?: unknown }> {
  const bytes = encoder.encode(text)
  const points = [0, ...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length]
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i + 1 < points.length; i++) c.enqueue(bytes.slice(points[i], points[i + 1]))
      c.close()
    },
  })
  const oversize: [number, JsonRpcId | undefined][] = []
  const ended: unknown[] = []
  const stream = bounded(body, {
    max: options.max,
    events: options.events,
    truncate: options.truncate ?? false,
    id: options.id,
    onOversize: (n, id) => oversize.push([n, id]),
    onEnd: (e) => ended.push(e ?? 'end'),
  })
  let out = ''
  try {
    for await (const chunk of stream) out += decoder.decode(chunk, { stream: true })
  } catch (error) {
    return { out, oversize, ended, error }
  }
  return { out, oversize, ended }
}

const event = (id: number, data: string) =>
  `event: message\ndata: {"jsonrpc":"2.0","id":${id},"result":"${data}"}\n\n`

describe('bounded event streams', () => {
  const small = event(1, 'ok')
  const big = event(2, 'y'.repeat(500))
  const after = event(3, 'next')

  it('passes events within the bound through untouched, however the body is cut', async () => {
    const text = small + after
    for (let cut = 0; cut < text.length; cut += 7) {
      const r = await through(text, [cut, cut + 3], { max: 200, events: true })
      expect(r.out).toBe(text)
      expect(r.oversize).toEqual([])
      expect(r.ended).toEqual(['end'])
    }
  })

  it('cuts an oversized event off, skips its rest and goes on with the next one, wherever the chunks end', async () => {
    const text = small + big + after
    for (const cuts of [
      [],
      [10],
      [60, 61, 62],
      [150, 400],
      [text.length - after.length - 1],
      [5, 300, 560, 600],
    ]) {
      const r = await through(text, cuts, { max: 200, events: true })
      // The broken event ends at the blank line ark put in; the event after it is whole.
      expect(r.out.startsWith(small), String(cuts)).toBe(true)
      expect(r.out.endsWith(`\n\n${after}`), String(cuts)).toBe(true)
      expect(r.out).not.toContain('y'.repeat(200))
      expect(r.out.length).toBeLessThan(small.length + 200 + 2 + after.length + 1)
      // The id is read from the start of the event's data.
      expect(r.oversize, String(cuts)).toEqual([[201, 2]])
    }
  })

  it('finds the id at the end of an event when the server writes it last', async () => {
    const idLast = `data: {"result":"${'z'.repeat(500)}","jsonrpc":"2.0","id":"call-7"}\n\n`
    const r = await through(idLast + after, [100, 300], { max: 200, events: true })
    expect(r.oversize).toEqual([[201, 'call-7']])
    expect(r.out.endsWith(after)).toBe(true)
  })

  it('reports an event whose id it cannot find, so that it is logged', async () => {
    const r = await through(`data: ${'q'.repeat(400)}\n\n`, [], { max: 100, events: true })
    expect(r.oversize).toEqual([[101, undefined]])
  })

  it('takes the id of the request a POST answered, when it has one', async () => {
    const r = await through(big, [], { max: 200, events: true, id: 41 })
    expect(r.oversize).toEqual([[201, 41]])
  })

  it('reads CRLF and CR line ends as the SSE format allows', async () => {
    const crlf = `data: {"jsonrpc":"2.0","id":5,"result":"${'w'.repeat(300)}"}\r\n\r\ndata: "fine"\r\n\r\n`
    const r = await through(crlf, [40, 331, 332, 333], { max: 200, events: true })
    expect(r.oversize).toEqual([[201, 5]])
    expect(r.out.endsWith('data: "fine"\r\n\r\n')).toBe(true)
    const cr = 'data: 1\r\rdata: 2\r\r'
    expect((await through(cr, [8], { max: 10, events: true })).out).toBe(cr)
  })
})

describe('bounded bodies', () => {
  it('fails a JSON body past the bound', async () => {
    const r = await through(`{"jsonrpc":"2.0","id":1,"result":"${'x'.repeat(300)}"}`, [50], {
      max: 100,
      events: false,
      id: 1,
    })
    expect(r.error).toBeInstanceOf(Error)
    expect((r.error as Error).message).toBe('a message larger than 100 bytes (maxMessageBytes)')
    expect(r.oversize).toEqual([[r.oversize[0]![0], 1]])
    expect(r.oversize[0]![0]).toBeGreaterThan(100)
    expect(r.ended).toHaveLength(1)
  })

  it('cuts an error body short, quietly', async () => {
    const r = await through('e'.repeat(1000), [300, 600], { max: 400, events: false, truncate: true })
    expect(r.error).toBeUndefined()
    expect(r.out).toBe('e'.repeat(400))
    expect(r.oversize).toEqual([])
  })

  it('says when the body fails', async () => {
    let pulls = 0
    const failing = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulls++ === 0) c.enqueue(encoder.encode('data: 1\n\n'))
        else c.error(new Error('socket hang up'))
      },
    })
    const ended: unknown[] = []
    const reader = bounded(failing, {
      max: 100,
      events: true,
      truncate: false,
      onEnd: (e) => ended.push(e),
    }).getReader()
    expect(decoder.decode((await reader.read()).value)).toBe('data: 1\n\n')
    await expect(reader.read()).rejects.toThrow('socket hang up')
    expect(ended).toHaveLength(1)
    expect((ended[0] as Error).message).toBe('socket hang up')
  })

  it('does not report the end of a body its reader cancelled', async () => {
    const ended: unknown[] = []
    const open = new ReadableStream<Uint8Array>({ pull: () => new Promise(() => {}) })
    const stream = bounded(open, { max: 100, events: true, truncate: false, onEnd: (e) => ended.push(e) })
    await stream.cancel()
    expect(ended).toEqual([])
  })
})

describe('ids', () => {
  it('reads the id of a request body as the SDK writes it, and of others', () => {
    expect(requestIdOf('{"method":"tools/call","params":{"name":"x"},"jsonrpc":"2.0","id":12}')).toBe(12)
    expect(requestIdOf('{"jsonrpc":"2.0","id":"abc","method":"tools/call"}')).toBe('abc')
    expect(requestIdOf('{"jsonrpc":"2.0","method":"notifications/initialized"}')).toBeUndefined()
    expect(requestIdOf('not json')).toBeUndefined()
    expect(requestIdOf(undefined)).toBeUndefined()
  })

  it('reads the id of a response from the start or the end of an event', () => {
    expect(responseIdOf('event: message\ndata: {"jsonrpc":"2.0","id":3,"result":', '')).toBe(3)
    expect(responseIdOf('data: {"result":{"content":', 'xx"}},"jsonrpc":"2.0","id":9}\n')).toBe(9)
    expect(responseIdOf('data: {"result":', 'no id here')).toBeUndefined()
  })
})

describe('parseUrl', () => {
  it('shows origin and path only, and takes credentials and query values for secrets', () => {
    const p = parseUrl('https://user:p%40ss@mcp.example.com:8443/v1/mcp?key=abc123456789#frag')
    expect(p.display).toBe('https://mcp.example.com:8443/v1/mcp')
    expect(p.url?.href).toBe('https://mcp.example.com:8443/v1/mcp?key=abc123456789')
    expect(p.authorization).toBe(`Basic ${btoa('user:p@ss')}`)
    expect(p.secrets).toEqual(expect.arrayContaining(['abc123456789', 'user', 'p@ss']))
    expect(p.error).toBeUndefined()
  })

  it('refuses what cannot be called, without quoting it', () => {
    expect(parseUrl('mcp.example.com/mcp?key=s3cret-value').error).toBe('the url is not a valid absolute URL')
    expect(parseUrl('ws://example.com/mcp').error).toBe('the url must be http or https, not ws')
  })
})
