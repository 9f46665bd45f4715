/**
 * Where a KeyRing's digests come from, followed live so that keys rotate without a restart:
 * - a keys file (`--api-keys`), read again every second (follow-file.ts).
 * - a Secret in the catalog (`--api-keys-secret ns/name`), as the store delivers it.
 * A version that does not parse is refused and said (its path, never a value). Of the keys before it, only
 * those whose digest it still holds stay: an edit that revokes a key and breaks the file revokes it all the
 * same. A file that is gone, or a Secret that is, lets no one in. Each change of state is logged once.
 */
import { readFile } from 'node:fs/promises'
import { resourceKey } from '../../controller/api/index.ts'
import type { ObjectRef, ResourceOf } from '../../controller/api/index.ts'
import type { Catalog } from '../../controller/store/index.ts'
import type { Logger } from '../log.ts'
import { followFile } from './follow-file.ts'
import type { KeyRing } from './keys.ts'
import { keysFromSecret, parseKeysFile } from './keys.ts'

export interface KeySource {
  /** Whether keys were loaded at least once (until then the gateway is not ready). */
  loaded(): boolean
  close(): void
}

/** After a refused version: the keys before it that it still names by digest. */
function stillListed(ring: KeyRing, text: string): void {
  ring.replace(
    ring.entries.filter((e) => text.includes(e.sha256)),
    ring.namespaces,
  )
}

const reason = (err: unknown): string =>
  (err as { code?: unknown }).code === 'ENOENT'
    ? 'no such file'
    : err instanceof Error
      ? err.message
      : String(err)

/** Reads the file into the ring (rejects when it is missing or invalid), then follows it. */
export async function followKeysFile(
  path: string,
  ring: KeyRing,
  log: Logger,
  intervalMs = 1000,
): Promise<KeySource> {
  let last: string
  try {
    last = await readFile(path, 'utf8')
    const config = parseKeysFile(last)
    ring.replace(config.keys, config.namespaces)
  } catch (err) {
    throw new Error(`--api-keys ${path}: ${reason(err)}`, { cause: err })
  }
  const stop = followFile(path, last, intervalMs, {
    changed(text) {
      try {
        const config = parseKeysFile(text)
        ring.replace(config.keys, config.namespaces)
        log.info('API keys reloaded', { file: path, keys: ring.size })
      } catch (err) {
        stillListed(ring, text)
        log.error('API keys file refused; of the keys before it, those it still lists stay', {
          file: path,
          keys: ring.size,
          error: reason(err),
        })
      }
    },
    gone(err) {
      // Namespaces' limits stay: JWT callers (auth/jwt.ts) still get in, and must still be held to them.
      ring.replace([], ring.namespaces)
      log.error('API keys file unreadable: no key is accepted until it is back', {
        file: path,
        error: reason(err),
      })
    },
  })
  return { loaded: () => true, close: stop }
}

/**
 * Follows a Secret of the catalog: each data key is a key id, its value the key's digest. Until the Secret
 * exists no key is accepted (a gateway told to require keys never runs open).
 */
export function followKeysSecret(catalog: Catalog, ref: ObjectRef, ring: KeyRing, log: Logger): KeySource {
  const key = resourceKey('Secret', ref.namespace, ref.name)
  const where = `${ref.namespace}/${ref.name}`
  let said = ''
  let loaded = false
  const load = () => {
    const secret = catalog.store.get(key) as ResourceOf<'Secret'> | undefined
    if (secret === undefined) {
      ring.replace([], ring.namespaces)
      if (said !== 'missing')
        log.warn('API keys Secret not found: every request is refused', { secret: where })
      said = 'missing'
      return
    }
    const version = secret.meta.resourceVersion ?? JSON.stringify(secret.spec.data)
    if (said === version) return
    said = version
    try {
      const config = keysFromSecret(secret.spec.data)
      ring.replace(config.keys, config.namespaces)
      loaded = true
      log.info('API keys loaded', { secret: where, keys: ring.size })
    } catch (err) {
      stillListed(ring, Object.values(secret.spec.data).join('\n'))
      log.error('API keys Secret refused; of the keys before it, those it still lists stay', {
        secret: where,
        keys: ring.size,
        error: reason(err),
      })
    }
  }
  load()
  const unsubscribe = catalog.store.subscribe((events) => {
    if (events.some((e) => e.resource.key === key)) load()
  })
  return { loaded: () => loaded, close: unsubscribe }
}
