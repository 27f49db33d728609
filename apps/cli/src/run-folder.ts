import { acquireRunFolder, type RunFolder, RunFolderError, type RunFolderOptions } from '@piflow/trainer';
import { UsageError } from './errors';

/** Takes a command's output folder (see `acquireRunFolder`); a refusal is a usage error with its reason. */
export async function takeRunFolder(dir: string, options: RunFolderOptions): Promise<RunFolder> {
  try {
    return await acquireRunFolder(dir, options);
  } catch (error) {
    if (error instanceof RunFolderError) throw new UsageError(error.message);
    throw error;
  }
}
