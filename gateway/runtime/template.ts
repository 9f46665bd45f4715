/**
 * Templates as ARK writes them: Go template field references, `{{.name}}` (spaces allowed inside the
 * braces). A template is parsed once into literal and parameter parts; rendering is a join. In prompts,
 * references to parameters the agent does not declare are left as written, so a typo shows in the prompt
 * instead of silently vanishing. Webhook URL and body templates (tools/sandboxed.ts) also accept `{{name}}`,
 * render a missing value as empty, and encode each value for where it lands.
 */
export interface Template {
  /** Parameter names the template uses, in order of first use. */
  readonly parameters: readonly string[]
  /** `encode` is applied to every value put in (URL-encoding, JSON escaping); not to references left as written. */
  render(values: Readonly<Record<string, string | undefined>>, encode?: (value: string) => string): string
}

export interface TemplateOptions {
  /** Also accept `{{name}}` without Go's dot, as webhook templates are written. */
  readonly bareNames?: boolean
  /** A name without a value renders as empty instead of as written. */
  readonly missingAsEmpty?: boolean
}

const REFERENCE = /\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g
const BARE_OR_DOTTED = /\{\{\s*\.?([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g

export function parseTemplate(text: string, options: TemplateOptions = {}): Template {
  const literals: string[] = []
  const names: string[] = []
  const raw: string[] = []
  let last = 0
  for (const m of text.matchAll(options.bareNames === true ? BARE_OR_DOTTED : REFERENCE)) {
    literals.push(text.slice(last, m.index))
    names.push(m[1] ?? '')
    raw.push(m[0])
    last = m.index + m[0].length
  }
  const tail = text.slice(last)
  if (names.length === 0) return { parameters: [], render: () => text }
  const missingAsEmpty = options.missingAsEmpty === true
  return {
    parameters: [...new Set(names)],
    render(values, encode) {
      let out = ''
      for (let i = 0; i < names.length; i++) {
        const name = names[i] ?? ''
        out += literals[i] ?? ''
        if (!Object.hasOwn(values, name) && !missingAsEmpty) {
          out += raw[i] ?? ''
          continue
        }
        const value = values[name] ?? ''
        out += encode === undefined ? value : encode(value)
      }
      return out + tail
    },
  }
}
