// An example custom tool: counts the words, lines and characters of a text and names its most frequent word.
// Declare it as a Tool of type `wasm` (see README, "Custom Wasm tools").
import { Config, Host } from '@extism/as-pdk'
import { fail } from '../lib/ark'
import { quote, stringField } from '../lib/json'

/** Arguments: {"text": "..."}. Answer: {"words","lines","characters","longest","top"}. */
export function call(): i32 {
  const text = stringField(Host.inputString(), 'text')
  if (text === null) return fail('text-stats needs a string argument "text"')
  // `minLength` (config) leaves short words out of `top`; 1 unless the Tool sets it.
  const min = Config.get('minLength')
  const minLength = min === null ? 1 : i32(parseInt(min))
  let words = 0
  let lines = text.length == 0 ? 0 : 1
  let longest = ''
  const counts = new Map<string, i32>()
  let word = ''
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 32
    if (c == 10) lines++
    const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 39 || c > 127
    if (letter) {
      word += String.fromCharCode(c >= 65 && c <= 90 ? c + 32 : c)
      continue
    }
    if (word.length == 0) continue
    words++
    if (word.length > longest.length) longest = word
    if (word.length >= minLength) counts.set(word, counts.has(word) ? counts.get(word) + 1 : 1)
    word = ''
  }
  let top = ''
  let best = 0
  const keys = counts.keys()
  for (let i = 0; i < keys.length; i++) {
    const n = counts.get(keys[i])
    if (n > best || (n == best && keys[i] < top)) {
      best = n
      top = keys[i]
    }
  }
  const out =
    '{"words":' +
    words.toString() +
    ',"lines":' +
    lines.toString() +
    ',"characters":' +
    text.length.toString() +
    ',"longest":' +
    quote(longest) +
    ',"top":' +
    quote(top) +
    '}'
  Host.output(Uint8Array.wrap(String.UTF8.encode(out)))
  return 0
}
