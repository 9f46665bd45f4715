/** Resolves at the first SIGINT or SIGTERM from now on: the moment a command starts shutting down. */
export function untilStopped(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
}
