import createWabt from 'wabt'
import { describe, expect, it } from 'vitest'
import { capMemory, ModuleRejected, WASM_PAGE_BYTES } from './wasm-binary.ts'

// tsconfig has no DOM lib and @types/node does not declare WebAssembly: type the little these tests use.
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(delta: number): number
}
interface WasmApi {
  compile(bytes: Uint8Array): Promise<object>
  instantiate(
    bytes: Uint8Array,
    imports?: object,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>
  readonly Module: { customSections(module: object, name: string): ArrayBuffer[] }
}
const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

const wabt = await createWabt()

type Features = Parameters<typeof wabt.parseWat>[2]

function wat(text: string, features?: Features): Uint8Array {
  const mod = wabt.parseWat('test.wat', text, features)
  try {
    return mod.toBinary({}).buffer
  } finally {
    mod.destroy()
  }
}

/** Instantiates a module whose exports are `grow` (memory.grow, returns the old size or -1) and `memory`. */
async function instantiate(
  bytes: Uint8Array,
): Promise<{ grow: (pages: number) => number; memory: WasmMemory }> {
  const { instance } = await WebAssembly.instantiate(bytes)
  return {
    grow: instance.exports.grow as (pages: number) => number,
    memory: instance.exports.memory as WasmMemory,
  }
}

const GROW = `
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (export "memory" (memory 0))`

/** One section of a binary, by hand: id, LEB128 size, payload (all sizes here fit one LEB byte). */
function section(id: number, payload: number[]): number[] {
  expect(payload.length).toBeLessThan(128)
  return [id, payload.length, ...payload]
}

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

function binary(...sections: number[][]): Uint8Array {
  return new Uint8Array([...HEADER, ...sections.flat()])
}

/** Where the memory section (id 5) starts and ends in a binary, walking the section headers. */
function memorySection(bytes: Uint8Array): { start: number; end: number } {
  let pos = 8
  while (pos < bytes.length) {
    const start = pos
    const id = bytes[pos++]!
    let size = 0
    for (let shift = 0; ; shift += 7) {
      const b = bytes[pos++]!
      size |= (b & 0x7f) << shift
      if ((b & 0x80) === 0) break
    }
    pos += size
    if (id === 5) return { start, end: pos }
  }
  throw new Error('no memory section')
}

describe('capMemory', () => {
  it('adds a maximum to a memory that declares none, and V8 enforces it', async () => {
    const input = wat(`(module (memory 1) ${GROW})`)
    const capped = capMemory(input, 4)
    expect(capped.rewritten).toBe(true)
    expect(capped.declaredMaxPages).toBeUndefined()
    expect(capped.bytes).not.toBe(input)
    const { start, end } = memorySection(capped.bytes)
    // One memory, flags 0x01 (min and max), min 1, max 4.
    expect([...capped.bytes.subarray(start, end)]).toEqual([5, 4, 1, 0x01, 1, 4])

    const { grow, memory } = await instantiate(capped.bytes)
    expect(grow(3)).toBe(1)
    expect(memory.buffer.byteLength).toBe(4 * WASM_PAGE_BYTES)
    expect(grow(1)).toBe(-1)
    expect(() => memory.grow(1)).toThrow(RangeError)
    expect(memory.buffer.byteLength).toBe(4 * WASM_PAGE_BYTES)
  })

  it('the unmodified module could grow past the cap: the limit comes from the rewrite', async () => {
    const { grow } = await instantiate(wat(`(module (memory 1) ${GROW})`))
    expect(grow(4)).toBe(1)
  })

  it('lowers a maximum above the cap', async () => {
    const input = wat(`(module (memory 2 100) ${GROW})`)
    const capped = capMemory(input, 10)
    expect(capped.rewritten).toBe(true)
    expect(capped.declaredMaxPages).toBe(100)
    const { start, end } = memorySection(capped.bytes)
    expect([...capped.bytes.subarray(start, end)]).toEqual([5, 4, 1, 0x01, 2, 10])

    const { grow } = await instantiate(capped.bytes)
    expect(grow(8)).toBe(2)
    expect(grow(1)).toBe(-1)
  })

  it('leaves a maximum below the cap alone and returns the same bytes', () => {
    const input = wat(`(module (memory 1 5) ${GROW})`)
    const copy = input.slice()
    const capped = capMemory(input, 10)
    expect(capped.bytes).toBe(input)
    expect(capped.rewritten).toBe(false)
    expect(capped.declaredMaxPages).toBe(5)
    expect(input).toEqual(copy)
  })

  it('leaves a maximum equal to the cap alone', () => {
    const input = wat('(module (memory 3 10))')
    expect(capMemory(input, 10)).toEqual({ bytes: input, rewritten: false, declaredMaxPages: 10 })
    expect(capMemory(input, 10).bytes).toBe(input)
  })

  it('accepts an initial size equal to the cap', () => {
    const capped = capMemory(wat('(module (memory 16))'), 16)
    expect(capped.rewritten).toBe(true)
    const { start, end } = memorySection(capped.bytes)
    expect([...capped.bytes.subarray(start, end)]).toEqual([5, 4, 1, 0x01, 16, 16])
  })

  it('rejects an initial size above the cap, in MiB a person can read', () => {
    const input = wat('(module (memory 33 100))')
    expect(() => capMemory(input, 16)).toThrow(ModuleRejected)
    expect(() => capMemory(input, 16)).toThrow(
      'initial memory 2.06 MiB (33 pages) exceeds the cap of 1 MiB (16 pages)',
    )
    expect(() => capMemory(wat('(module (memory 1))'), 0)).toThrow(
      'initial memory 0.06 MiB (1 page) exceeds the cap of 0 MiB (0 pages)',
    )
  })

  it('rejects shared memory', () => {
    const input = wat('(module (memory 1 2 shared))', { threads: true })
    expect(() => capMemory(input, 16)).toThrow(
      new ModuleRejected('declares shared memory, which ark does not run'),
    )
  })

  it('rejects 64-bit memory', () => {
    const input = wat('(module (memory i64 1))', { memory64: true })
    expect(() => capMemory(input, 16)).toThrow(ModuleRejected)
    expect(() => capMemory(input, 16)).toThrow(/^declares 64-bit memory/)
  })

  it('rejects an imported memory, naming the import, after stepping over every other import kind', () => {
    const input = wat(
      `(module
        (type $t (func (param i32)))
        (import "env" "f" (func (type $t)))
        (import "env" "table" (table 1 10 funcref))
        (import "env" "g" (global (mut i32)))
        (import "env" "tag" (tag (type $t)))
        (import "host" "mem" (memory 1)))`,
      { exceptions: true },
    )
    expect(() => capMemory(input, 16)).toThrow(
      new ModuleRejected('imports its memory (host.mem); an ark plugin must define its own'),
    )
  })

  it('caps a module that imports functions, tables, globals and tags but defines its memory', async () => {
    const input = wat(
      `(module
        (type $t (func (param i32)))
        (import "env" "f" (func (type $t)))
        (import "env" "table" (table 1 funcref))
        (import "env" "g" (global i64))
        (import "env" "tag" (tag (type $t)))
        (memory 1))`,
      { exceptions: true },
    )
    const capped = capMemory(input, 8)
    expect(capped.rewritten).toBe(true)
    const { start, end } = memorySection(capped.bytes)
    expect([...capped.bytes.subarray(start, end)]).toEqual([5, 4, 1, 0x01, 1, 8])
    await expect(WebAssembly.compile(capped.bytes)).resolves.toBeDefined()
  })

  it('steps over GC reference types and table limits of any width to reach a memory import', () => {
    // Type index 200 encodes as 0xc8 0x01: misreading it as one byte would misalign every later import.
    const global = [1, 0x61, 1, 0x67, 0x03, 0x63, 0xc8, 0x01, 0x00]
    // Limits min 200, max 300: two LEB128 bytes each.
    const table = [1, 0x61, 1, 0x74, 0x01, 0x64, 0xc8, 0x01, 0x01, 0xc8, 0x01, 0xac, 0x02]
    // A 64-bit table (flags 0x04) whose min 1 is padded to 6 bytes, legal for a u64 but not a u32.
    const table64 = [1, 0x61, 1, 0x75, 0x01, 0x70, 0x04, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00]
    const mem = [1, 0x61, 1, 0x6d, 0x02, 0x00, 1]
    const input = binary(section(2, [4, ...global, ...table, ...table64, ...mem]))
    expect(() => capMemory(input, 16)).toThrow(
      new ModuleRejected('imports its memory (a.m); an ark plugin must define its own'),
    )
  })

  it('escapes control characters in import names', () => {
    const input = binary(section(2, [1, 2, 0x65, 0x0a, 1, 0x6d, 0x02, 0x00, 1]))
    expect(() => capMemory(input, 16)).toThrow('imports its memory (e\\u000a.m)')
  })

  it('returns a module without memory unchanged', () => {
    const input = wat('(module (func (export "f") (result i32) (i32.const 7)))')
    expect(capMemory(input, 16)).toEqual({ bytes: input, rewritten: false, declaredMaxPages: undefined })
    expect(capMemory(input, 16).bytes).toBe(input)
  })

  it('rejects bytes that are not a WebAssembly module', () => {
    const text = new TextEncoder().encode('#!/bin/sh\necho hello\n')
    expect(() => capMemory(text, 16)).toThrow(ModuleRejected)
    expect(() => capMemory(text, 16)).toThrow(/^not a WebAssembly module: .*magic/)
    expect(() => capMemory(new Uint8Array([0, 0x61, 0x73]), 16)).toThrow(
      /^not a WebAssembly module: only 3 bytes/,
    )
    // A component: same magic, version 0x0d, layer 1.
    const component = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00])
    expect(() => capMemory(component, 16)).toThrow(/^not a WebAssembly module: binary version 0x1000d/)
  })

  it('rejects a section that runs past the end, with its byte offset', () => {
    const full = wat(`(module (memory 1) ${GROW})`)
    const { start } = memorySection(full)
    // Cut inside the memory section: its size byte now claims more than remains.
    const truncated = full.subarray(0, start + 3)
    expect(() => capMemory(truncated, 16)).toThrow(ModuleRejected)
    expect(() => capMemory(truncated, 16)).toThrow(
      `section 5 at byte offset ${start} claims 3 bytes but only 1 remain`,
    )
    // Cut inside a section's size.
    const header = binary([0x01, 0x80])
    expect(() => capMemory(header, 16)).toThrow('section at byte offset 8 ends early at byte offset 10')
  })

  it('rejects limits that run past the end of the memory section', () => {
    // The section says 2 bytes: a count of 1 and flags 0x01, but no min or max.
    const input = binary(section(5, [1, 0x01]))
    expect(() => capMemory(input, 16)).toThrow('memory section at byte offset 8 ends early at byte offset 12')
  })

  it('keeps every other section byte for byte, custom sections included, and the result still runs', async () => {
    const module = wat(`(module (memory 1) (data (i32.const 16) "hello ark") ${GROW})`)
    const name = [...new TextEncoder().encode('ark.note')]
    const custom = section(0, [name.length, ...name, 1, 2, 3, 4])
    // A custom section first and one last: both positions must survive.
    const input = new Uint8Array([...HEADER, ...custom, ...module.subarray(8), ...custom])
    const before = memorySection(input)
    const capped = capMemory(input, 2)
    expect(capped.rewritten).toBe(true)
    const after = memorySection(capped.bytes)
    expect(after.start).toBe(before.start)
    expect(capped.bytes.subarray(0, after.start)).toEqual(input.subarray(0, before.start))
    expect(capped.bytes.subarray(after.end)).toEqual(input.subarray(before.end))
    expect([...capped.bytes.subarray(after.start, after.end)]).toEqual([5, 4, 1, 0x01, 1, 2])
    expect(capped.bytes.length).toBe(input.length + 1)

    const compiled = await WebAssembly.compile(capped.bytes)
    const sections = WebAssembly.Module.customSections(compiled, 'ark.note')
    expect(sections.map((s) => [...new Uint8Array(s)])).toEqual([
      [1, 2, 3, 4],
      [1, 2, 3, 4],
    ])
    const { memory, grow } = await instantiate(capped.bytes)
    expect(new TextDecoder().decode(new Uint8Array(memory.buffer, 16, 9))).toBe('hello ark')
    expect(grow(1)).toBe(1)
    expect(grow(1)).toBe(-1)
  })

  it('re-encodes a maximum that needs more LEB128 bytes than the section had', async () => {
    const input = wat(`(module (memory 1) ${GROW})`)
    const capped = capMemory(input, 1024)
    expect(capped.rewritten).toBe(true)
    const { start, end } = memorySection(capped.bytes)
    // 1024 is 0x80 0x08 in LEB128: the section grows from 3 payload bytes to 5.
    expect([...capped.bytes.subarray(start, end)]).toEqual([5, 5, 1, 0x01, 1, 0x80, 0x08])
    expect(capped.bytes.length).toBe(input.length + 2)

    const { grow } = await instantiate(capped.bytes)
    expect(grow(1023)).toBe(1)
    expect(grow(1)).toBe(-1)
  })

  it('caps at the full 4 GiB of a 32-bit memory, a 3-byte LEB128', async () => {
    const capped = capMemory(wat('(module (memory 1))'), 65536)
    const { start, end } = memorySection(capped.bytes)
    expect([...capped.bytes.subarray(start, end)]).toEqual([5, 6, 1, 0x01, 1, 0x80, 0x80, 0x04])
    await expect(WebAssembly.compile(capped.bytes)).resolves.toBeDefined()
  })

  it('reads padded LEB128 numbers and rejects ones longer than 5 bytes', async () => {
    // min 1 padded to 5 bytes is valid Wasm; the rewrite re-encodes it minimally.
    const padded = binary(section(5, [1, 0x00, 0x81, 0x80, 0x80, 0x80, 0x00]))
    const capped = capMemory(padded, 4)
    expect([...capped.bytes.subarray(8)]).toEqual([5, 4, 1, 0x01, 1, 4])
    await expect(WebAssembly.compile(capped.bytes)).resolves.toBeDefined()

    const overlong = binary(section(5, [1, 0x00, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00]))
    expect(() => capMemory(overlong, 4)).toThrow('number at byte offset 12 is longer than 5 bytes')
    const tooWide = binary(section(5, [1, 0x00, 0x81, 0x80, 0x80, 0x80, 0x10]))
    expect(() => capMemory(tooWide, 4)).toThrow('number at byte offset 12 does not fit in 32 bits')
  })

  it('rejects more than one memory', () => {
    const two = binary(section(5, [2, 0x00, 1, 0x00, 1]))
    expect(() => capMemory(two, 16)).toThrow(
      new ModuleRejected('declares 2 memories; ark runs modules with one'),
    )
    const twoSections = binary(section(5, [1, 0x00, 1]), section(5, [1, 0x00, 1]))
    expect(() => capMemory(twoSections, 16)).toThrow('declares 2 memories')
  })

  it('rejects a memory section with bytes after its one memory', () => {
    const input = binary(section(5, [1, 0x00, 1, 0xff]))
    expect(() => capMemory(input, 16)).toThrow('memory section at byte offset 8 has 1 byte after its memory')
  })

  it('rejects memory limit flags it does not know', () => {
    const input = binary(section(5, [1, 0x08, 1, 16]))
    expect(() => capMemory(input, 16)).toThrow('memory limits at byte offset 11 use unknown flags 0x08')
  })

  it('rejects an unknown import kind rather than skip what might follow it', () => {
    const input = binary(section(2, [1, 1, 0x65, 1, 0x66, 0x07, 0x00]))
    expect(() => capMemory(input, 16)).toThrow('unknown import kind 0x07 at byte offset 15')
  })

  it('reads a module that is a view into a larger buffer', () => {
    const module = wat('(module (memory 1))')
    const backing = new Uint8Array(module.length + 10)
    backing.set(module, 5)
    const view = backing.subarray(5, 5 + module.length)
    expect(capMemory(view, 4).bytes).toEqual(capMemory(module, 4).bytes)
  })

  it('refuses a cap that is not a valid page count', () => {
    const input = wat('(module (memory 1))')
    expect(() => capMemory(input, 65537)).toThrow(RangeError)
    expect(() => capMemory(input, 1.5)).toThrow(RangeError)
    expect(() => capMemory(input, -1)).toThrow(RangeError)
  })
})
