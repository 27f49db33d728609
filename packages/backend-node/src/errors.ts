import { PiflowError } from '@piflow/core';

/** Why one backend was not chosen, and what to install to make it available. */
export interface SkippedBackend {
  /** Candidate name, e.g. 'tfjs-node-gpu'. */
  name: string;
  /** Why it was not used: its initialisation error, or that a higher-priority backend was chosen first. */
  reason: string;
  /** What a user installs (or sets up) to make this backend available. */
  installHint: string;
}

/** Thrown by `resolveBackend` when no candidate backend could be initialised; lists every one with its reason. */
export class NoBackendAvailableError extends PiflowError {
  override name = 'NoBackendAvailableError';
  constructor(readonly failures: readonly SkippedBackend[]) {
    super(
      [
        'No tfjs backend could be initialised. Tried, in order:',
        ...failures.map((f) => `  - ${f.name}: ${f.reason}\n    to use it: ${f.installHint}`),
      ].join('\n'),
    );
  }
}
