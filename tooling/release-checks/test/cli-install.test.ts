import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PackedPackage, packAll, tarballFiles, temporaryDirectory } from '../src/pack';
import { allWorkspacePackages, type WorkspacePackage, workspaceRoot } from '../src/workspace';

/**
 * The `piflow` command as users get it: @piflow/cli and the workspace packages it depends on are built,
 * packed with `pnpm pack` and installed with `npm install` into a fresh project under the OS temp dir
 * (outside the workspace), and the installed binary (node_modules/.bin/piflow) trains and samples there:
 * it distils the shipped checkerboard teacher for a few iterations, samples the student, the shipped teacher
 * and a shipped student, and trains a teacher, all checked through their .npy and model files. Needs the npm
 * registry (CI has it); set PIFLOW_SKIP_PACK_INSTALL=1 to skip it offline.
 */
const run = promisify(execFile);
const skip = process.env.PIFLOW_SKIP_PACK_INSTALL === '1';
const project = temporaryDirectory('cli-install');
afterAll(() => rmSync(project, { recursive: true, force: true }));

/** @piflow/cli and every workspace package it depends on, directly or not. */
function cliClosure(): WorkspacePackage[] {
  const byName = new Map(allWorkspacePackages().map((p) => [p.name, p]));
  const found = new Map<string, WorkspacePackage>();
  const visit = (name: string) => {
    const pkg = byName.get(name);
    if (!pkg || found.has(name)) return;
    found.set(name, pkg);
    for (const [dependency, range] of Object.entries(pkg.manifest.dependencies ?? {})) {
      if (range.startsWith('workspace:')) visit(dependency);
    }
  };
  visit('@piflow/cli');
  return [...found.values()];
}

/** Shape and values of a float32 .npy file written by `piflow sample --npy`. */
function readNpy(file: string): { shape: number[]; values: Float32Array } {
  const bytes = readFileSync(file);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  expect(header).toContain("'descr': '<f4'");
  const shape = /'shape': \(([^)]*)\)/
    .exec(header)![1]!
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const start = 10 + headerLength;
  const values = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.length),
  );
  return { shape, values };
}

/** A model folder's manifest (kept under `modelTopology` when model.json is in tfjs's model-artifacts form). */
function readManifest(dir: string): Record<string, unknown> {
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
  return json.modelTopology ?? json;
}

describe.skipIf(skip)('the piflow binary installed from its tarball outside the workspace', () => {
  const bin = path.join(project, 'node_modules', '.bin', 'piflow');
  let packed: PackedPackage[] = [];
  /** Runs the installed binary itself (its `#!/usr/bin/env node` line), in the project folder. */
  const piflow = async (args: string[]) => {
    const { stdout, stderr } = await run(bin, args, {
      cwd: project,
      env: { ...process.env, CI: '1' },
      timeout: 200_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { stdout, stderr };
  };

  beforeAll(async () => {
    // Builds the CLI and its dependencies (turbo: cached when they are built already); the CLI's build copies
    // the shipped models into the package.
    await run('pnpm', ['turbo', 'run', 'build', '--filter=@piflow/cli...', '--output-logs=errors-only'], {
      cwd: workspaceRoot,
      env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' },
      timeout: 400_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    packed = await packAll(cliClosure(), project);
    const manifest = {
      name: 'piflow-cli-user',
      private: true,
      type: 'module',
      dependencies: Object.fromEntries(
        packed.map(({ pkg, tarball }) => [pkg.name, `file:./${path.basename(tarball)}`]),
      ),
    };
    writeFileSync(path.join(project, 'package.json'), JSON.stringify(manifest, null, 2));
    expect(project.startsWith(workspaceRoot)).toBe(false);
    await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline'], {
      cwd: project,
      timeout: 400_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  }, 600_000);

  it('ships the models inside the package, and installs real folders with the packed ranges', async () => {
    const cli = packed.find((p) => p.pkg.name === '@piflow/cli')!;
    const files = await tarballFiles(cli.tarball);
    for (const model of ['teacher', 'gm-1', 'gm-2', 'gm-4']) {
      expect(files).toContain(`models/checkerboard/${model}/model.json`);
    }
    expect(files).toContain('models/mnist/teacher/model.json');
    expect(files).toContain('models/mnist/classifier/classifier.json');
    for (const model of ['teacher', 'gm-4']) {
      expect(files).toContain(`models/fashion-mnist/${model}/model.json`);
    }
    expect(files).toContain('models/fashion-mnist/classifier/classifier.json');
    expect(files).toContain('dist/main.js');
    // Measured 35.3 MB with every shipped model (checkerboard ≈ 7 MB, MNIST ≈ 21 MB, Fashion-MNIST ≈ 7.5 MB):
    // see apps/cli/README.md. The cap catches an accidental extra (a run folder, a checkpoint) in the package.
    expect(statSync(cli.tarball).size).toBeLessThan(40e6);
    for (const { pkg } of packed) {
      const installed = path.join(project, 'node_modules', pkg.name);
      expect(lstatSync(installed).isSymbolicLink(), `${pkg.name} is a symlink`).toBe(false);
      expect(readFileSync(path.join(installed, 'package.json'), 'utf8')).not.toContain('workspace:');
    }
    expect(existsSync(bin)).toBe(true);
  });

  it('distils the shipped checkerboard teacher, samples the student, the shipped teacher and a shipped student', async () => {
    const distilled = await piflow([
      '--backend',
      'wasm',
      'distill',
      '--teacher',
      'checkerboard',
      '--nfe',
      '2',
      '--iterations',
      '3',
      '--batch-size',
      '16',
      '--out',
      'student',
    ]);
    expect(distilled.stdout).toContain('backend: wasm');
    expect(distilled.stdout).toContain('done: 3 iterations');
    // One copy of tfjs: no kernel, backend or platform registered twice.
    expect(distilled.stderr).not.toMatch(/already (been )?(registered|set)/);
    const model = readManifest(path.join(project, 'student', 'model'));
    expect(model).toMatchObject({
      kind: 'student',
      sampling: { numInferenceSteps: 2 },
      metadata: { teacher: 'checkerboard teacher' },
    });

    const cases: [string, string, number][] = [
      ['student/model', 'student.npy', 2], // the student just distilled: 2 network evaluations
      ['checkerboard', 'teacher.npy', 8], // the shipped teacher, 8 Euler steps
      ['checkerboard/gm-4', 'gm-4.npy', 4], // a shipped student
    ];
    for (const [spec, npy, nfe] of cases) {
      const args = ['--backend', 'wasm', 'sample', '--model', spec, '-n', '64', '--seed', '1'];
      if (spec === 'checkerboard') args.push('--steps', '8');
      const sampled = await piflow([...args, '--npy', npy, '--out', `${npy}.png`]);
      expect(sampled.stdout).toContain(`64 samples with ${nfe} network evaluations`);
      const { shape, values } = readNpy(path.join(project, npy));
      expect(shape, spec).toEqual([64, 2]);
      expect(values.length).toBe(128);
      expect(values.every(Number.isFinite), spec).toBe(true);
      expect(Math.max(...values.map(Math.abs)), spec).toBeLessThan(10);
      expect(existsSync(path.join(project, `${npy}.png`))).toBe(true);
    }
    // The shipped 4-step student lands in the checkerboard's squares ([-2, 2]², cells where i + j is even)
    // far more often than chance (one half): it is the trained model, not an empty one.
    const { values } = readNpy(path.join(project, 'gm-4.npy'));
    let hits = 0;
    for (let i = 0; i < values.length; i += 2) {
      const cx = Math.floor(values[i]! + 2);
      const cy = Math.floor(values[i + 1]! + 2);
      if (cx >= 0 && cx < 4 && cy >= 0 && cy < 4 && (cx + cy) % 2 === 0) hits++;
    }
    expect(hits / 64).toBeGreaterThan(0.7);
  });

  it('runs the MNIST table from the shipped MNIST teacher, student and classifier', async () => {
    const evaluated = await piflow([
      '--backend',
      'wasm',
      'eval-mnist',
      '--students',
      'mnist/gm-1',
      '--teacher-steps',
      '1',
      '--reference-steps',
      '2',
      '-n',
      '10',
      '--grid',
      '10',
      '--out',
      'mnist-eval',
    ]);
    // The shipped classifier, from inside the installed package.
    expect(evaluated.stdout).toMatch(/classifier \S*node_modules\/@piflow\/cli\/models\/mnist\/classifier/);
    const results = JSON.parse(readFileSync(path.join(project, 'mnist-eval', 'results.json'), 'utf8'));
    expect(results.rows.map((r: { sampler: string }) => r.sampler)).toEqual([
      'real training digits (10)',
      'teacher Euler, CFG 1.5', // the scale recorded with the shipped teacher
      'π-Flow GM K=8 (1 step)',
    ]);
    for (const row of results.rows) expect(Number.isFinite(row.frechetDistance)).toBe(true);
  });

  it('trains a teacher (gradients registered in plain Node)', async () => {
    const trained = await piflow([
      '--backend',
      'wasm',
      'train-teacher',
      '--iterations',
      '3',
      '--batch-size',
      '32',
      '--width',
      '8',
      '--depth',
      '1',
      '--out',
      'teacher',
    ]);
    expect(trained.stdout).toContain('done: 3 iterations');
    const model = readManifest(path.join(project, 'teacher', 'model'));
    expect(model).toMatchObject({
      kind: 'flow-model',
      metadata: { dataset: 'checkerboard', trainingSteps: 3 },
    });
  });

  it('trains a GroupNorm U-Net teacher on Fashion-MNIST (Debian data set) and distils it', async () => {
    const trained = await piflow([
      '--backend',
      'wasm',
      'train-teacher',
      '--data',
      'fashion-mnist',
      '--iterations',
      '2',
      '--batch-size',
      '4',
      '--channels',
      '8,16',
      '--out',
      'fashion-teacher',
    ]);
    expect(trained.stdout).toContain('done: 2 iterations');
    expect(readManifest(path.join(project, 'fashion-teacher', 'model'))).toMatchObject({
      backbone: { kind: 'unet', config: { channels: [8, 16], norm: 'group', numClasses: 10 } },
      metadata: { dataset: 'fashion-mnist', trainingSteps: 2 },
    });
    const distilled = await piflow([
      '--backend',
      'wasm',
      'distill',
      '--teacher',
      'fashion-teacher/model',
      '--nfe',
      '2',
      '--iterations',
      '1',
      '--batch-size',
      '4',
      '--out',
      'fashion-gm-2',
    ]);
    expect(distilled.stdout).toContain('done: 1 iterations');
    expect(readManifest(path.join(project, 'fashion-gm-2', 'model'))).toMatchObject({
      kind: 'student',
      metadata: { dataset: 'fashion-mnist' },
    });
  });
});
