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
    return `piflow: ${(error as Error).message}\n  fix: check the path; model folders hold model.json and model.safetensors (or weights.bin).`;
  }
  if (code === 'EADDRINUSE') return `piflow: ${(error as Error).message}\n  fix: choose another --port.`;
  const message = error instanceof Error ? error.message : String(error);
  if (/OffscreenCanvas is not defined/.test(message)) {
    // tfjs's WebGPU backend reads GPU memory synchronously through an OffscreenCanvas, which Node lacks.
    return `piflow: ${message}: a synchronous read of GPU memory, which tfjs's WebGPU backend cannot do in Node; part of this command does not run on --backend webgpu yet.\n  fix: run it with --backend wasm (or cpu).`;
  }
  return `piflow: ${message}\n  (run again with --verbose for details)`;
}
