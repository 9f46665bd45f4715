export type { Capabilities, Verdict } from './availability.ts'
export { CAPABILITIES, availabilityOf, findTeamCycle, isConsequential } from './availability.ts'
export { AvailabilityController } from './availability-controller.ts'
export { WorkQueue } from './queue.ts'
