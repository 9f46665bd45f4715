/**
 * Seed 000 (../shared/seeds/000_*.txt) as the controller tests and bench use it: its support agent on the
 * mock model, and the Events `kubectl describe query test-password-reset` lists, in order.
 */

/** A Model `default` on the mock provider and seed 000's `support-agent` on it. */
export const SUPPORT_AGENT_ON_MOCK = `apiVersion: ark.mckinsey.com/v1alpha1
kind: Model
metadata: { name: default }
spec: { provider: mock, model: { value: mock } }
---
apiVersion: ark.mckinsey.com/v1alpha1
kind: Agent
metadata: { name: support-agent }
spec:
  description: Customer support agent
  prompt: You are a helpful customer support agent. Answer the user's question clearly and briefly.
  modelRef: { name: default }
`

/** The Events of one Query that ran an agent on a model once, in the order the seed shows them. */
export const SEED_000_EVENTS = [
  'QueryExecutionStart',
  'TargetExecutionStart',
  'AgentExecutionStart',
  'LLMCallStart',
  'LLMCallComplete',
  'AgentExecutionComplete',
  'TargetExecutionComplete',
  'QueryExecutionComplete',
] as const
