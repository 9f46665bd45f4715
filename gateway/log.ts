/**
 * Structured logs: one JSON object per line. Secrets are never passed in; fields are the caller's to choose.
 * Each line is still searched for every secret a live provider holds (knownSecrets), in every form an
 * upstream may echo it in: a message that no exit redacted (an unexpected exception's) must not carry a key.
 */
import type { Redactor } from './runtime/redactor.ts'
import { knownSecrets } from './runtime/redactor.ts'
import { activeIds } from './trace/tracing.ts'

type Level = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type Logger = Record<Level, (msg: string, fields?: Record<string, unknown>) => void>

export function createLogger(
  component: string,
  write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  level: string | undefined = process.env.ARK_LOG_LEVEL,
  secrets: { readonly redactor: Redactor } = knownSecrets,
): Logger {
  const min = ORDER[level !== undefined && level in ORDER ? (level as Level) : 'info']
  const at =
    (lv: Level) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (ORDER[lv] < min) return
      // Fields first: a field named like one of ours must not overwrite it. Inside a span (tracing on), the
      // line carries its trace_id and span_id, so that logs and traces join up.
      const ids = activeIds()
      const line = JSON.stringify({
        ...fields,
        ...ids,
        time: new Date().toISOString(),
        level: lv,
        component,
        msg,
      })
      write(secrets.redactor.text(line))
    }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** For embedders and tests that want silence. */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }

/**
 * A URL for logs: without its password, and without a query or fragment (ioredis reads `?password=`, and
 * other URLs carry tokens there).
 */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    u.search = ''
    u.hash = ''
    return u.href
  } catch {
    return 'the configured URL'
  }
}
