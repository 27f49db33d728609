/** Base class of every error piflow throws on purpose. */
export class PiflowError extends Error {
  override name = 'PiflowError';
}

/**
 * Thrown at a public API boundary when an argument is not what the function takes. The message names the
 * argument, what was expected and what was received, e.g.
 * "Invalid argument `sigmaSrc`: expected a number in (0, 1], received 1.5."
 */
export class InvalidArgumentError extends PiflowError {
  override name = 'InvalidArgumentError';
  constructor(
    readonly argument: string,
    readonly expected: string,
    readonly received: string,
  ) {
    super(`Invalid argument \`${argument}\`: expected ${expected}, received ${received}.`);
  }
}

/**
 * Thrown by a teacher's `velocitySync` when this call can only be answered asynchronously (e.g. a tfjs graph
 * model with control flow, which tfjs runs only through `executeAsync`). Callers then use `velocity`.
 */
export class SyncUnavailableError extends PiflowError {
  override name = 'SyncUnavailableError';
}
