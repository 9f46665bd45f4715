/** `ark.mckinsey.com`: the ARK dialect (seed 000 and 002). */
export const ARK_GROUP = 'ark.mckinsey.com'
export const ARK_CATEGORIES = ['ark'] as const
