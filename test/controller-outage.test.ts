/**
 * `ark controller` when its API server goes away for a minute: it keeps retrying its list/watch, logs no
 * error, and once the API server is back it reads the cluster again and runs the next Query. A file of its
 * own, with its own kube-apiserver (restarted here), so that its minute runs beside the other controller tests.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ControllerKit } from './controller-kit.ts'
import { controllerKit, query } from './controller-kit.ts'
import type { KubeServer } from './kube.ts'
import { restartApiServer, startKube } from './kube.ts'
import { SUPPORT_AGENT_ON_MOCK } from './seed-000.ts'

let kube: KubeServer
let kit: ControllerKit

beforeAll(async () => {
  kube = await startKube()
  kit = controllerKit(kube)
  await kube.installCrds()
}, 120_000)

afterEach(async () => {
  await kit.stopAll()
})

afterAll(async () => {
  await kube.stop()
})

describe('ark controller and its API server', () => {
  it('survives its API server being away for 60 s, and carries on', async () => {
    const ns = await kube.namespace('away')
    await kit.apply(ns, SUPPORT_AGENT_ON_MOCK)
    const ctl = await kit.controller(ns, ['--leader-elect', 'false'])
    await ctl.waitFor((l) => l.msg === 'leading')
    await restartApiServer(kube, 60_000)
    expect(ctl.lines.some((l) => l.msg === 'list/watch failed; retrying')).toBe(true)
    // Once the controller has read the cluster again, its agent is Available: a Query reconciled before that
    // ends in TargetNotAvailable, which is not what is tested here.
    await vi.waitFor(
      async () =>
        expect(await kube.kubectl(['get', 'agents', 'support-agent', '-n', ns])).toMatch(/\sTrue\s/),
      { timeout: 30_000, interval: 300 },
    )
    await kit.apply(ns, query('after-outage', 'support-agent'))
    await kit.phaseOf(ns, 'after-outage', 'done', 60_000)
    expect(ctl.lines.some((l) => l.level === 'error')).toBe(false)
  }, 180_000)
})
