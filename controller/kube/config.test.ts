/**
 * Reading where the API server is and who we are, as kubectl does, against a real kube-apiserver
 * (../shared/kube): a token, a token file that rotates, client certificates from files and from -data, the
 * pod's service account, KUBECONFIG's merged list, a credential plugin (through client-node), and errors
 * that say which file and field is wrong without repeating a secret. The controller's own imports never
 * reach client-node.
 */
import { execFile } from 'node:child_process'
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import type { KubeServer } from '../../test/kube.ts'
import { startKube } from '../../test/kube.ts'
import { KubeClient } from './client.ts'
import { loadKubeAccess } from './config.ts'

const run = promisify(execFile)
let kube: KubeServer
let dir: string

beforeAll(async () => {
  kube = await startKube()
  dir = mkdtempSync(join(tmpdir(), 'ark-kubeconfig-'))
}, 120_000)

afterAll(async () => {
  await kube.stop()
  await rm(dir, { recursive: true, force: true })
})

let files = 0
/** Writes a kubeconfig (cluster `c`, user `u`, context `x`) and returns its path. */
function kubeconfig(
  user: Record<string, unknown> | undefined,
  cluster: Record<string, unknown> = { server: kube.server, 'certificate-authority': 'ca.crt' },
  extra: Record<string, unknown> = {},
  folder = dir,
): string {
  files += 1
  copyFileSync(join(kube.dir, 'pki', 'ca.crt'), join(folder, 'ca.crt'))
  const path = join(folder, `config-${String(files)}`)
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster }],
      users: user === undefined ? [] : [{ name: 'u', user }],
      contexts: [{ name: 'x', context: { cluster: 'c', ...(user === undefined ? {} : { user: 'u' }) } }],
      'current-context': 'x',
      ...extra,
    }),
  )
  return path
}

/** Who the server says we are: a request that needs authentication and authorization. */
async function namespaces(client: KubeClient): Promise<string[]> {
  try {
    const list = await client.request<{ items: { metadata: { name: string } }[] }>(
      'GET',
      '/api/v1/namespaces',
    )
    return list.items.map((n) => n.metadata.name)
  } finally {
    client.close()
  }
}

describe('a kubeconfig file', () => {
  it('with a token: the current context, its cluster (CA file relative to the kubeconfig) and user', async () => {
    const client = await KubeClient.connect({ path: kubeconfig({ token: kube.token }) })
    expect(client.server.origin).toBe(new URL(kube.server).origin)
    expect(client.namespace).toBe('default')
    expect(await namespaces(client)).toContain('kube-system')
  })

  it('with client certificates, from files (relative paths) and from -data', async () => {
    const pki = join(kube.dir, 'pki')
    copyFileSync(join(pki, 'admin.crt'), join(dir, 'admin.crt'))
    copyFileSync(join(pki, 'admin.key'), join(dir, 'admin.key'))
    const fromFiles = kubeconfig({ 'client-certificate': 'admin.crt', 'client-key': 'admin.key' })
    expect(await namespaces(await KubeClient.connect({ path: fromFiles }))).toContain('default')

    const { readFileSync } = await import('node:fs')
    const b64 = (f: string) => readFileSync(join(pki, f)).toString('base64')
    const inline = kubeconfig(
      { 'client-certificate-data': b64('admin.crt'), 'client-key-data': b64('admin.key') },
      { server: kube.server, 'certificate-authority-data': b64('ca.crt') },
    )
    expect(await namespaces(await KubeClient.connect({ path: inline }))).toContain('default')
  })

  it('without credentials the server answers as to anyone: 401 or 403, as a KubeError', async () => {
    const client = await KubeClient.connect({ path: kubeconfig(undefined) })
    await expect(namespaces(client)).rejects.toMatchObject({ name: 'KubeError' })
  })

  it('with a tokenFile, read again on each refresh (a rotated token is used)', async () => {
    const tokenFile = join(dir, 'token')
    writeFileSync(tokenFile, 'old-token\n')
    const access = await loadKubeAccess({ path: kubeconfig({ tokenFile: 'token' }) })
    expect(await access.headers()).toEqual({ authorization: 'Bearer old-token' })
    writeFileSync(tokenFile, `${kube.token}\n`)
    expect(await access.headers()).toEqual({ authorization: `Bearer ${kube.token}` })
    expect(await namespaces(new KubeClient(access))).toContain('default')
  })

  it("insecure-skip-tls-verify, tls-server-name and the context's namespace are honoured", async () => {
    const access = await loadKubeAccess({
      path: kubeconfig(
        { token: kube.token },
        { server: kube.server, 'insecure-skip-tls-verify': true, 'tls-server-name': 'kubernetes' },
        {
          contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', namespace: 'team-a' } }],
        },
      ),
    })
    expect(access.tls).toMatchObject({ rejectUnauthorized: false, servername: 'kubernetes' })
    expect(access.namespace).toBe('team-a')
    expect(await namespaces(new KubeClient(access))).toContain('default')
  })
})

describe('values as kubectl reads them', () => {
  it('numbers are text, a tokenFile wins over a token, and the parser prints nothing of the file', async () => {
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`)
    process.on('warning', onWarning)
    try {
      const basic = await loadKubeAccess({
        path: kubeconfig({ username: 'admin', password: 123456 }, undefined, {
          contexts: [{ name: 'x', context: { cluster: 'c', user: 'u', namespace: 2024 } }],
        }),
      })
      expect(await basic.headers()).toEqual({
        authorization: `Basic ${Buffer.from('admin:123456').toString('base64')}`,
      })
      expect(basic.namespace).toBe('2024')

      writeFileSync(join(dir, 'token-wins'), kube.token)
      const both = await loadKubeAccess({ path: kubeconfig({ token: 'not-this', tokenFile: 'token-wins' }) })
      expect(await both.headers()).toEqual({ authorization: `Bearer ${kube.token}` })

      const tagged = join(dir, 'tagged')
      writeFileSync(
        tagged,
        `current-context: x\nclusters: [{name: c, cluster: {server: "${kube.server}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: !secret canary-5e1f-token}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n`,
      )
      const access = await loadKubeAccess({ path: tagged })
      expect(access.tls.rejectUnauthorized).toBe(false)
      await new Promise((r) => setImmediate(r))
      // Nothing on stderr at all: with prettyErrors the parser's warnings quote the line, token and all.
      expect(warnings.filter((w) => w.startsWith('YAMLWarning'))).toEqual([])
    } finally {
      process.off('warning', onWarning)
    }
  })
})

describe('KUBECONFIG', () => {
  it('merges its files: the first current-context and the first definition of a name win; missing files are skipped', async () => {
    const first = join(dir, 'first')
    const second = join(dir, 'second')
    writeFileSync(
      first,
      stringify({ 'current-context': 'x', users: [{ name: 'u', user: { token: kube.token } }] }),
    )
    writeFileSync(
      second,
      stringify({
        'current-context': 'other',
        clusters: [{ name: 'c', cluster: { server: kube.server, 'certificate-authority': 'ca.crt' } }],
        users: [{ name: 'u', user: { token: 'not-this-one' } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      }),
    )
    copyFileSync(join(kube.dir, 'pki', 'ca.crt'), join(dir, 'ca.crt'))
    const env = { KUBECONFIG: [join(dir, 'absent'), first, second].join(delimiter) }
    const access = await loadKubeAccess({ env })
    expect(await access.headers()).toEqual({ authorization: `Bearer ${kube.token}` })
    expect(await namespaces(new KubeClient(access))).toContain('default')
    await expect(loadKubeAccess({ env: { KUBECONFIG: join(dir, 'absent') } })).rejects.toThrow(
      /KUBECONFIG names no file that exists/,
    )
  })

  it('falls back to ~/.kube/config, then to the service account, then says what to do', async () => {
    const home = mkdtempSync(join(dir, 'home-'))
    await expect(loadKubeAccess({ env: {}, home })).rejects.toThrow(/no Kubernetes cluster to talk to/)
    const { mkdirSync } = await import('node:fs')
    mkdirSync(join(home, '.kube'))
    copyFileSync(kubeconfig({ token: kube.token }), join(home, '.kube', 'config'))
    copyFileSync(join(kube.dir, 'pki', 'ca.crt'), join(home, '.kube', 'ca.crt'))
    expect((await loadKubeAccess({ env: {}, home })).source).toBe(join(home, '.kube', 'config'))
  })
})

describe('in a pod', () => {
  it("uses the service account's token, CA and namespace, and reads the token again as it rotates", async () => {
    const sa = mkdtempSync(join(dir, 'sa-'))
    copyFileSync(join(kube.dir, 'pki', 'ca.crt'), join(sa, 'ca.crt'))
    writeFileSync(join(sa, 'token'), kube.token)
    writeFileSync(join(sa, 'namespace'), 'ark-system')
    const url = new URL(kube.server)
    const env = { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }
    const access = await loadKubeAccess({ env, home: sa, serviceAccountDir: sa })
    expect(access.source).toBe('in-cluster')
    expect(access.namespace).toBe('ark-system')
    expect(await namespaces(new KubeClient(access))).toContain('default')
    writeFileSync(join(sa, 'token'), 'rotated')
    expect(await access.headers()).toEqual({ authorization: 'Bearer rotated' })
  })
})

describe('a credential plugin', () => {
  it('an exec user is run through client-node and its token used', async () => {
    const plugin = join(dir, 'plugin.mjs')
    writeFileSync(
      plugin,
      `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: ${JSON.stringify(kube.token)} } }))\n`,
    )
    const path = kubeconfig({
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: process.execPath,
        args: [plugin],
        interactiveMode: 'Never',
      },
    })
    expect(await namespaces(await KubeClient.connect({ path }))).toContain('default')
  })
})

describe('what is wrong, and where', () => {
  const secret = 'canary-7f3a9c1e-token'
  const cases: [string, () => string, RegExp][] = [
    [
      'no current-context',
      () => kubeconfig({ token: secret }, undefined, { 'current-context': '' }),
      /no current-context/,
    ],
    [
      'a context naming an undefined cluster',
      () =>
        kubeconfig({ token: secret }, undefined, {
          contexts: [{ name: 'x', context: { cluster: 'nope', user: 'u' } }],
        }),
      /names cluster "nope", which is not defined/,
    ],
    ['a cluster without a server', () => kubeconfig({ token: secret }, {}), /cluster "c" has no server/],
    [
      'a client key file that is missing',
      () => kubeconfig({ token: secret, 'client-certificate': 'admin.crt', 'client-key': 'missing.key' }),
      /client-key of "u" \(missing\.key\) cannot be read: ENOENT/,
    ],
    [
      'a proxy-url',
      () => kubeconfig({ token: secret }, { server: kube.server, 'proxy-url': 'http://p:3128' }),
      /proxy-url/,
    ],
  ]
  for (const [what, write, message] of cases) {
    it(`${what}: the file and the field, never the token`, async () => {
      const path = write()
      const err = await loadKubeAccess({ path }).then(
        () => undefined,
        (e: unknown) => e as Error,
      )
      expect(err?.message).toMatch(message)
      expect(err?.message).toContain(path)
      expect(err?.message).not.toContain(secret)
    })
  }

  it('a file that is not YAML, and a file that does not exist', async () => {
    const bad = join(dir, 'bad')
    writeFileSync(bad, 'clusters: [unclosed\n')
    await expect(loadKubeAccess({ path: bad })).rejects.toThrow(new RegExp(`${bad}: not YAML`))
    await expect(loadKubeAccess({ path: join(dir, 'none') })).rejects.toThrow(/cannot be read: ENOENT/)
  })
})

describe('memory', () => {
  it('ark controller, the cluster catalog of ark gateway/worker/get and the kubeconfig loader never import @kubernetes/client-node', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url))
    const probe = `
      import { registerHooks } from 'node:module'
      const seen = []
      registerHooks({ resolve(specifier, context, next) {
        const r = next(specifier, context)
        if (r.url.includes('@kubernetes/client-node')) seen.push(r.url)
        return r
      } })
      for (const f of ['bin/controller.ts', 'bin/cluster.ts', 'controller/index.ts', 'gateway/index.ts'])
        await import(${JSON.stringify(root)} + f)
      const { KubeClient } = await import(${JSON.stringify(join(root, 'controller/kube/client.ts'))})
      const client = await KubeClient.connect({ path: process.argv[1] })
      client.close()
      process.stdout.write(JSON.stringify(seen))
    `
    const { stdout } = await run(
      process.execPath,
      [
        '--input-type=module',
        '--disable-warning=ExperimentalWarning',
        '-e',
        probe,
        kubeconfig({ token: kube.token }),
      ],
      { timeout: 30_000 },
    )
    expect(JSON.parse(stdout)).toEqual([])
  })
})
