/**
 * WASI preview 1 without a world: plugins compiled from languages whose runtime imports WASI (Go, Rust's wasi
 * target, C) still link and run, but there are no files, directories, sockets, arguments or environment
 * variables to reach. Clocks and randomness work; writes to stdout/stderr are swallowed; everything else
 * answers ENOSYS or EBADF, which the language runtimes turn into ordinary errors.
 */

const ESUCCESS = 0
const EBADF = 8
const ENOSYS = 52

type WasiFunction = (ctx: unknown, ...args: (number | bigint)[]) => number

/**
 * The shim for one instance, with a function for each WASI name the module imports (`names`); `memory` is read
 * at call time because the instance exists only afterwards.
 */
export function wasiShim(
  names: readonly string[],
  memory: () => WebAssembly.Memory | undefined,
): Record<string, WasiFunction> {
  const view = (): DataView => {
    const m = memory()
    if (m === undefined) throw new WebAssembly.RuntimeError('WASI call before the module exported its memory')
    return new DataView(m.buffer)
  }
  const zeroPair = (_ctx: unknown, a: number | bigint, b: number | bigint): number => {
    const v = view()
    v.setUint32(Number(a), 0, true)
    v.setUint32(Number(b), 0, true)
    return ESUCCESS
  }
  const functions: Record<string, WasiFunction> = {
    args_sizes_get: zeroPair,
    environ_sizes_get: zeroPair,
    args_get: () => ESUCCESS,
    environ_get: () => ESUCCESS,
    clock_res_get: (_ctx, _id, out) => {
      view().setBigUint64(Number(out), 1000n, true)
      return ESUCCESS
    },
    clock_time_get: (_ctx, id, _precision, out) => {
      const ns =
        Number(id) === 0 ? BigInt(Date.now()) * 1_000_000n : BigInt(Math.round(performance.now() * 1_000_000))
      view().setBigUint64(Number(out), ns, true)
      return ESUCCESS
    },
    random_get: (_ctx, buf, len) => {
      const m = memory()
      if (m === undefined) return ENOSYS
      // getRandomValues fills at most 64 KiB per call.
      const bytes = new Uint8Array(m.buffer, Number(buf), Number(len))
      for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536))
      return ESUCCESS
    },
    fd_write: (_ctx, fd, iovs, iovsLen, written) => {
      if (Number(fd) !== 1 && Number(fd) !== 2) return EBADF
      const v = view()
      let total = 0
      for (let i = 0; i < Number(iovsLen); i++) total += v.getUint32(Number(iovs) + i * 8 + 4, true)
      v.setUint32(Number(written), total, true)
      return ESUCCESS
    },
    // No preopened directories: a libc that looks for them finds none, and every path lookup fails.
    fd_prestat_get: () => EBADF,
    fd_prestat_dir_name: () => EBADF,
    sched_yield: () => ESUCCESS,
    proc_exit: (_ctx, code) => {
      throw new WebAssembly.RuntimeError(`the plugin exited with code ${String(code)}`)
    },
  }
  // Every other WASI function exists and refuses, so that any WASI module links.
  const shim: Record<string, WasiFunction> = {}
  for (const name of names) {
    shim[name] =
      functions[name] ?? (() => (name.startsWith('fd_') || name.startsWith('path_') ? EBADF : ENOSYS))
  }
  return shim
}
