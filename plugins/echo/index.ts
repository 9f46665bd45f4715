import { Config, Host } from '@extism/as-pdk'
import '../lib/ark'

/** Answers with its input, byte for byte: the cheapest possible call, for benchmarks and tests. */
export function call(): i32 {
  Host.output(Host.input())
  return 0
}

/** Answers with the configuration value named by its input, or nothing: shows how `config` reaches a plugin. */
export function config(): i32 {
  const value = Config.get(Host.inputString())
  if (value !== null) Host.output(Uint8Array.wrap(String.UTF8.encode(value)))
  return 0
}
