import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The monorepo root (this file is tooling/release-checks/src/workspace.ts). */
export const workspaceRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface PackageManifest {
  name: string;
  version: string;
  private?: boolean;
  license?: string;
  type?: string;
  sideEffects?: boolean | string[];
  main?: string;
  types?: string;
  files?: string[];
  exports?: Record<string, unknown>;
  publishConfig?: { access?: string; exports?: Record<string, unknown> };
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
  scripts?: Record<string, string>;
}

export interface WorkspacePackage {
  name: string;
  /** Absolute directory. */
  dir: string;
  /** Directory relative to the workspace root, e.g. 'packages/core'. */
  relativeDir: string;
  manifest: PackageManifest;
}

export function readManifest(dir: string): PackageManifest {
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as PackageManifest;
}

function packagesUnder(folder: string): WorkspacePackage[] {
  const root = path.join(workspaceRoot, folder);
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(root, entry.name, 'package.json')))
    .map((entry) => {
      const dir = path.join(root, entry.name);
      const manifest = readManifest(dir);
      return { name: manifest.name, dir, relativeDir: `${folder}/${entry.name}`, manifest };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Every package under packages/* that is not private: what `changeset publish` publishes. */
export function publicPackages(): WorkspacePackage[] {
  return packagesUnder('packages').filter((p) => !p.manifest.private);
}

/** The policy-plugin example: private in this workspace, but laid out to be published as it stands. */
export function pluginTemplate(): WorkspacePackage {
  const dir = path.join(workspaceRoot, 'examples/policy-plugin');
  const manifest = readManifest(dir);
  return { name: manifest.name, dir, relativeDir: 'examples/policy-plugin', manifest };
}

/** Everything the tarball checks cover: the public packages and the plugin template. */
export function publishablePackages(): WorkspacePackage[] {
  return [...publicPackages(), pluginTemplate()];
}

/**
 * Public packages under apps/* that users also import as a library (an `exports` entry, not only a binary):
 * @piflow/teacher-server. Binary-only apps (@piflow/cli) are not libraries.
 */
export function publicAppLibraries(): WorkspacePackage[] {
  return packagesUnder('apps').filter((p) => !p.manifest.private && p.manifest.exports?.['.'] !== undefined);
}

/** Everything users import: the publishable packages and the public app libraries. */
export function importablePackages(): WorkspacePackage[] {
  return [...publishablePackages(), ...publicAppLibraries()];
}

/** Every workspace package (packages, tooling, examples, apps), private ones included. */
export function allWorkspacePackages(): WorkspacePackage[] {
  return ['packages', 'tooling', 'examples', 'apps'].flatMap(packagesUnder);
}
