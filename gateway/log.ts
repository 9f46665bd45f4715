/** Structured logs: one JSON object per line. Secrets are never passed in; fields are the caller's to choose. */
type Level = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type Logger = Record<Level, (msg: string, fields?: Record<string, unknown>) => void>

export function createLogger(
  component: string,
  write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
  level: string | undefined = process.env.ARK_LOG_LEVEL,
): Logger {
  const min = ORDER[level !== undefined && level in ORDER ? (level as Level) : 'info']
  const at =
    (lv: Level) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (ORDER[lv] < min) return
      // Fields first: a field named like one of ours must not overwrite it.
      write(JSON.stringify({ ...fields, time: new Date().toISOString(), level: lv, component, msg }))
    }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

/** For embedders and tests that want silence. */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
