import { base64Bytes } from '../../base64.ts'
import { defineKind } from '../../define.ts'
import { Bool, Obj, Opt, Str, StringMap } from '../../schema.ts'

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

export const Secret = defineKind({
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  internal: 'Secret',
  crd: false,
  body: Obj({
    type: Opt(Str()),
    data: Opt(StringMap()),
    stringData: Opt(StringMap()),
    immutable: Opt(Bool()),
  }),
  adapt(doc, ctx) {
    const data: Record<string, string> = {}
    for (const [key, encoded] of Object.entries(doc.data ?? {})) {
      const compact = encoded.replace(/\s+/g, '')
      // Never echo the value: the message names only the key.
      if (compact.length % 4 !== 0 || !BASE64.test(compact)) ctx.error(`data.${key}`, 'is not valid base64')
      else data[key] = utf8.decode(base64Bytes(compact))
    }
    // As the apiserver does, stringData wins over data for the same key.
    Object.assign(data, doc.stringData)
    return { spec: { type: doc.type ?? 'Opaque', data } }
  },
})

const utf8 = new TextDecoder()
