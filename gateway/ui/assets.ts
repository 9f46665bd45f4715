/**
 * The dashboard's page, script and style sheet: plain files beside this one (gateway/ui/assets/), read once on
 * first use and served from memory. No build step: the page is a small ES module on the browser's own APIs.
 * `npm run build` copies the folder beside the compiled gateway, where this finds it.
 */
import { readFileSync } from 'node:fs'

const TYPES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
}

export interface Asset {
  readonly body: Uint8Array<ArrayBuffer>
  readonly type: string
  /** A strong validator: the page is revalidated on every load, and unchanged files cost a 304. */
  readonly etag: string
}

const loaded = new Map<string, Asset>()

/** The named asset, or undefined when there is no such file to serve. */
export function asset(name: string): Asset | undefined {
  const type = TYPES[name]
  if (type === undefined) return undefined
  let found = loaded.get(name)
  if (found === undefined) {
    const bytes = readFileSync(new URL(`./assets/${name}`, import.meta.url))
    const body = new Uint8Array(bytes.byteLength)
    body.set(bytes)
    found = { body, type, etag: `"${hash(body)}"` }
    loaded.set(name, found)
  }
  return found
}

/** FNV-1a over the bytes: enough to tell two versions of a file apart. */
function hash(bytes: Uint8Array): string {
  let h = 0x811c9dc5
  for (const b of bytes) {
    h ^= b
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0).toString(16).padStart(8, '0') + bytes.byteLength.toString(16)
}
