/**
 * A kubelet for tests, since none runs here: it takes the Pods that the real kube-controller-manager's
 * Deployment and ReplicaSet controllers create (startKube({ controllers: [...] })), binds them to a node of its
 * own, runs each container as a local process and reports back as a kubelet does, so that Deployments roll,
 * scale and count ready replicas by Kubernetes' own rules.
 *
 * What it does as a kubelet would:
 * - the container's command and args, with the image's ENTRYPOINT when the container has no command. The only
 *   image is ark's: its ENTRYPOINT is read from deploy/Dockerfile, and its two paths are mapped to this
 *   checkout (`/usr/local/bin/node` to this Node, `/app/dist/bin/ark.js` to bin/ark.ts, the same CLI);
 * - the environment: `value`, `valueFrom` (secretKeyRef, configMapKeyRef, fieldRef), `envFrom`, read from the API
 *   server; a missing non-optional Secret keeps the container from starting, as CreateContainerConfigError does;
 * - the ServiceAccount's token: a bound token from the TokenRequest API, handed to the process as a kubeconfig
 *   (KUBECONFIG) since it cannot be mounted at /var/run/secrets;
 * - status: phase Running, the Ready condition from the readiness probe (an HTTP GET at each sync, every
 *   500 ms; one failure is enough, its failureThreshold is not read), restarts;
 * - deletion: SIGTERM, up to terminationGracePeriodSeconds, SIGKILL, then the final delete (grace 0).
 *
 * Where it differs: every pod shares the loopback interface, so each gets a free port of its own through
 * HOST and PORT (which ark reads; a container's args must not pin them), and probes go to that port.
 * Liveness probes, resources and security contexts are not enforced.
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import * as k8s from '@kubernetes/client-node'
import type { ArkProcess } from './ark-process.ts'
import { startArk } from './ark-process.ts'
import { freePort } from './fakes/http.ts'
import type { KubeServer } from './kube.ts'
import { serviceAccountKubeconfig } from './kube.ts'

const root = resolve(import.meta.dirname, '..')
const NODE = 'ark-test-node'

/** One pod this kubelet runs. */
export interface RunningPod {
  readonly namespace: string
  readonly name: string
  readonly uid: string
  /** The pod's labels and annotations when it started. */
  readonly labels: Readonly<Record<string, string>>
  readonly annotations: Readonly<Record<string, string>>
  /** The environment it was started with. */
  readonly env: Readonly<Record<string, string>>
  readonly args: readonly string[]
  /** Its container's name. */
  readonly container: string
  readonly port: number
  readonly process: ArkProcess
  ready: boolean
  restarts: number
  /** The process ended (on its own, or stopped). */
  exited: boolean
}

export interface Kubelet {
  /** Pods running now. */
  pods(namespace?: string): RunningPod[]
  /** Pods that ran and were stopped (deleted), with how their process exited. */
  readonly stopped: {
    readonly pod: RunningPod
    readonly exit: { code: number | null; signal: string | null }
  }[]
  stop(): Promise<void>
}

/** The image's ENTRYPOINT, from deploy/Dockerfile, mapped to this checkout. */
export function entrypoint(): { command: string; entry: string } {
  const dockerfile = readFileSync(join(root, 'deploy/Dockerfile'), 'utf8')
  const lines = dockerfile.split('\n').filter((l) => /^ENTRYPOINT\s+\[/.test(l))
  const last = lines.at(-1)
  if (last === undefined) throw new Error('deploy/Dockerfile has no exec-form ENTRYPOINT')
  const argv = JSON.parse(last.replace(/^ENTRYPOINT\s+/, '')) as string[]
  const [node, script] = argv
  if (node !== '/usr/local/bin/node' || script !== '/app/dist/bin/ark.js' || argv.length !== 2)
    throw new Error(`the kubelet harness knows ark's image only; ENTRYPOINT is ${JSON.stringify(argv)}`)
  return { command: process.execPath, entry: join(root, 'bin/ark.ts') }
}

export function startKubelet(
  kube: KubeServer,
  options: { namespaces?: () => readonly string[] } = {},
): Kubelet {
  const kc = kube.config()
  const core = kc.makeApiClient(k8s.CoreV1Api)
  const { entry } = entrypoint()
  const running = new Map<string, RunningPod>()
  /** Containers being started, by pod; stop() waits for them (and stops what they started). */
  const starting = new Map<string, Promise<void>>()
  const stopping = new Map<string, Promise<void>>()
  const stopped: Kubelet['stopped'] = []
  let closed = false

  const patchStatus = async (
    pod: RunningPod | { namespace: string; name: string },
    status: Record<string, unknown>,
  ) => {
    await core
      .patchNamespacedPodStatus(
        { namespace: pod.namespace, name: pod.name, body: { status } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      )
      .catch(() => undefined)
  }
  const reportRunning = (p: RunningPod) => {
    const now = new Date().toISOString()
    const ready = p.ready ? 'True' : 'False'
    return patchStatus(p, {
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      startTime: now,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: ready, lastTransitionTime: now },
        { type: 'Ready', status: ready, lastTransitionTime: now },
      ],
      containerStatuses: [
        {
          name: p.container,
          ready: p.ready,
          restartCount: p.restarts,
          started: true,
          image: 'ark',
          imageID: '',
          state: { running: { startedAt: now } },
        },
      ],
    })
  }

  const environment = async (pod: k8s.V1Pod, container: k8s.V1Container): Promise<Record<string, string>> => {
    const namespace = pod.metadata?.namespace ?? ''
    const env: Record<string, string> = {}
    const secret = async (name: string, optional: boolean) => {
      try {
        const s = await core.readNamespacedSecret({ namespace, name })
        return Object.fromEntries(
          Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
        )
      } catch (err) {
        if (optional) return {}
        throw new Error(`secret "${name}" not found`, { cause: err })
      }
    }
    const configMap = async (name: string, optional: boolean) => {
      try {
        return (await core.readNamespacedConfigMap({ namespace, name })).data ?? {}
      } catch (err) {
        if (optional) return {}
        throw new Error(`configmap "${name}" not found`, { cause: err })
      }
    }
    for (const from of container.envFrom ?? []) {
      if (from.secretRef !== undefined)
        Object.assign(env, await secret(from.secretRef.name ?? '', from.secretRef.optional === true))
      if (from.configMapRef !== undefined)
        Object.assign(env, await configMap(from.configMapRef.name ?? '', from.configMapRef.optional === true))
    }
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value
      const v = e.valueFrom
      if (v?.secretKeyRef !== undefined) {
        const value = (await secret(v.secretKeyRef.name ?? '', v.secretKeyRef.optional === true))[
          v.secretKeyRef.key
        ]
        if (value === undefined && v.secretKeyRef.optional !== true)
          throw new Error(`key ${v.secretKeyRef.key} not in secret ${v.secretKeyRef.name ?? ''}`)
        if (value !== undefined) env[e.name] = value
      }
      if (v?.configMapKeyRef !== undefined) {
        const value = (await configMap(v.configMapKeyRef.name ?? '', v.configMapKeyRef.optional === true))[
          v.configMapKeyRef.key
        ]
        if (value === undefined && v.configMapKeyRef.optional !== true)
          throw new Error(`key ${v.configMapKeyRef.key} not in configmap ${v.configMapKeyRef.name ?? ''}`)
        if (value !== undefined) env[e.name] = value
      }
      if (v?.fieldRef !== undefined) {
        const field = v.fieldRef.fieldPath
        env[e.name] =
          field === 'metadata.name'
            ? (pod.metadata?.name ?? '')
            : field === 'metadata.namespace'
              ? namespace
              : field === 'status.podIP'
                ? '127.0.0.1'
                : ''
      }
    }
    return env
  }

  const start = async (pod: k8s.V1Pod, restarts = 0): Promise<void> => {
    const namespace = pod.metadata?.namespace ?? ''
    const name = pod.metadata?.name ?? ''
    const container = pod.spec?.containers[0]
    if (container === undefined) return
    if (container.command !== undefined && container.command.length > 0)
      throw new Error(`pod ${namespace}/${name}: the harness runs the image's ENTRYPOINT only`)
    const env = await environment(pod, container)
    const port = await freePort()
    env.KUBECONFIG = await serviceAccountKubeconfig(
      kube,
      namespace,
      pod.spec?.serviceAccountName ?? 'default',
    )
    env.HOST = '127.0.0.1'
    env.PORT = String(port)
    const args = container.args ?? []
    const proc = await startArk(args, { env, entry })
    const p: RunningPod = {
      namespace,
      name,
      uid: pod.metadata?.uid ?? '',
      labels: { ...pod.metadata?.labels },
      annotations: { ...pod.metadata?.annotations },
      env,
      args,
      container: container.name,
      port,
      process: proc,
      ready: false,
      restarts,
      exited: false,
    }
    void proc.exited.then(() => (p.exited = true))
    running.set(`${namespace}/${name}`, p)
    await reportRunning(p)
  }

  const stopPod = (key: string, graceSeconds: number): Promise<void> => {
    const existing = stopping.get(key)
    if (existing !== undefined) return existing
    const p = running.get(key)
    const done = (async () => {
      if (p !== undefined) {
        p.process.signal('SIGTERM')
        const timer = setTimeout(() => p.process.signal('SIGKILL'), graceSeconds * 1000)
        const exit = await p.process.exited
        clearTimeout(timer)
        stopped.push({ pod: p, exit })
        running.delete(key)
      }
      const [namespace = '', name = ''] = key.split('/')
      await core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }).catch(() => undefined)
    })()
    stopping.set(key, done)
    void done.finally(() => stopping.delete(key))
    return done
  }

  const probe = async (p: RunningPod, pod: k8s.V1Pod): Promise<void> => {
    const path = pod.spec?.containers[0]?.readinessProbe?.httpGet?.path
    let ready = true
    if (path !== undefined) {
      ready = await fetch(`http://127.0.0.1:${String(p.port)}${path}`, { signal: AbortSignal.timeout(3000) })
        .then((r) => {
          void r.body?.cancel()
          return r.ok
        })
        .catch(() => false)
    }
    if (ready !== p.ready) {
      p.ready = ready
      await reportRunning(p)
    }
  }

  const sync = async (): Promise<void> => {
    const namespaces = options.namespaces?.()
    const pods = (
      namespaces === undefined
        ? (await core.listPodForAllNamespaces()).items
        : (await Promise.all(namespaces.map((namespace) => core.listNamespacedPod({ namespace })))).flatMap(
            (l) => l.items,
          )
    ).filter((p) => p.metadata?.namespace !== undefined)
    const seen = new Set<string>()
    await Promise.all(
      pods.map(async (pod) => {
        const key = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`
        seen.add(key)
        if (pod.metadata?.deletionTimestamp !== undefined) {
          // Not awaited: one pod draining for its grace period must not hold up every other pod's sync.
          void stopPod(key, pod.spec?.terminationGracePeriodSeconds ?? 30)
          return
        }
        if (pod.spec?.nodeName === undefined || pod.spec.nodeName === '') {
          await core
            .createNamespacedBinding({
              namespace: pod.metadata?.namespace ?? '',
              body: {
                metadata: { name: pod.metadata?.name ?? '' },
                target: { apiVersion: 'v1', kind: 'Node', name: NODE },
              },
            })
            .catch(() => undefined)
          return
        }
        if (pod.spec.nodeName !== NODE) return
        const p = running.get(key)
        if (p !== undefined) {
          if (p.uid !== pod.metadata?.uid) return
          if (p.exited) {
            // restartPolicy Always: the container comes back, counted.
            running.delete(key)
            launch(key, pod, p.restarts + 1)
            return
          }
          await probe(p, pod)
          return
        }
        if (starting.has(key) || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return
        launch(key, pod, 0)
      }),
    )
    // Pods deleted at once (grace 0 by someone else): their processes stop too.
    for (const key of [...running.keys()]) if (!seen.has(key)) void stopPod(key, 5)
  }

  /** Starts a pod's container in the background; one that cannot start yet (its Secret is missing) is tried again at the next sync. */
  const launch = (key: string, pod: k8s.V1Pod, restarts: number): void => {
    const done = start(pod, restarts)
      .catch(() => undefined)
      .finally(() => starting.delete(key))
    starting.set(key, done)
  }

  // One sync at a time: a tick that finds the last one still running is skipped, not queued.
  let loop: Promise<void> = Promise.resolve()
  let syncing = false
  const timer = setInterval(() => {
    if (closed || syncing) return
    syncing = true
    loop = sync()
      .catch(() => undefined)
      .finally(() => (syncing = false))
  }, 500)

  return {
    pods: (namespace) =>
      [...running.values()].filter((p) => namespace === undefined || p.namespace === namespace),
    stopped,
    async stop() {
      closed = true
      clearInterval(timer)
      await loop
      // A container still starting is stopped once it has: nothing outlives the kubelet.
      await Promise.all([...starting.values(), ...stopping.values()])
      await Promise.all([...running.values()].map((p) => p.process.stop()))
      running.clear()
    },
  }
}
