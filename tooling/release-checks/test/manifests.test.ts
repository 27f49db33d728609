import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { satisfiesCaret } from '../src/ranges';
import {
  allWorkspacePackages,
  importablePackages,
  pluginTemplate,
  publicPackages,
  publishablePackages,
  readManifest,
  workspaceRoot,
} from '../src/workspace';

const self = readManifest(path.join(workspaceRoot, 'tooling/release-checks'));

describe('workspace discovery', () => {
  it('finds the public packages under packages/*', () => {
    const names = publicPackages().map((p) => p.name);
    for (const name of ['@piflow/core', '@piflow/policy-gm', '@piflow/policy-dx', '@piflow/backend-node']) {
      expect(names).toContain(name);
    }
  });

  it.each(importablePackages().map((p) => [p.name]))(
    '%s is a devDependency of the release checks, so turbo builds it before they run',
    (name) => {
      expect(
        self.devDependencies?.[name],
        `add "${name}": "workspace:*" to tooling/release-checks devDependencies`,
      ).toBe('workspace:*');
    },
  );
});

describe.each(publishablePackages().map((p) => [p.name, p]))('%s is publishable as it stands', (_, pkg) => {
  const m = pkg.manifest;

  it('is ESM with types, an exports map (types first) and its package.json exported', () => {
    expect(m.type).toBe('module');
    expect(m.types ?? '').toMatch(/^\.\/dist\/.*\.d\.ts$/);
    const published = m.publishConfig?.exports ?? m.exports;
    expect(published, 'publishConfig.exports').toBeTypeOf('object');
    expect(Object.keys(published!)).toContain('.');
    expect(Object.keys(published!)).toContain('./package.json');
    for (const [subpath, target] of Object.entries(published!)) {
      if (subpath === './package.json') continue;
      const conditions = Object.keys(target as object);
      expect(conditions[0], `${subpath}: "types" must come first`).toBe('types');
      expect(conditions, `${subpath}: the source condition must not be published`).not.toContain(
        '@piflow/source',
      );
    }
  });

  it('declares sideEffects, public access and the MIT license', () => {
    expect(m.sideEffects === false || Array.isArray(m.sideEffects)).toBe(true);
    expect(m.publishConfig?.access).toBe('public');
    // The LICENSE text itself: pnpm pack adds the workspace root's LICENSE (the tarball test checks it is there).
    expect(m.license).toBe('MIT');
    expect(existsSync(path.join(workspaceRoot, 'LICENSE'))).toBe(true);
  });

  it('limits files to what users need', () => {
    expect(m.files).toBeDefined();
    for (const entry of m.files!) expect(['dist', 'README.md', 'CHANGELOG.md', 'LICENSE']).toContain(entry);
  });

  it.skipIf(pkg.name === pluginTemplate().name)(
    'depends on sibling packages through workspace ranges (updated by changesets on release)',
    () => {
      for (const field of ['dependencies', 'peerDependencies'] as const) {
        for (const [name, range] of Object.entries(m[field] ?? {})) {
          if (name.startsWith('@piflow/')) expect(range, `${field}.${name}`).toMatch(/^workspace:/);
        }
      }
    },
  );

  it('has a README with an install command and a runnable TypeScript example', () => {
    const readme = readFileSync(path.join(pkg.dir, 'README.md'), 'utf8');
    expect(readme).toMatch(/```sh\n(npm i|npm install|pnpm add) [^\n]*/);
    expect(readme).toMatch(/```ts\n[\s\S]*?import [\s\S]*?```/);
  });
});

/**
 * Optional peers named in peerDependenciesMeta only (no range): packages that cannot be installed on the
 * project's machines (their installer downloads libtensorflow), since pnpm installs every declared peer in the
 * workspace; and sibling @piflow packages, since changesets gives a package a major release whenever a
 * package in its peerDependencies is released.
 */
const rangelessPeers = (name: string) =>
  ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'].includes(name) || name.startsWith('@piflow/');

describe.each(importablePackages().map((p) => [p.name, p]))("%s shares the user's tfjs", (_, pkg) => {
  const m = pkg.manifest;
  const tfjs = (deps: Record<string, string> | undefined) =>
    Object.entries(deps ?? {}).filter(([name]) => name.startsWith('@tensorflow/'));

  it('has no tfjs package in dependencies (a pinned copy would be a second tfjs-core for users on another 4.x)', () => {
    expect(tfjs(m.dependencies).map(([name]) => name)).toEqual([]);
  });

  it('declares tfjs packages as peers with caret ranges, each installed for the workspace as a devDependency', () => {
    expect(m.peerDependencies?.['@tensorflow/tfjs-core'], 'peerDependencies.@tensorflow/tfjs-core').toMatch(
      /^\^4\.\d+\.\d+$/,
    );
    for (const [name, range] of tfjs(m.peerDependencies)) {
      expect(range, `peerDependencies.${name}`).toMatch(/^\^4\.\d+\.\d+$/);
      const dev = m.devDependencies?.[name];
      expect(dev, `devDependencies.${name} (the workspace tests against the range's lowest version)`).toBe(
        range.slice(1),
      );
    }
  });

  it('declares every optional peer in peerDependencies too (with its range), except the rangeless ones', () => {
    for (const [name, meta] of Object.entries(m.peerDependenciesMeta ?? {})) {
      expect(meta.optional, `peerDependenciesMeta.${name}.optional`).toBe(true);
      if (rangelessPeers(name)) {
        expect(m.peerDependencies?.[name], `${name} must stay out of peerDependencies`).toBeUndefined();
      } else {
        expect(m.peerDependencies?.[name], `peerDependencies.${name}`).toBeDefined();
      }
    }
  });
});

describe('the plugin template (examples/policy-plugin) installs as it stands outside the repository', () => {
  const template = pluginTemplate();
  const versions = new Map(allWorkspacePackages().map((p) => [p.name, p.manifest]));
  const fields = ['dependencies', 'devDependencies', 'peerDependencies'] as const;

  it('uses no workspace: ranges and no private workspace packages', () => {
    for (const field of fields) {
      for (const [name, range] of Object.entries(template.manifest[field] ?? {})) {
        expect(range, `${field}.${name}`).not.toMatch(/^workspace:/);
        expect(versions.get(name)?.private, `${field}.${name} is private to the workspace`).not.toBe(true);
      }
    }
  });

  it('depends on @piflow packages through caret ranges that the workspace versions satisfy', () => {
    for (const field of fields) {
      for (const [name, range] of Object.entries(template.manifest[field] ?? {})) {
        if (!name.startsWith('@piflow/')) continue;
        const version = versions.get(name)?.version ?? '';
        expect(
          satisfiesCaret(version, range),
          `${field}.${name}: ${range} vs the workspace's ${version}`,
        ).toBe(true);
      }
    }
  });

  it('has its own tsconfig and vitest config (nothing extended from the workspace)', () => {
    const tsconfig = readFileSync(path.join(template.dir, 'tsconfig.json'), 'utf8');
    expect(tsconfig).not.toMatch(/"extends"/);
    const vitestConfig = readFileSync(path.join(template.dir, 'vitest.config.ts'), 'utf8');
    expect(vitestConfig).not.toContain('@piflow/');
  });

  it('links the workspace packages for its real ranges (linkWorkspacePackages in pnpm-workspace.yaml)', () => {
    const workspace = readFileSync(path.join(workspaceRoot, 'pnpm-workspace.yaml'), 'utf8');
    expect(workspace).toMatch(/^linkWorkspacePackages: true$/m);
  });
});
