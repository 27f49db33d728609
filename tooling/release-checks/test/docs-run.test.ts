import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createInstalledProject,
  type InstalledProject,
  runCommand,
  skipPackInstall,
  tfjsVersion,
} from '../src/project';
import { documentationSnippets } from '../src/snippets';
import { importablePackages, type PackageManifest, readManifest, workspaceRoot } from '../src/workspace';

/**
 * Docs that run, against the packages as users install them: every public package (and the plugin template
 * and the teacher server's library) is packed and installed with npm into one fresh project outside the
 * workspace, with tfjs from the npm registry. There:
 * - every ```ts snippet of README.md, packages/*, apps/* and examples/* READMEs and docs/*.md is
 *   type-checked against the installed declarations and run as its own ES module in plain Node (TypeScript
 *   removed with `ts.transpileModule`), each in a folder of its own; a failure names the file and line;
 * - every subpath export of every package is imported in plain Node, one process per entry;
 * - the `testing` entries are imported from a test file in a stock vitest project (no vitest config).
 * Needs the npm registry; PIFLOW_SKIP_PACK_INSTALL=1 skips it offline.
 */
const packages = importablePackages();
const snippets = documentationSnippets();
const releaseChecks = readManifest(path.join(workspaceRoot, 'tooling/release-checks'));
let project: InstalledProject;

beforeAll(async () => {
  if (skipPackInstall) return;
  project = await createInstalledProject({
    prefix: 'docs-run',
    packages,
    dependencies: {
      '@tensorflow/tfjs': tfjsVersion, // tfjs's gradient functions, for the snippets that train
      '@tensorflow/tfjs-backend-cpu': tfjsVersion,
      '@tensorflow/tfjs-backend-wasm': tfjsVersion,
      '@tensorflow/tfjs-core': tfjsVersion,
      '@types/node': releaseChecks.devDependencies!['@types/node']!,
      vitest: releaseChecks.devDependencies!.vitest!,
    },
  });
  // `webgpu` (Dawn for Node, an optional peer of @piflow/backend-webgpu) is 130 MB: linked from the
  // workspace's install instead of being downloaded a second time.
  const dawn = path.dirname(
    createRequire(path.join(workspaceRoot, 'packages/backend-webgpu/package.json')).resolve(
      'webgpu/package.json',
    ),
  );
  symlinkSync(realpathSync(dawn), path.join(project.dir, 'node_modules', 'webgpu'), 'dir');
  for (const snippet of snippets) {
    const folder = path.join(project.dir, 'snippets', snippet.slug);
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, snippet.fileName), snippet.code);
    if (snippet.kind === 'module') {
      const { outputText } = ts.transpileModule(snippet.code, {
        fileName: `${snippet.slug}.ts`,
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      });
      writeFileSync(path.join(folder, 'index.mjs'), outputText);
    }
  }
}, 600_000);
afterAll(() => project?.remove());

/** The subpath exports an installed package publishes, as import specifiers ('@piflow/core/testing'). */
function installedEntries(name: string): string[] {
  const manifest = JSON.parse(
    readFileSync(path.join(project.dir, 'node_modules', name, 'package.json'), 'utf8'),
  ) as PackageManifest;
  return Object.keys(manifest.exports ?? { '.': manifest.main })
    .filter((subpath) => subpath !== './package.json')
    .map((subpath) => (subpath === '.' ? name : `${name}${subpath.slice(1)}`));
}

describe.skipIf(skipPackInstall)('documentation snippets, run against the installed tarballs', () => {
  it('finds the snippets of every README and docs/*.md', () => {
    const files = new Set(snippets.map((s) => s.file));
    for (const file of [
      'README.md',
      'packages/core/README.md',
      'docs/PLUGINS.md',
      'examples/policy-plugin/README.md',
    ]) {
      expect(files, file).toContain(file);
    }
  });

  it('type-checks every snippet against the installed declarations', () => {
    const files = snippets.map((s) => path.join(project.dir, 'snippets', s.slug, s.fileName));
    const program = ts.createProgram(files, {
      noEmit: true,
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      moduleDetection: ts.ModuleDetectionKind.Force,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: ['node'],
      typeRoots: [path.join(project.dir, 'node_modules/@types')],
      skipLibCheck: true,
    });
    const bySlug = new Map(snippets.map((s) => [s.slug, s]));
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (!d.file || d.start === undefined) return message;
      const snippet = bySlug.get(path.basename(path.dirname(d.file.fileName)));
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      return snippet
        ? `${snippet.file}:${snippet.line + line}: ${message}`
        : `${d.file.fileName}: ${message}`;
    });
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it.each(snippets.map((s) => [s.location, s.kind === 'vitest' ? 'in vitest' : 'in plain Node', s] as const))(
    '%s runs %s',
    async (location, _, snippet) => {
      // In its own folder: relative paths a snippet writes (checkpoints, models) stay apart.
      const cwd = path.join(project.dir, 'snippets', snippet.slug);
      const [command, args] =
        snippet.kind === 'vitest'
          ? ['npx', ['vitest', 'run', '--root', project.dir, path.join(cwd, snippet.fileName)]]
          : [process.execPath, ['index.mjs']];
      await runCommand(command, args, { cwd, timeout: 120_000 }).catch((error: Error) => {
        throw new Error(`${location}: the snippet failed\n${error.message}`);
      });
    },
  );
});

describe.skipIf(skipPackInstall)('every entry of every installed package', () => {
  // Side-effect entries (@piflow/backend-webgpu/register) export nothing: importing without an error is the check.
  it('imports in plain Node, each in its own process', async () => {
    const failures: string[] = [];
    let count = 0;
    for (const pkg of packages) {
      for (const entry of installedEntries(pkg.name)) {
        count++;
        await project
          .run(process.execPath, ['--input-type=module', '-e', 'await import(process.argv[1]);', entry], {
            timeout: 60_000,
          })
          .catch((error: Error) =>
            failures.push(`${entry}: ${error.message.split('\n').slice(1).join('\n')}`),
          );
      }
    }
    expect(failures, failures.join('\n\n')).toEqual([]);
    expect(count).toBeGreaterThan(packages.length); // subpath entries (testing, training, register) included
  });

  it('imports the testing entries in a stock vitest project (no config), gradients included', async () => {
    const testing = packages.flatMap((p) => installedEntries(p.name)).filter((e) => /\/testing\b/.test(e));
    expect(testing).toContain('@piflow/core/testing');
    expect(existsSync(path.join(project.dir, 'vitest.config.ts'))).toBe(false);
    const imports = testing.map((entry, i) => `import * as entry${i} from '${entry}';`).join('\n');
    const list = testing.map((entry, i) => `  ['${entry}', entry${i}],`).join('\n');
    mkdirSync(path.join(project.dir, 'test'), { recursive: true });
    writeFileSync(
      path.join(project.dir, 'test/testing-entries.test.ts'),
      `import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
${imports}

const entries: [string, Record<string, unknown>][] = [
${list}
];

it.each(entries)('%s exports something', (_, module) => {
  expect(Object.keys(module).length).toBeGreaterThan(0);
});

it('useBackend sets up a backend and tfjs gradients (from @tensorflow/tfjs)', async () => {
  const { useBackend } = await import('@piflow/core/testing');
  await useBackend('cpu');
  const x = tf.tensor1d([1, 2]);
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.square(v)))(x);
  expect(Array.from(await g.data())).toEqual([2, 4]);
  tf.dispose([x, g]);
});
`,
    );
    const { stdout } = await project.run('npx', ['vitest', 'run', 'test/testing-entries.test.ts'], {
      timeout: 120_000,
    });
    expect(stdout).toMatch(new RegExp(`Tests\\s+.*${testing.length + 1} passed`));
  });
});
