/**
 * Where the Kubernetes API is and how to authenticate to it, read the way kubectl and client-go read it:
 * `--kubeconfig <file>`, else the files in KUBECONFIG (merged, the first definition of a name wins), else
 * ~/.kube/config, else the pod's service account (in-cluster).
 *
 * Why ark reads kubeconfigs itself: @kubernetes/client-node's KubeConfig module imports every generated
 * API, which costs a process about 78 MiB of memory (module sources and code) that the controller never
 * uses; its budget is 128 MiB. The static forms, which are what controllers run with (service-account
 * tokens, token files, client certificates, basic auth), are read here; a user that needs a credential
 * plugin (`exec`, `auth-provider`: cloud logins, OIDC) is handed to client-node, loaded only then.
 *
 * Secrets (tokens, keys, passwords) are never part of an error message: errors name the file and the field.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { AgentOptions } from 'node:https'
import type { OutgoingHttpHeaders } from 'node:http'
import { homedir } from 'node:os'
import { delimiter, dirname, isAbsolute, join } from 'node:path'
import type { KubeConfig } from '@kubernetes/client-node'
import { parse, stringify } from 'yaml'

/** TLS material for node:https agents. */
export type TlsMaterial = Pick<
  AgentOptions,
  'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'servername' | 'rejectUnauthorized'
>

/** What a client needs to talk to one API server as one user. */
export interface KubeAccess {
  readonly server: URL
  /** The current context's namespace (in a pod: the pod's own); 'default' when none is set. */
  readonly namespace: string
  readonly tls: TlsMaterial
  /** The request headers that authenticate; called again whenever a client refreshes (files rotate). */
  headers(): Promise<OutgoingHttpHeaders>
  /** Where this came from, for logs: a file path, or 'in-cluster'. */
  readonly source: string
}

/** The service account's mount in a pod; a parameter so that tests can point it elsewhere. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'

export interface LoadOptions {
  /** --kubeconfig: this file only. */
  readonly path?: string
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly home?: string
  readonly serviceAccountDir?: string
}

/** Finds and reads the configuration, as described at the top. Throws an Error that says what is missing. */
export async function loadKubeAccess(options: LoadOptions = {}): Promise<KubeAccess> {
  const env = options.env ?? process.env
  if (options.path !== undefined && options.path !== '') return fromFiles([options.path])
  const listed = (env.KUBECONFIG ?? '').split(delimiter).filter((p) => p !== '')
  if (listed.length > 0)
    return fromFiles(
      listed.filter((p) => existsSync(p)),
      listed,
    )
  const home = join(options.home ?? homedir(), '.kube', 'config')
  if (existsSync(home)) return fromFiles([home])
  if (env.KUBERNETES_SERVICE_HOST !== undefined && env.KUBERNETES_SERVICE_HOST !== '')
    return inCluster(env, options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR)
  throw new Error(
    'no Kubernetes cluster to talk to: pass --kubeconfig <file>, set KUBECONFIG, write ~/.kube/config, or run in a pod',
  )
}

// ---- in-cluster --------------------------------------------------------------------------------------

async function inCluster(
  env: Readonly<Record<string, string | undefined>>,
  dir: string,
): Promise<KubeAccess> {
  const host = env.KUBERNETES_SERVICE_HOST ?? ''
  const port = env.KUBERNETES_SERVICE_PORT ?? '443'
  const tokenFile = join(dir, 'token')
  const caFile = join(dir, 'ca.crt')
  const ca = await readText(caFile, 'the service account CA (in-cluster)')
  let namespace = 'default'
  try {
    namespace = (await readFile(join(dir, 'namespace'), 'utf8')).trim() || 'default'
  } catch {
    // Without a namespace file the pod's namespace is unknown; 'default' as client-go does.
  }
  await readText(tokenFile, 'the service account token (in-cluster)')
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    namespace,
    tls: { ca },
    // A projected token rotates (about hourly): read it again whenever the client refreshes.
    headers: async () => ({
      authorization: `Bearer ${(await readText(tokenFile, 'the service account token')).trim()}`,
    }),
    source: 'in-cluster',
  }
}

// ---- kubeconfig files --------------------------------------------------------------------------------

interface Named<T> {
  readonly name: string
  readonly value: T
  /** The folder relative paths in `value` are relative to: the file that defined it. */
  readonly base: string
}

interface Merged {
  currentContext: string | undefined
  readonly clusters: Map<string, Named<Record<string, unknown>>>
  readonly users: Map<string, Named<Record<string, unknown>>>
  readonly contexts: Map<string, Named<Record<string, unknown>>>
}

async function fromFiles(paths: readonly string[], listed: readonly string[] = paths): Promise<KubeAccess> {
  if (paths.length === 0) throw new Error(`KUBECONFIG names no file that exists (${listed.join(delimiter)})`)
  const merged: Merged = {
    currentContext: undefined,
    clusters: new Map(),
    users: new Map(),
    contexts: new Map(),
  }
  for (const path of paths) mergeFile(merged, path, await readText(path, 'the kubeconfig'))
  const where = paths.join(delimiter)
  const contextName = merged.currentContext
  if (contextName === undefined) throw new Error(`${where}: no current-context is set`)
  const context = merged.contexts.get(contextName)?.value
  if (context === undefined) throw new Error(`${where}: current-context "${contextName}" is not defined`)
  const clusterName = str(context.cluster)
  const cluster = clusterName === undefined ? undefined : merged.clusters.get(clusterName)
  if (cluster === undefined)
    throw new Error(
      `${where}: context "${contextName}" names cluster "${clusterName ?? ''}", which is not defined`,
    )
  const userName = str(context.user)
  const user = userName === undefined ? undefined : merged.users.get(userName)
  if (userName !== undefined && userName !== '' && user === undefined)
    throw new Error(`${where}: context "${contextName}" names user "${userName}", which is not defined`)
  const namespace = str(context.namespace) || 'default'

  const serverText = str(cluster.value.server)
  if (serverText === undefined || serverText === '')
    throw new Error(`${where}: cluster "${cluster.name}" has no server`)
  let server: URL
  try {
    server = new URL(serverText)
  } catch {
    throw new Error(`${where}: cluster "${cluster.name}" server "${serverText}" is not a URL`)
  }
  if (cluster.value['proxy-url'] !== undefined)
    throw new Error(`${where}: cluster "${cluster.name}" sets proxy-url, which ark does not support`)

  // client-node reads everything itself for a plugin user: nothing here is read twice.
  if (user !== undefined && (user.value.exec !== undefined || user.value['auth-provider'] !== undefined))
    return viaClientNode(merged, paths, contextName, where)

  const tls: TlsMaterial = {
    ...(await material(cluster, 'certificate-authority', 'ca', where)),
    ...(cluster.value['insecure-skip-tls-verify'] === 'true' ? { rejectUnauthorized: false } : {}),
    ...(str(cluster.value['tls-server-name']) ? { servername: str(cluster.value['tls-server-name']) } : {}),
  }
  if (user === undefined) return { server, namespace, tls, headers: () => Promise.resolve({}), source: where }

  Object.assign(
    tls,
    await material(user, 'client-certificate', 'cert', where),
    await material(user, 'client-key', 'key', where),
  )
  const token = str(user.value.token)
  const tokenFile = str(user.value.tokenFile)
  const username = str(user.value.username)
  const password = str(user.value.password)
  const headers = async (): Promise<OutgoingHttpHeaders> => {
    // A tokenFile wins over a token, as in client-go: the file is the one that rotates.
    if (tokenFile !== undefined && tokenFile !== '') {
      const text = await readText(resolveFrom(user.base, tokenFile), `user "${user.name}" tokenFile`)
      return { authorization: `Bearer ${text.trim()}` }
    }
    if (token !== undefined && token !== '') return { authorization: `Bearer ${token}` }
    if (username !== undefined && password !== undefined)
      return { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` }
    return {}
  }
  await headers() // a tokenFile that cannot be read fails now, with its name, not on the first request
  return { server, namespace, tls, headers, source: where }
}

function mergeFile(merged: Merged, path: string, text: string): void {
  let doc: unknown
  try {
    // failsafe: every scalar is text, as kubectl reads it (`password: 123456` is a password, not a number).
    // logLevel error: the parser's warnings quote the file (a token with it) and go to stderr otherwise.
    doc = parse(text, { schema: 'failsafe', logLevel: 'error', prettyErrors: false })
  } catch (err) {
    // Only the first line of the parser's message (where and what): the lines after it quote the file,
    // which may hold a token, so the error is not attached as a cause either.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`${path}: not YAML: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`)
  }
  if (doc === null || doc === undefined) return
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new Error(`${path}: not a kubeconfig (not a mapping)`)
  const config = doc as Record<string, unknown>
  const current = str(config['current-context'])
  if (merged.currentContext === undefined && current !== undefined && current !== '')
    merged.currentContext = current
  const base = dirname(path)
  for (const [list, field, into] of [
    ['clusters', 'cluster', merged.clusters],
    ['users', 'user', merged.users],
    ['contexts', 'context', merged.contexts],
  ] as const) {
    const entries = config[list]
    // `users:` and `users: null` read as text under the failsafe schema: an empty list.
    if (entries === undefined || entries === '' || entries === 'null' || entries === '~') continue
    if (!Array.isArray(entries)) throw new Error(`${path}: ${list} is not a list`)
    entries.forEach((entry: unknown, i) => {
      const e = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>
      const name = str(e.name)
      if (name === undefined || name === '') throw new Error(`${path}: ${list}[${String(i)}] has no name`)
      const value = e[field]
      const body = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
      if (!into.has(name)) into.set(name, { name, value: body, base })
    })
  }
}

/** `<field>-data` (base64) or `<field>` (a file, relative to the kubeconfig that named it). */
async function material(
  entry: Named<Record<string, unknown>>,
  field: string,
  as: 'ca' | 'cert' | 'key',
  where: string,
): Promise<Partial<TlsMaterial>> {
  const data = str(entry.value[`${field}-data`])
  if (data !== undefined && data !== '') return { [as]: Buffer.from(data, 'base64') }
  const file = str(entry.value[field])
  if (file === undefined || file === '') return {}
  try {
    return { [as]: await readFile(resolveFrom(entry.base, file)) }
  } catch (err) {
    throw new Error(`${where}: ${field} of "${entry.name}" (${file}) cannot be read: ${fsReason(err)}`, {
      cause: err,
    })
  }
}

/** A user with a credential plugin: client-node runs it (and caches what it returns), loaded only now. */
async function viaClientNode(
  merged: Merged,
  paths: readonly string[],
  context: string,
  where: string,
): Promise<KubeAccess> {
  const { KubeConfig } = await import('@kubernetes/client-node')
  const kc = new KubeConfig()
  if (paths.length === 1) {
    kc.loadFromFile(paths[0] ?? '')
  } else {
    // Several files: hand client-node the one context, cluster and user they resolved to, as one document.
    const pick = (m: Map<string, Named<Record<string, unknown>>>, field: string, name: string) => {
      const e = m.get(name)
      return e === undefined ? [] : [{ name, [field]: forClientNode(e) }]
    }
    const ctx = merged.contexts.get(context)?.value ?? {}
    kc.loadFromString(
      stringify({
        'current-context': context,
        contexts: pick(merged.contexts, 'context', context),
        clusters: pick(merged.clusters, 'cluster', str(ctx.cluster) ?? ''),
        users: pick(merged.users, 'user', str(ctx.user) ?? ''),
      }),
    )
  }
  kc.setCurrentContext(context)
  return accessFromKubeConfig(kc, where)
}

/**
 * An entry as client-node reads it from a document that has no folder of its own: file paths made absolute
 * (relative to the kubeconfig that named them), and the one boolean back from text.
 */
function forClientNode(entry: Named<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...entry.value }
  for (const field of ['certificate-authority', 'client-certificate', 'client-key', 'tokenFile']) {
    const path = str(out[field])
    if (path !== undefined && path !== '') out[field] = resolveFrom(entry.base, path)
  }
  if (out['insecure-skip-tls-verify'] !== undefined)
    out['insecure-skip-tls-verify'] = out['insecure-skip-tls-verify'] === 'true'
  return out
}

/**
 * A KubeAccess over a client-node KubeConfig, which supplies the TLS material and computes the headers
 * (running credential plugins as they expire). Client certificates are read once: the connection pool is
 * built with them.
 */
export async function accessFromKubeConfig(kc: KubeConfig, source = 'kubeconfig'): Promise<KubeAccess> {
  const cluster = kc.getCurrentCluster()
  if (cluster === null) throw new Error(`${source}: the kubeconfig has no current cluster`)
  const apply = async () => {
    const opts: Record<string, unknown> = {}
    try {
      await kc.applyToHTTPSOptions(opts)
    } catch (err) {
      // A plugin's own words (its stderr, what it printed) may hold a credential: only its error code.
      const code = (err as { code?: unknown }).code
      // eslint-disable-next-line preserve-caught-error
      throw new Error(
        `${source}: the credentials of the current user could not be obtained${typeof code === 'string' ? ` (${code})` : ''}`,
      )
    }
    return opts
  }
  const opts = await apply()
  const tls: TlsMaterial = {}
  for (const k of ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername'] as const) {
    if (opts[k] !== undefined) (tls as Record<string, unknown>)[k] = opts[k]
  }
  if (opts.rejectUnauthorized === false) tls.rejectUnauthorized = false
  const headersOf = (o: Record<string, unknown>): OutgoingHttpHeaders => {
    const headers = { ...((o.headers as OutgoingHttpHeaders | undefined) ?? {}) }
    if (typeof o.auth === 'string') headers.authorization = `Basic ${Buffer.from(o.auth).toString('base64')}`
    return headers
  }
  return {
    server: new URL(cluster.server),
    namespace: kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default',
    tls,
    headers: async () => headersOf(await apply()),
    source,
  }
}

// ---- helpers -----------------------------------------------------------------------------------------

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function resolveFrom(base: string, path: string): string {
  return isAbsolute(path) ? path : join(base, path)
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new Error(`${what} (${path}) cannot be read: ${fsReason(err)}`, { cause: err })
  }
}

function fsReason(err: unknown): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err)
}
