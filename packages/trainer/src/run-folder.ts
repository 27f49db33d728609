import { PiflowError } from '@piflow/core';

/** Thrown when an output folder holds another run, or is locked by a running one. */
export class RunFolderError extends PiflowError {
  override name = 'RunFolderError';
}

/** What a training run writes into its output folder (and what `overwrite` removes). */
export interface RunFolderOptions {
  /** Continue the run in the folder (its files are kept). */
  resume?: boolean;
  /** Start afresh: the previous run's files (`runFiles`) are removed first. */
  overwrite?: boolean;
  /**
   * Names of the entries a run writes (files or folders). A folder holding any of them holds a run; with
   * `overwrite` exactly these are removed, never anything else.
   */
  runFiles: readonly string[];
  /** How the flags are named to the user (default `--resume` / `--overwrite`; `resume: null` when a run cannot resume). */
  flags?: { resume: string | null; overwrite: string };
}

/** A held output folder: `release()` removes the lock (also done when the process exits). */
export interface RunFolder {
  readonly dir: string;
  /** True when the folder held a previous run's files (kept for resume, removed for overwrite). */
  readonly hadRun: boolean;
  release(): Promise<void>;
}

const LOCK = '.piflow-run.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes an output folder for a training run: creates it, refuses a folder that holds another run's files
 * unless `resume` or `overwrite` is given, and holds a lock file (pid, host, start time) that a second process
 * reports clearly. A lock left by a process that no longer runs (killed) is taken over.
 */
export async function acquireRunFolder(dir: string, options: RunFolderOptions): Promise<RunFolder> {
  const fs = await import('node:fs/promises');
  const { rmSync } = await import('node:fs');
  const path = await import('node:path');
  const os = await import('node:os');
  const flags = options.flags ?? { resume: '--resume', overwrite: '--overwrite' };
  if (options.resume && options.overwrite) {
    throw new RunFolderError(`${flags.resume} and ${flags.overwrite} exclude each other: give one.`);
  }
  await fs.mkdir(dir, { recursive: true });
  const lockFile = path.join(dir, LOCK);
  const record = JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString() });
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.writeFile(lockFile, record, { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw lockError(error);
      let holder: { pid?: number; host?: string; started?: string } = {};
      try {
        holder = JSON.parse(await fs.readFile(lockFile, 'utf8'));
      } catch {
        // a lock cut short by a kill: no pid to check, treated as stale
      }
      const sameHost = holder.host === undefined || holder.host === os.hostname();
      if (typeof holder.pid === 'number' && (!sameHost || alive(holder.pid))) {
        throw new RunFolderError(
          `${dir} is in use by another run (pid ${holder.pid}${sameHost ? '' : ` on ${holder.host}`}, started ${holder.started ?? 'at an unknown time'}). Wait for it to finish, stop it, or choose another output folder.`,
        );
      }
      await fs.rm(lockFile, { force: true });
    }
  }
  const release = async () => {
    process.removeListener('exit', releaseSync);
    await fs.rm(lockFile, { force: true });
  };
  const releaseSync = () => {
    try {
      rmSync(lockFile, { force: true });
    } catch {
      // exiting anyway
    }
  };
  try {
    const present = (await fs.readdir(dir)).filter((name) => options.runFiles.includes(name)).sort();
    if (present.length > 0 && !options.resume && !options.overwrite) {
      throw new RunFolderError(
        `${dir} already holds a run (${present.join(', ')}). Give ${flags.resume ? `${flags.resume} to continue it, ` : ''}${flags.overwrite} to replace it, or choose another output folder; nothing was changed.`,
      );
    }
    if (options.overwrite) {
      for (const name of present) await fs.rm(path.join(dir, name), { recursive: true, force: true });
    }
    process.on('exit', releaseSync);
    return { dir, hadRun: present.length > 0, release };
  } catch (error) {
    await fs.rm(lockFile, { force: true });
    throw error;
  }

  function lockError(error: unknown): Error {
    return new RunFolderError(`Cannot lock ${dir}: ${(error as Error).message}`);
  }
}
