/**
 * A LeaderElector in its own process, for leader.test.ts: the test SIGKILLs it (a leader that dies without
 * releasing) or SIGTERMs it (stop(), then the process must exit on its own: nothing may keep it alive).
 * Configuration comes as JSON in LEADER_CHILD; events go to stdout as JSON lines.
 */
import { KubeConfig } from '@kubernetes/client-node'
import { KubeClient } from './client.ts'
import { LeaderElector } from './leader.ts'

interface ChildConfig {
  readonly kubeconfig: string
  readonly namespace: string
  readonly name: string
  readonly identity: string
  readonly leaseDurationSeconds: number
  readonly renewDeadlineSeconds: number
  readonly retryPeriodSeconds: number
}

const config = JSON.parse(process.env.LEADER_CHILD ?? '{}') as ChildConfig
const emit = (event: string): void => {
  process.stdout.write(`${JSON.stringify({ event })}\n`)
}

const kubeConfig = new KubeConfig()
kubeConfig.loadFromFile(config.kubeconfig)
const client = await KubeClient.fromKubeConfig(kubeConfig)
const elector = new LeaderElector({
  client,
  namespace: config.namespace,
  name: config.name,
  identity: config.identity,
  leaseDurationSeconds: config.leaseDurationSeconds,
  renewDeadlineSeconds: config.renewDeadlineSeconds,
  retryPeriodSeconds: config.retryPeriodSeconds,
  onStartedLeading: () => emit('leading'),
  onStoppedLeading: () => emit('stopped-leading'),
})
process.once('SIGTERM', () => {
  void elector.stop().then(() => emit('stopped'))
})
elector.start()
emit('started')
