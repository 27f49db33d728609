import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WorkspacePackage } from './workspace';

const run = promisify(execFile);

export interface PackedPackage {
  pkg: WorkspacePackage;
  /** Absolute path of the .tgz. */
  tarball: string;
}

/** A fresh temporary directory outside the workspace (under the OS temp dir). */
export function temporaryDirectory(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `piflow-${prefix}-`));
}

/**
 * `pnpm pack` of one package into `destination`: pnpm applies `publishConfig` (exports without the source
 * condition) and rewrites `workspace:` ranges to real versions, exactly as `pnpm publish` would.
 */
export async function packPackage(pkg: WorkspacePackage, destination: string): Promise<PackedPackage> {
  if (!existsSync(path.join(pkg.dir, 'dist'))) {
    throw new Error(`${pkg.name} has no dist/: build it first (turbo runs the builds before this test).`);
  }
  const before = new Set(readdirSync(destination));
  await run('pnpm', ['pack', '--pack-destination', destination], {
    cwd: pkg.dir,
    maxBuffer: 16 * 1024 * 1024,
  });
  const created = readdirSync(destination).filter((f) => f.endsWith('.tgz') && !before.has(f));
  if (created.length !== 1) throw new Error(`pnpm pack of ${pkg.name} produced ${created.length} tarballs`);
  return { pkg, tarball: path.join(destination, created[0]!) };
}

/** Packs every package, one after another (pnpm pack is quick; parallel packs contend for 2 cores). */
export async function packAll(
  packages: readonly WorkspacePackage[],
  destination: string,
): Promise<PackedPackage[]> {
  const packed: PackedPackage[] = [];
  for (const pkg of packages) packed.push(await packPackage(pkg, destination));
  return packed;
}

/** The paths inside a tarball, without the leading `package/`. */
export async function tarballFiles(tarball: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', tarball], { maxBuffer: 16 * 1024 * 1024 });
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^package\//, ''));
}

/** One file from a tarball as text. */
export async function tarballText(tarball: string, file: string): Promise<string> {
  const { stdout } = await run('tar', ['-xzOf', tarball, `package/${file}`], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}
