import { defineKind } from '../../define.ts'
import { Bool, Obj, Opt, StringMap } from '../../schema.ts'

export const ConfigMap = defineKind({
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  shortNames: ['cm'],
  internal: 'ConfigMap',
  crd: false,
  body: Obj({ data: Opt(StringMap()), binaryData: Opt(StringMap()), immutable: Opt(Bool()) }),
  adapt(doc, ctx) {
    const data = doc.data ?? {}
    for (const key of Object.keys(doc.binaryData ?? {})) {
      if (key in data) ctx.error(`binaryData.${key}`, 'is also in data; a key may appear in only one of them')
    }
    return { spec: { data: { ...data }, binaryData: { ...doc.binaryData } } }
  },
})
