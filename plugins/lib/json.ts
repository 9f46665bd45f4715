// Just enough JSON for plugins whose input is a tool call's arguments: read one top-level string field, and
// write strings back escaped. A plugin with richer input would use a JSON library such as json-as.

/** The value of the top-level string field `name` in the JSON object `json`, or null. */
export function stringField(json: string, name: string): string | null {
  const key = '"' + name + '"'
  let at = json.indexOf(key)
  while (at >= 0) {
    let i = at + key.length
    while (i < json.length && isSpace(json.charCodeAt(i))) i++
    if (i < json.length && json.charCodeAt(i) == 58 /* : */) {
      i++
      while (i < json.length && isSpace(json.charCodeAt(i))) i++
      if (i < json.length && json.charCodeAt(i) == 34 /* " */) return readString(json, i + 1)
      return null
    }
    at = json.indexOf(key, at + 1)
  }
  return null
}

function isSpace(c: i32): bool {
  return c == 32 || c == 9 || c == 10 || c == 13
}

function readString(json: string, start: i32): string | null {
  let out = ''
  let i = start
  while (i < json.length) {
    const c = json.charCodeAt(i)
    if (c == 34) return out
    if (c != 92 /* \ */) {
      out += String.fromCharCode(c)
      i++
      continue
    }
    const e = json.charCodeAt(i + 1)
    i += 2
    if (e == 110) out += '\n'
    else if (e == 116) out += '\t'
    else if (e == 114) out += '\r'
    else if (e == 98) out += '\b'
    else if (e == 102) out += '\f'
    else if (e == 117 /* u */) {
      out += String.fromCharCode(i32(parseInt(json.substring(i, i + 4), 16)))
      i += 4
    } else out += String.fromCharCode(e)
  }
  return null
}

/** `text` as a JSON string literal, quotes included. */
export function quote(text: string): string {
  let out = '"'
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c == 34) out += '\\"'
    else if (c == 92) out += '\\\\'
    else if (c == 10) out += '\\n'
    else if (c == 13) out += '\\r'
    else if (c == 9) out += '\\t'
    else if (c < 32) out += '\\u' + c.toString(16).padStart(4, '0')
    else out += String.fromCharCode(c)
  }
  return out + '"'
}
