import { rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attwTarball, publintTarball } from '../src/lint';
import { type PackedPackage, packAll, tarballFiles, tarballText, temporaryDirectory } from '../src/pack';
import { type PackageManifest, publishablePackages } from '../src/workspace';

const packages = publishablePackages();
const destination = temporaryDirectory('tarballs');
let packed: Map<string, PackedPackage>;

beforeAll(async () => {
  packed = new Map((await packAll(packages, destination)).map((p) => [p.pkg.name, p]));
});
afterAll(() => rmSync(destination, { recursive: true, force: true }));

/**
 * Import specifiers of a built file. esbuild writes every import specifier in double quotes: static imports and
 * re-exports at the start of a statement, and `import("…")` calls (strings in messages are not matched).
 */
function importSpecifiers(code: string): string[] {
  const pattern =
    /(?:^|\n)\s*(?:import|export)\b[^;'"`]*?\bfrom\s*"([^"]+)"|(?:^|\n)\s*import\s*"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/g;
  return [...code.matchAll(pattern)].map((match) => match[1] ?? match[2] ?? match[3]!);
}

/** Packages a built file imports (relative and absolute paths skipped). */
function importedPackages(code: string): string[] {
  const names = new Set<string>();
  for (const specifier of importSpecifiers(code)) {
    if (specifier.startsWith('.') || specifier.startsWith('/')) continue;
    names.add(
      specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!,
    );
  }
  return [...names];
}

describe.each(packages.map((p) => [p.name]))('%s as packed by pnpm', (name) => {
  it('passes publint --strict', async () => {
    const messages = await publintTarball(packed.get(name)!.tarball);
    expect(messages, messages.join('\n')).toEqual([]);
  });

  it('passes arethetypeswrong (esm-only profile)', async () => {
    const problems = await attwTarball(packed.get(name)!.tarball);
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('ships only dist/, README, LICENSE, CHANGELOG and package.json, without tests or sources', async () => {
    const files = await tarballFiles(packed.get(name)!.tarball);
    for (const file of files) {
      expect(file).toMatch(/^(dist\/.+|README\.md|LICENSE|CHANGELOG\.md|package\.json)$/);
      expect(file).not.toMatch(/\.test\.|__fixtures__/);
    }
    expect(files).toContain('LICENSE');
    expect(files).toContain('README.md');
  });

  it('has real version ranges and no source condition in the published package.json', async () => {
    const manifest = JSON.parse(
      await tarballText(packed.get(name)!.tarball, 'package.json'),
    ) as PackageManifest;
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies'] as const) {
      for (const [dependency, range] of Object.entries(
        (manifest as unknown as Record<string, Record<string, string> | undefined>)[field] ?? {},
      )) {
        expect(range, `${field}.${dependency}`).not.toMatch(/^workspace:/);
      }
    }
    expect(JSON.stringify(manifest.exports)).not.toContain('@piflow/source');
  });

  it('bundles no third-party package into dist/ (dependencies stay dependencies)', async () => {
    const { tarball } = packed.get(name)!;
    const bundled = new Set<string>();
    for (const file of (await tarballFiles(tarball)).filter((f) => /^dist\/.*\.js$/.test(f))) {
      // esbuild marks each bundled module with a "// <path>" comment; a path through node_modules is a copy
      // of a dependency inside our dist.
      for (const match of (await tarballText(tarball, file)).matchAll(
        /^\/\/ \S*node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/\s]+)/gm,
      )) {
        bundled.add(`${match[1]} (in ${file})`);
      }
    }
    expect([...bundled], [...bundled].join('\n')).toEqual([]);
  });

  it('imports no file inside a tfjs package (tfjs has no exports map: deep paths fail in plain Node)', async () => {
    const { tarball } = packed.get(name)!;
    const deep: string[] = [];
    for (const file of (await tarballFiles(tarball)).filter((f) => /^dist\/.*\.js$/.test(f))) {
      const code = await tarballText(tarball, file);
      for (const specifier of importSpecifiers(code)) {
        if (/^@tensorflow\/[^/]+\/./.test(specifier)) deep.push(`${specifier} (in ${file})`);
      }
      if (code.includes('tfjs-core/dist/')) deep.push(`a tfjs-core/dist/ path (in ${file})`);
    }
    expect(deep, deep.join('\n')).toEqual([]);
  });

  it('declares every package its built code imports', async () => {
    const { tarball } = packed.get(name)!;
    const manifest = JSON.parse(await tarballText(tarball, 'package.json')) as PackageManifest;
    const declared = new Set([
      manifest.name,
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
      ...Object.keys(manifest.peerDependenciesMeta ?? {}),
    ]);
    const undeclared = new Set<string>();
    for (const file of (await tarballFiles(tarball)).filter((f) => /^dist\/.*\.js$/.test(f))) {
      for (const imported of importedPackages(await tarballText(tarball, file))) {
        if (imported.startsWith('node:') || builtinModules.includes(imported)) continue;
        if (!declared.has(imported)) undeclared.add(`${imported} (in ${file})`);
      }
    }
    expect([...undeclared], [...undeclared].join('\n')).toEqual([]);
  });
});

it('packs every publishable package to a tarball outside the workspace', async () => {
  expect([...packed.keys()].sort()).toEqual(packages.map((p) => p.name).sort());
  for (const { tarball } of packed.values()) {
    expect(tarball.startsWith(destination)).toBe(true);
    expect((await readFile(tarball)).byteLength).toBeGreaterThan(1000);
  }
});
