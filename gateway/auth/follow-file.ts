/**
 * Follows a small file that is rewritten while the gateway runs (a keys file, a JWKS): read again every
 * `intervalMs`, `changed` is told its text when it differs from the last read, and `gone` is told once when it
 * cannot be read (`changed` again when it is back). Polling rather than a watch: a Secret or ConfigMap mounted
 * in a pod is swapped by the kubelet through a symlink, which a watch can miss; reading a small file cannot.
 */
import { readFile } from 'node:fs/promises'

export interface FileFollower {
  /** The file's text, when it differs from the last read. */
  changed(text: string): void
  /** The file cannot be read (gone, or unreadable): once, until it is back. */
  gone(err: unknown): void
}

/** Follows `path` from `first` (its text as the caller read it); the function returned stops. */
export function followFile(
  path: string,
  first: string,
  intervalMs: number,
  follower: FileFollower,
): () => void {
  let last = first
  let reading = false
  let gone = false
  const timer = setInterval(() => {
    // A read that takes longer than the interval (a slow volume) is not stacked up.
    if (reading) return
    reading = true
    void readFile(path, 'utf8')
      .then(
        (text) => {
          gone = false
          if (text === last) return
          last = text
          follower.changed(text)
        },
        (err: unknown) => {
          if (gone) return
          gone = true
          last = ''
          follower.gone(err)
        },
      )
      .finally(() => (reading = false))
  }, intervalMs)
  // A process that has nothing else to do may end: a followed file is no reason to stay up.
  ;(timer as { unref?: () => void }).unref?.()
  return () => clearInterval(timer)
}
