/** `arkonis.dev`: the ark-operator dialect (seed 003). */
export const ARKONIS_GROUP = 'arkonis.dev'

/** ArkAgent `limits` defaults, as seed 003's table gives them. */
export const DEFAULT_LIMITS = { maxTokensPerCall: 8000, maxConcurrentTasks: 5, timeoutSeconds: 120 } as const
