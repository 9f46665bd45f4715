import { afterEach, describe, expect, it } from 'vitest'
import { ManifestParser, type ManifestParserOptions } from './parse-thread.ts'

const encode = (text: string) => new TextEncoder().encode(text)

/** A valid file of about 600 KB that takes the yaml package a few hundred milliseconds. */
const big = encode(Array.from({ length: 40_000 }, (_, i) => `k${String(i)}: v${String(i)}`).join('\n'))

let parsers: ManifestParser[] = []
afterEach(async () => {
  await Promise.all(parsers.map((p) => p.close()))
  parsers = []
})

function parser(options: ManifestParserOptions = {}): ManifestParser {
  const p = new ManifestParser(options)
  parsers.push(p)
  return p
}

/** How many turns the event loop made while `work` was pending. */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ turns: number; result: T }> {
  let turns = 0
  let done = false
  const spin = () => {
    turns++
    if (!done) setImmediate(spin)
  }
  setImmediate(spin)
  const result = await work()
  done = true
  return { turns, result }
}

describe('ManifestParser', () => {
  it('parses large files off the main thread, with the same result as on it', async () => {
    const inline = await turnsDuring(() => parser({ inlineMaxBytes: Infinity }).parse(big, 'big.yaml'))
    const worker = await turnsDuring(() => parser().parse(big, 'big.yaml'))
    expect(worker.result).toEqual(inline.result)
    expect(worker.result).toMatchObject({ status: 'loaded', documents: [{ value: { k39999: 'v39999' } }] })
    // On the main thread the event loop cannot turn while the file is parsed; with the worker it keeps
    // turning (thousands of times while the parse takes its few hundred milliseconds).
    expect(inline.turns).toBeLessThan(3)
    expect(worker.turns).toBeGreaterThan(20)
  })

  it('reports a parse over the time bound as a problem of the file, naming the limit', async () => {
    const p = parser({ timeoutMs: 1 })
    expect(await p.parse(big, 'slow.yaml')).toEqual({
      file: 'slow.yaml',
      status: 'unreadable',
      problems: [
        {
          severity: 'error',
          file: 'slow.yaml',
          message:
            'parsing took longer than 0.001 s, the limit for one manifest file, and was stopped; simplify or split the file (it is read again when it changes)',
        },
      ],
    })
  })

  it('reports a worker that ran out of heap, and parses the next file in a fresh one', async () => {
    // 16 MB is enough to start the worker, not to hold the CST of 90,000 nodes.
    const p = parser({ workerHeapMb: 16, inlineMaxBytes: 0 })
    const heavy = encode(`[${Array<string>(90_000).fill('1').join(',')}]`)
    expect(await p.parse(heavy, 'heavy.yaml')).toEqual({
      file: 'heavy.yaml',
      status: 'unreadable',
      problems: [
        {
          severity: 'error',
          file: 'heavy.yaml',
          message:
            'parsing needed more than 16 MB of memory, the limit for one manifest file; split it into several smaller files',
        },
      ],
    })
    expect(await p.parse(encode('a: 1'), 'light.yaml')).toMatchObject({
      status: 'loaded',
      documents: [{ value: { a: 1 } }],
    })
  })

  it('answers a parse in flight at close, and every call after it', async () => {
    const p = parser()
    const inFlight = p.parse(big, 'late.yaml')
    await p.close()
    const closed = {
      file: 'late.yaml',
      status: 'unreadable',
      problems: [
        { severity: 'error', file: 'late.yaml', message: 'not parsed: the manifest source was closed' },
      ],
    }
    expect(await inFlight).toEqual(closed)
    expect(await p.parse(big, 'late.yaml')).toEqual(closed)
  })
})
