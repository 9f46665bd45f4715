/**
 * Hostile (and a few plain) test plugins, written in WAT against Extism's kernel ABI and assembled with wabt.
 * Each does one thing a tool must never get away with.
 */
import createWabt from 'wabt'

const KERNEL = `
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
`

/** Writes `len` bytes of `byte` as the output; `$out` helper shared by the plugins below. */
const OUTPUT_BYTES = `
  (func $output_byte (param $byte i32)
    (local $at i64)
    (local.set $at (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $at) (local.get $byte))
    (call $output_set (local.get $at) (i64.const 1)))
`

export const WAT = {
  /** Never returns. */
  loop: `(module
    (memory (export "memory") 1)
    (func (export "call") (result i32) (loop $forever (br $forever)) (i32.const 0)))`,

  /** Grows its memory a page at a time until refused, then traps as a language runtime does when out of memory. */
  grow: `(module
    (memory (export "memory") 1)
    (func (export "call") (result i32)
      (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      unreachable))`,

  /** Asks the host for 1 MiB blocks forever. */
  allocBomb: `(module ${KERNEL}
    (memory (export "memory") 1)
    (func (export "call") (result i32)
      (loop $more (drop (call $alloc (i64.const 1048576))) (br $more))
      (i32.const 0)))`,

  /** Reads configuration value "k" forever: each read is a new host block. */
  configBomb: `(module ${KERNEL}
    (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
    (memory (export "memory") 1)
    (func (export "call") (result i32)
      (local $key i64)
      (local.set $key (call $alloc (i64.const 1)))
      (call $store_u8 (local.get $key) (i32.const 107))
      (loop $more (drop (call $config_get (local.get $key))) (br $more))
      (i32.const 0)))`,

  /**
   * Catches what the host throws (Wasm exception handling) and keeps asking: first for a negative size,
   * then for 1 MiB blocks forever.
   */
  sneaky: `(module ${KERNEL}
    (memory (export "memory") 1)
    (func (export "call") (result i32)
      (try (do (drop (call $alloc (i64.const -4611686018427387904)))) (catch_all))
      (loop $more
        (try (do (drop (call $alloc (i64.const 1048576)))) (catch_all))
        (br $more))
      (i32.const 0)))`,

  /** Sets a 1 MiB error message. */
  hugeError: `(module ${KERNEL}
    (import "extism:host/env" "error_set" (func $error_set (param i64)))
    (memory (export "memory") 1)
    (func (export "call") (result i32)
      (local $at i64) (local $i i64)
      (local.set $at (call $alloc (i64.const 1048576)))
      (loop $fill
        (call $store_u8 (i64.add (local.get $at) (local.get $i)) (i32.const 120))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br_if $fill (i64.lt_u (local.get $i) (i64.const 1048576))))
      (call $error_set (local.get $at))
      (i32.const 1)))`,

  /** Counts its calls in a global and answers the count; traps (after counting) when the input is not empty. */
  counter: `(module ${KERNEL}
    (import "extism:host/env" "input_length" (func $input_length (result i64)))
    (memory (export "memory") 1)
    (global $calls (mut i32) (i32.const 0))
    ${OUTPUT_BYTES}
    (func (export "call") (result i32)
      (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
      (if (i64.ne (call $input_length) (i64.const 0)) (then unreachable))
      (call $output_byte (global.get $calls))
      (i32.const 0)))`,

  /** Declares an output of 100 MiB. */
  hugeOutput: `(module ${KERNEL}
    (memory (export "memory") 1)
    (func (export "call") (result i32)
      (local $at i64)
      (local.set $at (call $alloc (i64.const 104857600)))
      (call $output_set (local.get $at) (i64.const 104857600))
      (i32.const 0)))`,

  /** Tries to open /etc/passwd through WASI; answers the two error numbers it got (prestat, path_open). */
  readFile: `(module ${KERNEL}
    (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "path_open"
      (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "/etc/passwd")
    (func (export "call") (result i32)
      (local $e1 i32) (local $e2 i32) (local $at i64)
      (local.set $e1 (call $prestat (i32.const 3) (i32.const 64)))
      (local.set $e2 (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 11) (i32.const 0)
        (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 128)))
      (local.set $at (call $alloc (i64.const 2)))
      (call $store_u8 (local.get $at) (local.get $e1))
      (call $store_u8 (i64.add (local.get $at) (i64.const 1)) (local.get $e2))
      (call $output_set (local.get $at) (i64.const 2))
      (i32.const 0)))`,

  /** Wants a host function that does not exist: refused when loaded. */
  foreignImport: `(module
    (import "env" "read_file" (func (param i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "call") (result i32) (i32.const 0)))`,

  /** Declares 2 GiB of initial memory. */
  hugeMemory: `(module
    (memory (export "memory") 32768)
    (func (export "call") (result i32) (i32.const 0)))`,

  /** Traps at once. */
  trap: `(module
    (memory (export "memory") 1)
    (func (export "call") (result i32) unreachable))`,

  /** Answers one byte: 7. */
  seven: `(module ${KERNEL}
    (memory (export "memory") 1)
    ${OUTPUT_BYTES}
    (func (export "call") (result i32) (call $output_byte (i32.const 7)) (i32.const 0)))`,
} as const

export type PluginName = keyof typeof WAT

let wabt: Awaited<ReturnType<typeof createWabt>> | undefined

/** The plugin's Wasm bytes. */
export async function wasm(name: PluginName): Promise<Uint8Array> {
  wabt ??= await createWabt()
  const module = wabt.parseWat(`${name}.wat`, WAT[name], { exceptions: true })
  try {
    return module.toBinary({}).buffer
  } finally {
    module.destroy()
  }
}
