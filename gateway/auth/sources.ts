/**
 * Where a KeyRing's digests come from, followed live so that keys rotate without a restart:
 * - a keys file (`--api-keys`), read again every second when it changed. A mounted Secret or ConfigMap is
 *   swapped by the kubelet through a symlink, which a file watch can miss; reading a small file cannot.
 * - a Secret in the catalog (`--api-keys-secret ns/name`), as the store delivers it.
 * A version that does not parse is refused and said (its path, never a value); the keys before it stay.
 */
import { readFile } from 'node:fs/promises'
import { resourceKey } from '../../controller/api/index.ts'
import type { ObjectRef, ResourceOf } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { Logger } from '../log.ts'
import type { KeyRing } from './keys.ts'
import { keysFromSecret, parseKeysFile } from './keys.ts'

export interface KeySource {
  close(): void
}

/** Reads the file into the ring (rejects when it is missing or invalid), then follows it. */
export async function followKeysFile(
  path: string,
  ring: KeyRing,
  log: Logger,
  intervalMs = 1000,
): Promise<KeySource> {
  let last = await readFile(path, 'utf8')
  try {
    ring.replace(parseKeysFile(last))
  } catch (err) {
    throw new Error(`--api-keys ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  let reading = false
  const timer = setInterval(() => {
    if (reading) return
    reading = true
    void readFile(path, 'utf8')
      .then((text) => {
        if (text === last) return
        last = text
        try {
          ring.replace(parseKeysFile(text))
          log.info('API keys reloaded', { file: path, keys: ring.size })
        } catch (err) {
          log.error('API keys file refused; the keys before it stay', {
            file: path,
            error: err instanceof Error ? err.message : String(err),
          })
        }
      })
      .catch((err: unknown) =>
        log.warn('API keys file unreadable; the keys before it stay', { file: path, error: String(err) }),
      )
      .finally(() => (reading = false))
  }, intervalMs)
  // A process that has nothing else to do may end: the keys file is no reason to stay up.
  ;(timer as { unref?: () => void }).unref?.()
  return { close: () => clearInterval(timer) }
}

/**
 * Follows a Secret of the catalog: each data key is a key id, its value the key's digest. Until the Secret
 * exists no key is accepted (a gateway told to require keys never runs open).
 */
export function followKeysSecret(catalog: Catalog, ref: ObjectRef, ring: KeyRing, log: Logger): KeySource {
  const key = resourceKey('Secret', ref.namespace, ref.name)
  const where = `${ref.namespace}/${ref.name}`
  let said = ''
  const load = () => {
    const secret = catalog.store.get(key) as ResourceOf<'Secret'> | undefined
    if (secret === undefined) {
      ring.replace([])
      if (said !== 'missing')
        log.warn('API keys Secret not found: every request is refused', { secret: where })
      said = 'missing'
      return
    }
    try {
      ring.replace(keysFromSecret(secret.spec.data))
      if (said !== secret.meta.resourceVersion)
        log.info('API keys loaded', { secret: where, keys: ring.size })
      said = secret.meta.resourceVersion ?? 'loaded'
    } catch (err) {
      log.error('API keys Secret refused; the keys before it stay', {
        secret: where,
        error: err instanceof Error ? err.message : String(err),
      })
    }
  }
  load()
  const unsubscribe = catalog.store.subscribe((events) => {
    if (events.some((e) => e.resource.key === key)) load()
  })
  return { close: unsubscribe }
}
