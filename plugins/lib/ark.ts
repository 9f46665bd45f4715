// Shared by ark's AssemblyScript plugins.
import { Memory } from '@extism/as-pdk'

/**
 * AssemblyScript calls `abort` on a failed assertion or an out-of-bounds access. Plugins import no `env`, so
 * builds point `abort` here (`--use abort=plugins/lib/ark/arkAbort`): the call ends with a trap, and ark
 * reports it as one.
 */
export function arkAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  unreachable()
}

@external('extism:host/env', 'error_set')
declare function error_set(offset: u64): void

/** Ends the call with an error the caller sees as the tool's error message (Extism's error_set). */
export function fail(message: string): i32 {
  error_set(Memory.allocateString(message).offset)
  return 1
}
