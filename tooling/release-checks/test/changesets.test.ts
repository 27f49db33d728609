import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporaryDirectory } from '../src/pack';
import { satisfiesCaret } from '../src/ranges';
import {
  allWorkspacePackages,
  type PackageManifest,
  pluginTemplate,
  publicPackages,
  readManifest,
  workspaceRoot,
} from '../src/workspace';

/**
 * `changeset version` on a copy of the workspace's manifests and pending changesets (the tree is not touched):
 * every package named in a changeset gets its bump, a CHANGELOG.md with the summary, and the changeset files are
 * consumed. Expected versions are computed here from the changeset files themselves.
 */
const run = promisify(execFile);
const copy = temporaryDirectory('changesets');
afterAll(() => rmSync(copy, { recursive: true, force: true }));

type Bump = 'major' | 'minor' | 'patch';
const order: Bump[] = ['patch', 'minor', 'major'];

interface Changeset {
  file: string;
  releases: Map<string, Bump>;
  summary: string;
}

/** Problems found while reading the changeset files (each one a message). */
const invalid: string[] = [];

function readChangesets(dir: string): Changeset[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.md') && f !== 'README.md')
    .flatMap((file) => {
      const text = readFileSync(path.join(dir, file), 'utf8');
      const match = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
      if (!match) {
        invalid.push(
          `.changeset/${file}: no front matter: it must start with ---, "package": bump lines, --- (was it reformatted as Markdown?)`,
        );
        return [];
      }
      const releases = new Map<string, Bump>();
      for (const line of match[1]!.split('\n').filter((l) => l.trim())) {
        const release = /^\s*["']?([^"':]+)["']?\s*:\s*(major|minor|patch)\s*$/.exec(line);
        if (!release) {
          invalid.push(`.changeset/${file}: cannot read release line ${JSON.stringify(line)}`);
          continue;
        }
        releases.set(release[1]!, release[2] as Bump);
      }
      return [{ file, releases, summary: match[2]!.trim() }];
    });
}

function bumpVersion(version: string, bump: Bump): string {
  const [major, minor, patch] = version.split('.').map(Number) as [number, number, number];
  if (bump === 'major') return `${major + 1}.0.0`;
  if (bump === 'minor') return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}

const changesets = readChangesets(path.join(workspaceRoot, '.changeset'));
const before = new Map(allWorkspacePackages().map((p) => [p.name, p]));
const highest = new Map<string, Bump>();
for (const changeset of changesets) {
  for (const [name, bump] of changeset.releases) {
    const current = highest.get(name);
    if (!current || order.indexOf(bump) > order.indexOf(current)) highest.set(name, bump);
  }
}

beforeAll(async () => {
  for (const file of ['package.json', 'pnpm-workspace.yaml'])
    cpSync(path.join(workspaceRoot, file), path.join(copy, file));
  cpSync(path.join(workspaceRoot, '.changeset'), path.join(copy, '.changeset'), { recursive: true });
  for (const pkg of before.values()) {
    mkdirSync(path.join(copy, pkg.relativeDir), { recursive: true });
    cpSync(path.join(pkg.dir, 'package.json'), path.join(copy, pkg.relativeDir, 'package.json'));
    const changelog = path.join(pkg.dir, 'CHANGELOG.md');
    if (existsSync(changelog)) cpSync(changelog, path.join(copy, pkg.relativeDir, 'CHANGELOG.md'));
  }
  const require = createRequire(path.join(workspaceRoot, 'package.json'));
  const cli = path.join(path.dirname(require.resolve('@changesets/cli/package.json')), 'bin.js');
  await run(process.execPath, [cli, 'version'], { cwd: copy, timeout: 120_000 });
});

describe('changeset version', () => {
  it('can read every changeset file', () => {
    expect(invalid, invalid.join('\n')).toEqual([]);
  });

  it('finds pending changesets that name only workspace packages', () => {
    expect(changesets.length).toBeGreaterThan(0);
    for (const changeset of changesets) {
      for (const name of changeset.releases.keys())
        expect(before.has(name), `${changeset.file}: ${name}`).toBe(true);
    }
  });

  it('config publishes scoped packages publicly and updates internal dependencies', () => {
    const config = JSON.parse(readFileSync(path.join(workspaceRoot, '.changeset/config.json'), 'utf8'));
    expect(config.access).toBe('public');
    expect(config.updateInternalDependencies).toBe('patch');
  });

  it('bumps every package named in a changeset by its highest bump and writes its changelog', () => {
    for (const [name, bump] of highest) {
      const pkg = before.get(name)!;
      const after = readManifest(path.join(copy, pkg.relativeDir));
      expect(after.version, name).toBe(bumpVersion(pkg.manifest.version, bump));
      const changelog = readFileSync(path.join(copy, pkg.relativeDir, 'CHANGELOG.md'), 'utf8');
      expect(changelog).toContain(`## ${after.version}`);
      for (const changeset of changesets.filter((c) => c.releases.has(name))) {
        expect(changelog, `${name} changelog lacks ${changeset.file}`).toContain(
          changeset.summary.split('\n')[0]!,
        );
      }
    }
  });

  it('gives a dependent of a released package a release too, keeping workspace ranges for pnpm to rewrite', () => {
    for (const pkg of publicPackages()) {
      const after = readManifest(path.join(copy, pkg.relativeDir)) as PackageManifest;
      const internal = Object.entries(after.dependencies ?? {}).filter(([name]) => highest.has(name));
      for (const [name, range] of internal) {
        expect(range, `${pkg.name} → ${name}`).toMatch(/^workspace:/);
        expect(after.version, `${pkg.name} depends on released ${name}`).not.toBe(pkg.manifest.version);
      }
    }
  });

  it("keeps the plugin template's real @piflow ranges (not workspace:) satisfied by the released versions", () => {
    const template = pluginTemplate();
    const after = readManifest(path.join(copy, template.relativeDir));
    for (const field of ['dependencies', 'devDependencies'] as const) {
      for (const [name, range] of Object.entries(after[field] ?? {})) {
        if (!name.startsWith('@piflow/')) continue;
        const released = readManifest(path.join(copy, before.get(name)!.relativeDir)).version;
        expect(satisfiesCaret(released, range), `${field}.${name}: ${range} vs ${released}`).toBe(true);
      }
    }
  });

  it('consumes the changeset files', () => {
    const left = readdirSync(path.join(copy, '.changeset')).filter(
      (f) => f.endsWith('.md') && f !== 'README.md',
    );
    expect(left).toEqual([]);
  });
});
