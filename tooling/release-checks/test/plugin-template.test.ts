import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packAll, temporaryDirectory } from '../src/pack';
import { npmInstall, runCommand, skipPackInstall, tarballDependencies } from '../src/project';
import { type PackageManifest, pluginTemplate, publicPackages } from '../src/workspace';

/**
 * The plugin template works outside the repository: examples/policy-plugin is copied (its sources and
 * configs, not node_modules or dist) into a temporary folder outside the workspace, its @piflow dependency
 * ranges are pointed at the packed packages (they are not on the registry yet), and there `npm install`,
 * `npx tsc --noEmit`, `npx tsup` and `npx vitest run` (its own tests: core's conformance suite and the oracle
 * tests, on cpu and wasm) must pass, with nothing from the workspace. Needs the npm registry;
 * PIFLOW_SKIP_PACK_INSTALL=1 skips it offline.
 */
const template = pluginTemplate();
const copy = path.join(temporaryDirectory('plugin-template'), 'piflow-policy-gaussian');
afterAll(() => rmSync(path.dirname(copy), { recursive: true, force: true }));

/** What a user copies: everything but installed, built and cached files. */
const notCopied = new Set(['node_modules', 'dist', '.turbo', '.vitest-results.json', 'CHANGELOG.md']);

describe.skipIf(skipPackInstall)('the plugin template, copied out of the repository', () => {
  it('installs against the packed packages, builds, type-checks and passes its own tests', async () => {
    cpSync(template.dir, copy, {
      recursive: true,
      filter: (source) => !notCopied.has(path.basename(source)) || source === template.dir,
    });
    expect(readdirSync(copy).sort()).toEqual(
      readdirSync(template.dir)
        .filter((f) => !notCopied.has(f))
        .sort(),
    );
    // As it stands: no workspace protocol, no workspace-only packages, no config inherited from the repo.
    const manifestText = readFileSync(path.join(copy, 'package.json'), 'utf8');
    expect(manifestText).not.toContain('workspace:');
    expect(readFileSync(path.join(copy, 'tsconfig.json'), 'utf8')).not.toContain('@piflow/tsconfig');
    expect(readFileSync(path.join(copy, 'vitest.config.ts'), 'utf8')).not.toContain('@piflow/');

    // The template's @piflow ranges name versions that are not published yet: point them at tarballs.
    const manifest = JSON.parse(manifestText) as PackageManifest;
    const wanted = new Set(
      [manifest.dependencies, manifest.devDependencies].flatMap((deps) =>
        Object.keys(deps ?? {}).filter((name) => name.startsWith('@piflow/')),
      ),
    );
    const published = new Map(publicPackages().map((p) => [p.name, p]));
    for (const name of wanted) expect(published.has(name), `${name} is not a public package`).toBe(true);
    const packed = await packAll(
      [...wanted].map((name) => published.get(name)!),
      path.dirname(copy),
    );
    const tarballs = tarballDependencies(packed, copy);
    for (const field of ['dependencies', 'devDependencies'] as const) {
      for (const name of Object.keys(manifest[field] ?? {})) {
        if (tarballs[name]) manifest[field]![name] = tarballs[name]!;
      }
    }
    writeFileSync(path.join(copy, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

    await npmInstall(copy);
    const run = (command: string, args: string[]) =>
      runCommand(command, args, { cwd: copy, timeout: 240_000 });
    await run('npx', ['tsc', '--noEmit']);
    await run('npx', ['tsup']);
    expect(existsSync(path.join(copy, 'dist/index.js'))).toBe(true);
    expect(existsSync(path.join(copy, 'dist/index.d.ts'))).toBe(true);
    const { stdout } = await run('npx', ['vitest', 'run']);
    expect(stdout).toMatch(/Tests\s+\d+ passed/);
    expect(stdout).not.toMatch(/failed|skipped/);
  });
});
