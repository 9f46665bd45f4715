/**
 * Prompt templates as ARK writes them: Go template field references, `{{.name}}` (spaces allowed inside the
 * braces). A template is parsed once per agent into literal and parameter parts; rendering is a join.
 * References to parameters the agent does not declare are left as written, so a typo shows in the prompt
 * instead of silently vanishing.
 */
export interface Template {
  /** Parameter names the template uses, in order of first use. */
  readonly parameters: readonly string[]
  render(values: Readonly<Record<string, string | undefined>>): string
}

const REFERENCE = /\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g

export function parseTemplate(text: string): Template {
  const literals: string[] = []
  const names: string[] = []
  let last = 0
  for (const m of text.matchAll(REFERENCE)) {
    literals.push(text.slice(last, m.index))
    names.push(m[1] ?? '')
    last = m.index + m[0].length
  }
  const tail = text.slice(last)
  if (names.length === 0) return { parameters: [], render: () => text }
  const raw = [...text.matchAll(REFERENCE)].map((m) => m[0])
  return {
    parameters: [...new Set(names)],
    render(values) {
      let out = ''
      for (let i = 0; i < names.length; i++) {
        const name = names[i] ?? ''
        out += (literals[i] ?? '') + (Object.hasOwn(values, name) ? (values[name] ?? '') : (raw[i] ?? ''))
      }
      return out + tail
    },
  }
}
