import { describe, expect, it } from 'vitest'
import { createLogger } from './log.ts'
import { Redactor, SecretSet } from './runtime/redactor.ts'

const KEY = 'sk-log-canary-0123456789'

describe('createLogger', () => {
  it('writes no secret a live provider holds, whatever form a message carries it in', () => {
    const secrets = new SecretSet()
    const lines: string[] = []
    const log = createLogger('test', (l) => lines.push(l), 'info', secrets)
    const release = secrets.add(Redactor.of([KEY]))
    log.error(`upstream said ${KEY}`, {
      error: `401 ${Buffer.from(`Bearer ${KEY}`).toString('base64')}`,
      url: `https://h/?k=${encodeURIComponent(KEY)}`,
    })
    expect(lines).toHaveLength(1)
    const line = JSON.parse(lines[0] ?? '') as Record<string, string>
    expect(line.msg).toBe('upstream said [REDACTED]')
    expect(line.error).toBe('401 QmVhcmVyIH[REDACTED]Q==')
    expect(line.url).toBe('https://h/?k=[REDACTED]')
    // A provider dropped (its Model gone): its key is no longer looked for.
    release()
    log.info(KEY)
    expect(lines[1]).toContain(KEY)
  })
})
