/**
 * What a process costs, read from /proc (Linux; NaN elsewhere): its resident memory sampled on a timer (the
 * peak a container's memory limit would have met), and the kernel's own high-water mark.
 */
import { readFileSync } from 'node:fs'

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM, ...); NaN when it cannot be read. */
export function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon'): number {
  try {
    const text = readFileSync(`/proc/${String(pid)}/status`, 'utf8')
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)
    return m?.[1] === undefined ? NaN : Number(m[1]) * 1024
  } catch {
    return NaN
  }
}

export interface RssSampler {
  /** Highest VmRSS seen so far, in bytes (NaN when nothing could be read). */
  readonly peak: number
  /**
   * Highest RssAnon seen, in bytes: the process's own memory (heap, stacks, buffers), without the pages of files
   * it maps (the node binary's code, shared with every other node process and reclaimable under a limit).
   */
  readonly peakAnon: number
  readonly samples: number
  /** Stops sampling; returns the peak, or the kernel's VmHWM when that is higher (it sees between samples). */
  stop(): number
}

/** Samples VmRSS and RssAnon of `pid` every `intervalMs` until stopped. */
export function sampleRss(pid: number, intervalMs = 200): RssSampler {
  let peak = NaN
  let peakAnon = NaN
  let samples = 0
  const read = () => {
    const rss = statusBytes(pid, 'VmRSS')
    if (Number.isNaN(rss)) return
    samples += 1
    peak = Number.isNaN(peak) ? rss : Math.max(peak, rss)
    const anon = statusBytes(pid, 'RssAnon')
    if (!Number.isNaN(anon)) peakAnon = Number.isNaN(peakAnon) ? anon : Math.max(peakAnon, anon)
  }
  read()
  const timer = setInterval(read, intervalMs)
  return {
    get peak() {
      return peak
    },
    get peakAnon() {
      return peakAnon
    },
    get samples() {
      return samples
    },
    stop() {
      read()
      clearInterval(timer)
      const hwm = statusBytes(pid, 'VmHWM')
      return Number.isNaN(hwm) ? peak : Number.isNaN(peak) ? hwm : Math.max(peak, hwm)
    },
  }
}
