import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { type PackedPackage, packAll, temporaryDirectory } from './pack';
import { readManifest, type WorkspacePackage, workspaceRoot } from './workspace';

const execFileAsync = promisify(execFile);

/**
 * The packs-and-installs tests need the npm registry (CI has it); `PIFLOW_SKIP_PACK_INSTALL=1` skips them
 * offline.
 */
export const skipPackInstall = process.env.PIFLOW_SKIP_PACK_INSTALL === '1';

/** The tfjs version the workspace develops and tests against (core's devDependency). */
export const tfjsVersion: string = readManifest(path.join(workspaceRoot, 'packages/core')).devDependencies![
  '@tensorflow/tfjs-core'
]!;

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a command (no shell). A failure rejects with an Error whose message holds the command, its exit code
 * and the tails of its stdout and stderr, so a test report shows why.
 */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: { cwd: string; timeout?: number; env?: NodeJS.ProcessEnv },
): Promise<CommandResult> {
  try {
    return await execFileAsync(command, [...args], {
      cwd: options.cwd,
      timeout: options.timeout ?? 120_000,
      // Plain output (no colour codes), whatever the calling test runner set.
      env: { ...(options.env ?? process.env), FORCE_COLOR: '0', NO_COLOR: '1' },
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as Error & { stdout?: string; stderr?: string; code?: unknown; signal?: unknown };
    const tail = (text = '') => text.trim().split('\n').slice(-40).join('\n');
    throw new Error(
      `\`${command} ${args.join(' ')}\` in ${options.cwd} failed (${e.signal ?? `exit ${e.code}`}):\n` +
        `${tail(e.stderr)}\n${tail(e.stdout)}`.trim(),
    );
  }
}

/** `npm install` in `dir`, without audit, funding notes or install scripts (none of ours needs one). */
export async function npmInstall(dir: string, timeout = 300_000): Promise<void> {
  await runCommand(
    'npm',
    ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', '--prefer-offline'],
    { cwd: dir, timeout },
  );
}

/** `file:` dependencies on packed tarballs, relative to the project folder `from`. */
export function tarballDependencies(packed: readonly PackedPackage[], from: string): Record<string, string> {
  return Object.fromEntries(
    packed.map(({ pkg, tarball }) => [pkg.name, `file:${path.relative(from, tarball) || '.'}`]),
  );
}

export interface InstalledProject {
  /** The project folder, under the OS temp dir (outside the workspace). */
  dir: string;
  /** The tarballs, in `dir/tarballs/`. */
  packed: PackedPackage[];
  /** Runs a command in the project folder. */
  run(
    command: string,
    args: readonly string[],
    options?: { timeout?: number; env?: NodeJS.ProcessEnv },
  ): Promise<CommandResult>;
  /** Deletes the folder. */
  remove(): void;
}

export interface InstalledProjectOptions {
  /** Names the temp folder: piflow-<prefix>-XXXXXX. */
  prefix: string;
  /** Workspace packages to pack and install from their tarballs. */
  packages: readonly WorkspacePackage[];
  /** Further dependencies from the npm registry (name → range). */
  dependencies?: Record<string, string>;
  /** Files to write into the project before installing (relative path → text). */
  files?: Record<string, string>;
}

/**
 * A user's project, as users get our packages: every package in `packages` is packed with `pnpm pack`
 * (workspace ranges rewritten, `publishConfig` applied), and the tarballs plus `dependencies` from the npm
 * registry are installed with one `npm install` into a fresh ESM project under the OS temp dir, where no
 * workspace link or hoisted devDependency can help.
 */
export async function createInstalledProject(options: InstalledProjectOptions): Promise<InstalledProject> {
  const dir = temporaryDirectory(options.prefix);
  if (dir.startsWith(workspaceRoot)) throw new Error(`${dir} is inside the workspace`);
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const tarballs = path.join(dir, 'tarballs');
    mkdirSync(tarballs);
    const packed = await packAll(options.packages, tarballs);
    const manifest = {
      name: `piflow-${options.prefix}-project`,
      private: true,
      type: 'module',
      dependencies: { ...options.dependencies, ...tarballDependencies(packed, dir) },
    };
    writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    for (const [file, text] of Object.entries(options.files ?? {})) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    await npmInstall(dir);
    return {
      dir,
      packed,
      run: (command, args, runOptions = {}) => runCommand(command, args, { cwd: dir, ...runOptions }),
      remove,
    };
  } catch (error) {
    remove();
    throw error;
  }
}
