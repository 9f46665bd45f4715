/** Structured JSON-lines logging for the CLI's long-running commands. */
type Level = 'debug' | 'info' | 'warn' | 'error'
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type Logger = Record<Level, (msg: string, fields?: Record<string, unknown>) => void>

export function createLogger(
  component: string,
  write: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Logger {
  const env = process.env.ARK_LOG_LEVEL as Level | undefined
  const min = ORDER[env !== undefined && env in ORDER ? env : 'info']
  const at =
    (level: Level) =>
    (msg: string, fields: Record<string, unknown> = {}) => {
      if (ORDER[level] < min) return
      write(JSON.stringify({ time: new Date().toISOString(), level, component, msg, ...fields }))
    }
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}
