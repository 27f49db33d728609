import { InvalidArgumentError, PiflowError } from '@piflow/core';

/** An error the CLI explains in one sentence, with what to do about it. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    readonly fix?: string,
  ) {
    super(message);
  }
}

/** One clear sentence plus the fix (never a stack trace unless verbose). */
export function formatError(error: unknown, verbose: boolean): string {
  if (verbose && error instanceof Error && error.stack) return error.stack;
  if (error instanceof UsageError)
    return `piflow: ${error.message}${error.fix ? `\n  fix: ${error.fix}` : ''}`;
  if (error instanceof InvalidArgumentError) {
    return `piflow: ${error.message}\n  fix: check the option or file that sets \`${error.argument}\` (run with --help for the accepted values).`;
  }
  if (error instanceof PiflowError) return `piflow: ${error.message}`;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') {
    return `piflow: ${(error as Error).message}\n  fix: check the path; model folders hold model.json and weights.bin.`;
  }
  if (code === 'EADDRINUSE') return `piflow: ${(error as Error).message}\n  fix: choose another --port.`;
  const message = error instanceof Error ? error.message : String(error);
  return `piflow: ${message}\n  (run again with --verbose for details)`;
}
