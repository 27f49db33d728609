import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { publicPackages, publishablePackages, readManifest, workspaceRoot } from '../src/workspace';

const self = readManifest(path.join(workspaceRoot, 'tooling/release-checks'));

describe('workspace discovery', () => {
  it('finds the public packages under packages/*', () => {
    const names = publicPackages().map((p) => p.name);
    for (const name of ['@piflow/core', '@piflow/policy-gm', '@piflow/policy-dx', '@piflow/backend-node']) {
      expect(names).toContain(name);
    }
  });

  it.each(publishablePackages().map((p) => [p.name]))(
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

  it('depends on sibling packages through workspace ranges (updated by changesets on release)', () => {
    for (const field of ['dependencies', 'peerDependencies'] as const) {
      for (const [name, range] of Object.entries(m[field] ?? {})) {
        if (name.startsWith('@piflow/')) expect(range, `${field}.${name}`).toMatch(/^workspace:/);
      }
    }
  });

  it('has a README with an install command and a runnable TypeScript example', () => {
    const readme = readFileSync(path.join(pkg.dir, 'README.md'), 'utf8');
    expect(readme).toMatch(/```sh\n(npm i|npm install|pnpm add) [^\n]*/);
    expect(readme).toMatch(/```ts\n[\s\S]*?import [\s\S]*?```/);
  });
});
