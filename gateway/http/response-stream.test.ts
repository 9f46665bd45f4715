import { describe, expect, it } from 'vitest'
import type { StreamAbort } from './response-stream.ts'
import { ResponseStream } from './response-stream.ts'

const limits = { highWaterBytes: 10, maxBufferedBytes: 100, writeTimeoutMs: 60_000 }
const decoder = new TextDecoder()

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let out = ''
  for await (const chunk of stream) out += decoder.decode(chunk)
  return out
}

describe('ResponseStream', () => {
  it('passes writes through in order and ends after the last byte is read', async () => {
    const aborts: StreamAbort[] = []
    const s = new ResponseStream(limits, (r) => void aborts.push(r))
    void s.write('one ')
    void s.write(new TextEncoder().encode('two '))
    void s.write('three')
    s.close()
    void s.write('after the end')
    expect(await readAll(s.body)).toBe('one two three')
    expect(s.open).toBe(false)
    expect(aborts).toEqual([])
  })

  it('asks the producer to pause past the high-water mark and lets it go on as the client reads', async () => {
    const s = new ResponseStream(limits, () => {})
    const reader = s.body.getReader()
    // The first read is pending: the first write goes straight to it.
    const first = reader.read()
    expect(s.write('0123456789')).toBeUndefined()
    expect(decoder.decode((await first).value)).toBe('0123456789')
    expect(s.write('abcde')).toBeUndefined()
    expect(s.write('fghij')).toBeUndefined() // 10 bytes wait: at the mark, not past it
    const paused = s.write('k')
    expect(paused).toBeInstanceOf(Promise)
    // The same promise for every write while paused: one waiter, not one per chunk.
    expect(s.write('l')).toBe(paused)
    let resumed = false
    void paused?.then(() => (resumed = true))
    await Promise.resolve()
    expect(resumed).toBe(false)
    expect(decoder.decode((await reader.read()).value)).toBe('abcde')
    await paused
    expect(resumed).toBe(true)
  })

  it('ends the stream and reports overflow when a producer that cannot pause fills the bound', async () => {
    const aborts: StreamAbort[] = []
    const s = new ResponseStream(limits, (r) => {
      aborts.push(r)
      return `cut: ${r.reason}`
    })
    for (let i = 0; i < 20; i++) void s.write('0123456789')
    expect(aborts.map((a) => a.reason)).toEqual(['overflow'])
    expect(aborts[0]?.message).toMatch(/more than 100 bytes/)
    expect(s.open).toBe(false)
    // What waited is gone; a client that reads again finds the protocol's last word, then the end.
    expect(await readAll(s.body)).toBe('cut: overflow')
  })

  it('ends a stalled stream: a client that reads nothing while bytes wait', async () => {
    const aborts: StreamAbort[] = []
    const s = new ResponseStream({ ...limits, writeTimeoutMs: 20 }, (r) => {
      aborts.push(r)
      return 'cut'
    })
    const reader = s.body.getReader()
    const first = reader.read() // the adapter starts reading, then the client stops
    void s.write('x')
    await first
    const paused = s.write('0123456789ab')
    expect(paused).toBeInstanceOf(Promise)
    // The producer is let go when the stream is cut, so that it does not wait forever.
    await paused
    expect(aborts.map((a) => a.reason)).toEqual(['stalled'])
    expect(aborts[0]?.message).toMatch(/read nothing for 0.02 s/)
    expect(decoder.decode((await reader.read()).value)).toBe('cut')
    expect((await reader.read()).done).toBe(true)
  })

  it('drops the connection instead where the runtime can', async () => {
    let dropped = 0
    const s = new ResponseStream(
      { ...limits, writeTimeoutMs: 20 },
      () => 'never sent',
      () => dropped++,
    )
    const reader = s.body.getReader()
    const first = reader.read()
    void s.write('x')
    await first
    await s.write('0123456789ab')
    expect(dropped).toBe(1)
    expect((await reader.read()).done).toBe(true)
  })

  it('does not count a slow but steady reader as stalled', async () => {
    const aborts: StreamAbort[] = []
    const s = new ResponseStream({ ...limits, writeTimeoutMs: 40 }, (r) => void aborts.push(r))
    const reader = s.body.getReader()
    let received = ''
    for (let i = 0; i < 8; i++) void s.write('0123456789')
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 10))
      received += decoder.decode((await reader.read()).value)
    }
    s.close()
    expect((await reader.read()).done).toBe(true)
    expect(received.length).toBe(80)
    expect(aborts).toEqual([])
  })

  it('tells the producer when the client goes away, once', async () => {
    const aborts: StreamAbort[] = []
    const s = new ResponseStream(limits, (r) => void aborts.push(r))
    const paused = s.write('0123456789abcdef')
    await s.body.cancel()
    await paused
    expect(aborts.map((a) => a.reason)).toEqual(['client_gone'])
    expect(s.write('more')).toBeUndefined()
    s.close()
    expect(aborts).toHaveLength(1)
  })
})
