/**
 * Caps a Wasm module's memory by rewriting its binary before it is compiled. The plugin runtime's own
 * memory limits are not reliable, but V8 enforces a module's declared memory maximum: a `memory.grow` past
 * it fails inside the guest instead of taking memory from the host. So ark lowers (or adds) that maximum.
 *
 * Only the import and memory sections are read; every other section is copied byte for byte, and
 * everything this module does not need to understand is left for `WebAssembly.compile` to validate.
 * Standard Web APIs only: this runs on Node and Deno.
 */

/** The module cannot run under ark's limits, or is not a Wasm module; the message says why, for a person. */
export class ModuleRejected extends Error {
  override readonly name = 'ModuleRejected'
}

export const WASM_PAGE_BYTES = 65536

/** The most pages a 32-bit memory can have (4 GiB). */
export const MAX_WASM32_PAGES = 65536

export interface CappedModule {
  /** The bytes to compile: the input itself when nothing had to change. */
  readonly bytes: Uint8Array
  /** A memory maximum was added or lowered. */
  readonly rewritten: boolean
  /** The maximum the module declared for its memory, in pages; undefined when it declared none or has no memory. */
  readonly declaredMaxPages: number | undefined
}

const MAGIC = [0x00, 0x61, 0x73, 0x6d]
const HEADER_BYTES = 8
const SECTION_IMPORT = 2
const SECTION_MEMORY = 5

const IMPORT_FUNC = 0x00
const IMPORT_TABLE = 0x01
const IMPORT_MEMORY = 0x02
const IMPORT_GLOBAL = 0x03
const IMPORT_TAG = 0x04

const LIMITS_HAS_MAX = 0x01
const LIMITS_SHARED = 0x02
const LIMITS_64 = 0x04
const LIMITS_KNOWN = LIMITS_HAS_MAX | LIMITS_SHARED | LIMITS_64

/** Reference types with a heap type operand (GC proposal): `(ref null ht)` and `(ref ht)`. */
const REF_NULL_HT = 0x63
const REF_HT = 0x64

/** Reads one region of the binary; running past `end` is a rejection naming `context` and the offset. */
class Reader {
  pos: number
  readonly bytes: Uint8Array
  readonly end: number
  readonly context: string

  constructor(bytes: Uint8Array, pos: number, end: number, context: string) {
    this.bytes = bytes
    this.pos = pos
    this.end = end
    this.context = context
  }

  byte(): number {
    const value = this.pos < this.end ? this.bytes[this.pos] : undefined
    if (value === undefined) throw new ModuleRejected(`${this.context} ends early at byte offset ${this.pos}`)
    this.pos++
    return value
  }

  /** An unsigned LEB128 number of at most 32 bits; longer encodings are malformed, as the spec says. */
  u32(): number {
    const start = this.pos
    let value = 0
    for (let i = 0; i < 5; i++) {
      const b = this.byte()
      // Multiplication, not shifts: shifts are signed 32-bit in JS and would turn bit 31 negative.
      value += (b & 0x7f) * 2 ** (7 * i)
      if ((b & 0x80) === 0) {
        if (i === 4 && b > 0x0f) {
          throw new ModuleRejected(`${this.context}: number at byte offset ${start} does not fit in 32 bits`)
        }
        return value
      }
    }
    throw new ModuleRejected(`${this.context}: number at byte offset ${start} is longer than 5 bytes`)
  }

  /** Steps over a LEB128 number of up to `maxBytes` bytes whose value is not needed. */
  skipLeb(maxBytes: number): void {
    const start = this.pos
    for (let i = 0; i < maxBytes; i++) {
      if ((this.byte() & 0x80) === 0) return
    }
    throw new ModuleRejected(
      `${this.context}: number at byte offset ${start} is longer than ${maxBytes} bytes`,
    )
  }

  name(): string {
    const length = this.u32()
    if (length > this.end - this.pos) {
      throw new ModuleRejected(`${this.context}: name at byte offset ${this.pos} runs past the end`)
    }
    const raw = this.bytes.subarray(this.pos, this.pos + length)
    this.pos += length
    return new TextDecoder().decode(raw)
  }
}

/** Caps the module's defined memory at `maxPages` pages. */
export function capMemory(bytes: Uint8Array, maxPages: number): CappedModule {
  if (!Number.isInteger(maxPages) || maxPages < 0 || maxPages > MAX_WASM32_PAGES) {
    // A caller's mistake, not the module's: not a ModuleRejected.
    throw new RangeError(
      `memory cap must be a whole number of pages from 0 to ${MAX_WASM32_PAGES}, got ${maxPages}`,
    )
  }
  checkHeader(bytes)

  let memories = 0
  let memory:
    { readonly start: number; readonly end: number; readonly min: number; readonly max?: number } | undefined
  let pos = HEADER_BYTES
  while (pos < bytes.length) {
    const start = pos
    const header = new Reader(bytes, pos, bytes.length, `section at byte offset ${start}`)
    const id = header.byte()
    const size = header.u32()
    const payload = header.pos
    if (size > bytes.length - payload) {
      throw new ModuleRejected(
        `section ${id} at byte offset ${start} claims ${size} bytes but only ${bytes.length - payload} remain`,
      )
    }
    const end = payload + size
    if (id === SECTION_IMPORT) {
      checkImports(new Reader(bytes, payload, end, `import section at byte offset ${start}`))
    } else if (id === SECTION_MEMORY) {
      const reader = new Reader(bytes, payload, end, `memory section at byte offset ${start}`)
      const count = reader.u32()
      memories += count
      // Counted across sections too: a second memory section is as much a second memory as a count of 2.
      if (memories > 1) throw new ModuleRejected(`declares ${memories} memories; ark runs modules with one`)
      if (count === 1) {
        const limits = readMemoryLimits(reader)
        if (reader.pos !== end) {
          throw new ModuleRejected(
            `memory section at byte offset ${start} has ${byteCount(end - reader.pos)} after its memory`,
          )
        }
        memory = { start, end, ...limits }
      }
    }
    pos = end
  }

  if (memory === undefined) return { bytes, rewritten: false, declaredMaxPages: undefined }
  if (memory.min > maxPages) {
    throw new ModuleRejected(
      `initial memory ${mebibytes(memory.min)} (${pageCount(memory.min)}) exceeds the cap of ` +
        `${mebibytes(maxPages)} (${pageCount(maxPages)})`,
    )
  }
  if (memory.max !== undefined && memory.max <= maxPages) {
    return { bytes, rewritten: false, declaredMaxPages: memory.max }
  }

  const payload = [...leb(1), LIMITS_HAS_MAX, ...leb(memory.min), ...leb(maxPages)]
  const section = [SECTION_MEMORY, ...leb(payload.length), ...payload]
  const out = new Uint8Array(bytes.length - (memory.end - memory.start) + section.length)
  out.set(bytes.subarray(0, memory.start), 0)
  out.set(section, memory.start)
  out.set(bytes.subarray(memory.end), memory.start + section.length)
  return { bytes: out, rewritten: true, declaredMaxPages: memory.max }
}

function checkHeader(bytes: Uint8Array): void {
  if (bytes.length < HEADER_BYTES) {
    throw new ModuleRejected(`not a WebAssembly module: only ${bytes.length} bytes, too short for the header`)
  }
  if (MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new ModuleRejected('not a WebAssembly module: it does not start with the \\0asm magic')
  }
  const version = new DataView(bytes.buffer, bytes.byteOffset + 4, 4).getUint32(0, true)
  if (version !== 1) {
    // Components (the component model) share the magic but carry a different version/layer.
    throw new ModuleRejected(
      `not a WebAssembly module: binary version 0x${version.toString(16)}, ark reads version 1`,
    )
  }
}

/**
 * Rejects a module that imports its memory: ark can only cap a memory the module defines, since an imported
 * one's limits are whatever the host hands it. Every entry is parsed because a memory import can come after
 * any number of others, and an entry's size is only known by decoding it.
 */
function checkImports(reader: Reader): void {
  const count = reader.u32()
  for (let i = 0; i < count; i++) {
    const module = reader.name()
    const field = reader.name()
    const kindAt = reader.pos
    const kind = reader.byte()
    switch (kind) {
      case IMPORT_FUNC:
        reader.u32()
        break
      case IMPORT_TABLE:
        skipRefType(reader)
        skipLimits(reader)
        break
      case IMPORT_MEMORY:
        throw new ModuleRejected(
          `imports its memory (${printable(module)}.${printable(field)}); an ark plugin must define its own`,
        )
      case IMPORT_GLOBAL:
        skipRefType(reader)
        reader.byte()
        break
      case IMPORT_TAG:
        reader.byte()
        reader.u32()
        break
      default:
        // Unknown kinds cannot be stepped over, and a memory import could hide behind one.
        throw new ModuleRejected(
          `${reader.context}: unknown import kind 0x${hex(kind)} at byte offset ${kindAt}`,
        )
    }
  }
}

/** Steps over a value or reference type: one byte, or with GC a reference prefix and a signed heap type. */
function skipRefType(reader: Reader): void {
  const type = reader.byte()
  // Heap types are s33: up to 5 LEB bytes.
  if (type === REF_NULL_HT || type === REF_HT) reader.skipLeb(5)
}

/** Steps over table limits; 64-bit tables carry u64 numbers (up to 10 LEB bytes). */
function skipLimits(reader: Reader): void {
  const flags = reader.byte()
  const width = (flags & LIMITS_64) === 0 ? 5 : 10
  reader.skipLeb(width)
  if ((flags & LIMITS_HAS_MAX) !== 0) reader.skipLeb(width)
}

function readMemoryLimits(reader: Reader): { min: number; max?: number } {
  const flagsAt = reader.pos
  const flags = reader.byte()
  if ((flags & LIMITS_SHARED) !== 0) {
    throw new ModuleRejected('declares shared memory, which ark does not run')
  }
  if ((flags & LIMITS_64) !== 0) {
    throw new ModuleRejected('declares 64-bit memory (memory64), which ark does not run; build for wasm32')
  }
  if ((flags & ~LIMITS_KNOWN) !== 0) {
    // Other bits (custom page sizes, say) change what a page is, so a cap in 64 KiB pages would be wrong.
    throw new ModuleRejected(`memory limits at byte offset ${flagsAt} use unknown flags 0x${hex(flags)}`)
  }
  const min = reader.u32()
  return (flags & LIMITS_HAS_MAX) === 0 ? { min } : { min, max: reader.u32() }
}

function leb(value: number): number[] {
  const out: number[] = []
  let rest = value
  do {
    const low = rest & 0x7f
    rest = Math.floor(rest / 128)
    out.push(rest === 0 ? low : low | 0x80)
  } while (rest !== 0)
  return out
}

function mebibytes(pages: number): string {
  // Two decimals at most: a page is 0.0625 MiB, and a person reads 1.06 MiB better than 1.0625 MiB.
  return `${Number(((pages * 64) / 1024).toFixed(2))} MiB`
}

function pageCount(pages: number): string {
  return pages === 1 ? '1 page' : `${pages} pages`
}

function byteCount(bytes: number): string {
  return bytes === 1 ? '1 byte' : `${bytes} bytes`
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0')
}

/** Import names are the module author's text: escape controls so a message cannot forge log lines. */
function printable(text: string): string {
  return text.replace(
    /[\p{Cc}\p{Cf}]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  )
}
