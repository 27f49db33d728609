import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { piflow, type Run } from './__fixtures__/piflow-process';

const here = path.dirname(fileURLToPath(import.meta.url));
const main = path.join(here, 'main.ts');
const fixture = path.join(here, '__fixtures__', 'two-modes.json');
const tsx = createRequire(import.meta.url).resolve('tsx');

describe('piflow CLI', () => {
  it('has --help with examples on every command', async () => {
    const top = await piflow(['--help']);
    expect(top.code).toBe(0);
    for (const command of [
      'train-teacher',
      'train-classifier',
      'distill',
      'sample',
      'eval',
      'eval-mnist',
      'bench',
      'serve-teacher',
      'demo',
    ]) {
      expect(top.stdout).toContain(command);
    }
    const help = await piflow(['distill', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('--config <file>');
  });

  it('explains bad input in one sentence with the fix, without a stack trace', async () => {
    const badNumber = await piflow(['distill', '--nfe', '0']);
    expect(badNumber.code).toBe(1);
    expect(badNumber.stderr).toContain('--nfe must be an integer in [1, 64], got "0"');
    // numbers are plain decimals: hex, binary and blanks are refused, on the command line and in config files
    for (const text of ['0x3', '0b11', ' ', '']) {
      const run = await piflow(['distill', '--iterations', text]);
      expect(run.code, JSON.stringify(text)).toBe(1);
      expect(run.stderr).toContain(`--iterations must be an integer`);
    }
    const configDir = await mkdtemp(path.join(tmpdir(), 'piflow-config-'));
    const config = path.join(configDir, 'bad.yaml');
    await writeFile(config, 'nfe: 0\n');
    const fromFile = await piflow(['distill', '--config', config, '--iterations', '1']);
    expect(fromFile.code).toBe(1);
    expect(fromFile.stderr).toContain('--nfe must be an integer in [1, 64], got "0"');
    const badTeacher = await piflow(['distill', '--teacher', 'no-such-teacher', '--iterations', '1']);
    expect(badTeacher.code).toBe(1);
    expect(badTeacher.stderr).toMatch(
      /^piflow: Unknown teacher "no-such-teacher"\.\n {2}fix: use checkerboard/,
    );
    expect(badTeacher.stderr).not.toMatch(/\n\s+at /);
    // Family options: checked against the chosen family's declarations, naming the flag and the options.
    const familyCases: [string[], RegExp][] = [
      [
        ['--family', 'dx', '--components', '4'],
        /--components sets the head option numComponents, which the family "dx" does not have/,
      ],
      [
        ['--head', 'K=3'],
        /--head K: the family "gm" declares no such option\.\n {2}fix: its options:\n {2}numComponents \(integer ≥ 1, default 8\)/,
      ],
      [['--head', 'numComponents=0x3'], /--head numComponents.*a number.*"0x3"/],
      [['--train-option', 'dropout=1'], /--train-option dropout/],
      [['--family', 'dx', '--head', 'mode=spline'], /--head mode.*"grid", "polynomial", received "spline"/],
      [['--gm-dropout', '0.1'], /--gm-dropout is now --train-option dropout=<p>/],
      [['--family', 'flow'], /Unknown policy family "flow"\. Registered: gm, dx\./],
      [
        ['--plugin', 'no-such-plugin-package'],
        /Cannot find the policy plugin package "no-such-plugin-package".*\n {2}fix: install it \(npm i no-such-plugin-package\)/,
      ],
    ];
    for (const [args, message] of familyCases) {
      const run = await piflow(['distill', ...args, '--iterations', '1']);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr, args.join(' ')).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
    const help = await piflow(['distill', '--help']);
    expect(help.stdout).toMatch(/--head numComponents \(integer ≥ 1, default 8\)/);
    expect(help.stdout).toMatch(/--sample-option temperature \(number or 'auto' > 0, default 1\)/);
    const verbose = await piflow(['--verbose', 'sample', '--model', '/nonexistent-dir']);
    expect(verbose.code).toBe(1);
    expect(verbose.stderr).toMatch(/\n\s+at /);
  }, 120_000);

  it('distils, checkpoints, logs, plots, exports, then samples PNG + .npy reproducibly; config files fill options', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-cli-'));
    const config = path.join(dir, 'distill.yaml');
    await writeFile(config, 'iterations: 6\nbatch-size: 16\nwidth: 16\ndepth: 1\ncheckpointEvery: 3\n');
    const out = path.join(dir, 'student');
    const run = await piflow([
      'distill',
      '--teacher',
      `analytic-gm:${fixture}`,
      '--nfe',
      '2',
      '--config',
      config,
      '--iterations',
      '8',
      '--out',
      out,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('done: 8 iterations'); // --iterations on the command line wins over the file
    for (const file of [
      'model/model.json',
      'model/model.safetensors',
      'loss.png',
      'distill-log.jsonl',
      'checkpoints/ckpt-00000006.piflow',
    ]) {
      expect(existsSync(path.join(out, file)), file).toBe(true);
    }
    const log = (await readFile(path.join(out, 'distill-log.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const manifest = await readManifest(path.join(out, 'model'));
    expect(manifest.kind).toBe('student');
    expect(manifest.family).toEqual({ name: 'gm', specificationVersion: 'v2', package: '@piflow/policy-gm' });
    expect(manifest.head).toMatchObject({ numComponents: 16 }); // the vector-data default
    expect(manifest.sampling.numInferenceSteps).toBe(2);

    const png = path.join(dir, 'a.png');
    const npy = path.join(dir, 'a.npy');
    const sampled = await piflow([
      'sample',
      '--model',
      path.join(out, 'model'),
      '-n',
      '50',
      '--seed',
      '3',
      '--out',
      png,
      '--npy',
      npy,
    ]);
    expect(sampled.code).toBe(0);
    expect(sampled.stdout).toContain('50 samples with 2 network evaluations');
    expect(PNG.sync.read(await readFile(png)).width).toBeGreaterThan(100);
    const again = await piflow([
      'sample',
      '--model',
      path.join(out, 'model'),
      '-n',
      '50',
      '--seed',
      '3',
      '--out',
      png,
      '--npy',
      path.join(dir, 'again.npy'),
    ]);
    expect(again.code).toBe(0);
    expect(Buffer.compare(await readFile(npy), await readFile(path.join(dir, 'again.npy')))).toBe(0);
    expect((await readFile(npy)).length).toBe(128 + 50 * 2 * 4);

    // measured against the exact mixture: the same noise as `sample --seed 3`, so its coverage TV is the one
    // of the .npy's rows, each given to its most likely component (computed here from the mixture's definition)
    const evalJson = path.join(dir, 'eval.json');
    const measured = await piflow([
      'eval',
      '--model',
      path.join(out, 'model'),
      '--teacher',
      `analytic-gm:${fixture}`,
      '-n',
      '50',
      '--seed',
      '3',
      '--json',
      evalJson,
    ]);
    expect(measured.stderr).toBe('');
    expect(measured.code).toBe(0);
    expect(measured.stdout).toContain("| model | NFE | samples | coverage TV | exact draws' TV |");
    const row = JSON.parse(await readFile(evalJson, 'utf8'));
    const mixture = JSON.parse(await readFile(fixture, 'utf8')) as {
      means: number[][];
      std: number;
      weights: number[];
    };
    const bytes = await readFile(npy);
    const values = new Float32Array(
      bytes.buffer.slice(bytes.byteOffset + 128, bytes.byteOffset + bytes.length),
    );
    const counts = [0, 0];
    for (let i = 0; i < 50; i++) {
      const score = mixture.means.map(
        (m, k) =>
          Math.log(mixture.weights[k]!) -
          ((values[2 * i]! - m[0]!) ** 2 + (values[2 * i + 1]! - m[1]!) ** 2) / (2 * mixture.std ** 2),
      );
      counts[score[0]! > score[1]! ? 0 : 1]! += 1;
    }
    const tv = 0.5 * counts.reduce((a, c, k) => a + Math.abs(c / 50 - mixture.weights[k]!), 0);
    expect(row).toMatchObject({ nfe: 2, samples: 50 });
    expect(row.coverageTV).toBeCloseTo(tv, 9);
    expect(row.movedFromODE).toBeGreaterThanOrEqual(row.tvAgainstODE);
    const wrongDimension = path.join(dir, 'three-d.json');
    await writeFile(wrongDimension, JSON.stringify({ means: [[0, 0, 0]], std: 1 }));
    const mismatch = await piflow([
      'eval',
      '--model',
      path.join(out, 'model'),
      '--teacher',
      `analytic-gm:${wrongDimension}`,
    ]);
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toContain('makes samples of shape [2], the mixture');
  }, 180_000);

  it('Ctrl-C during distill saves a checkpoint and exits 130', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-sigint-'));
    const out = path.join(dir, 'student');
    const run = await piflow(
      [
        'distill',
        '--teacher',
        `analytic-gm:${fixture}`,
        '--iterations',
        '100000',
        '--batch-size',
        '8',
        '--width',
        '8',
        '--depth',
        '1',
        '--out',
        out,
      ],
      // interrupted once training has logged steps (the log is flushed every 2 s while it runs)
      {
        interruptWhen: () =>
          existsSync(path.join(out, 'distill-log.jsonl')) &&
          statSync(path.join(out, 'distill-log.jsonl')).size > 0,
      },
    );
    expect(run.code).toBe(130);
    expect(run.stdout).toContain('stopped early (Ctrl-C); checkpoint saved');
    const resumed = await piflow([
      'distill',
      '--teacher',
      `analytic-gm:${fixture}`,
      '--iterations',
      '1',
      '--batch-size',
      '8',
      '--width',
      '8',
      '--depth',
      '1',
      '--resume',
      '--out',
      out,
    ]);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/resumed at step [1-9]\d*/);
  }, 180_000);

  it('MNIST in miniature: class-conditional teacher, classifier, distillation, labelled sampling and the results table', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-mnist-'));
    const wasm = { backend: 'wasm' }; // convolutions are slow on tfjs's cpu backend
    const teacher = await piflow(
      [
        'train-teacher',
        '--data',
        'mnist',
        '--iterations',
        '3',
        '--batch-size',
        '4',
        '--channels',
        '4,8',
        '--out',
        path.join(dir, 'teacher'),
      ],
      wasm,
    );
    expect(teacher.stderr).toBe('');
    expect(teacher.code).toBe(0);
    const teacherManifest = await readManifest(path.join(dir, 'teacher', 'model'));
    expect(teacherManifest.sampleShape).toEqual([28, 28, 1]);
    expect(teacherManifest.backbone).toMatchObject({
      kind: 'unet',
      config: { channels: [4, 8], numClasses: 10 },
    });
    expect(teacherManifest.sampling.guidanceScale).toBe(2.5);

    const classifier = await piflow(
      ['train-classifier', '--iterations', '3', '--batch-size', '8', '--out', path.join(dir, 'classifier')],
      wasm,
    );
    expect(classifier.code).toBe(0);
    expect(classifier.stdout).toMatch(/accuracy [\d.]+ % train, [\d.]+ % held out/);
    expect(existsSync(path.join(dir, 'classifier', 'classifier.json'))).toBe(true);

    const student = await piflow(
      [
        'distill',
        '--teacher',
        path.join(dir, 'teacher', 'model'),
        '--components',
        '2',
        '--nfe',
        '2',
        '--iterations',
        '2',
        '--batch-size',
        '4',
        '--out',
        path.join(dir, 'gm-2'),
      ],
      wasm,
    );
    expect(student.stderr).toBe('');
    expect(student.code).toBe(0);
    const studentManifest = await readManifest(path.join(dir, 'gm-2', 'model'));
    expect(studentManifest).toMatchObject({
      kind: 'student',
      family: { name: 'gm' },
      backbone: { kind: 'unet' },
      sampling: { numInferenceSteps: 2, guidanceScale: 2.5 },
      metadata: { dataset: 'mnist' },
    });

    const png = path.join(dir, 'digits.png');
    const sampled = await piflow(
      ['sample', '--model', path.join(dir, 'gm-2', 'model'), '--labels', '0,3,7', '-n', '6', '--out', png],
      wasm,
    );
    expect(sampled.code).toBe(0);
    expect(sampled.stdout).toContain('6 samples with 2 network evaluations');
    const image = PNG.sync.read(await readFile(png));
    expect([image.width, image.height]).toEqual([3 * 30 + 2, 2 * 30 + 2]);
    const guided = await piflow(
      [
        'sample',
        '--model',
        path.join(dir, 'teacher', 'model'),
        '--labels',
        '1',
        '--steps',
        '3',
        '-n',
        '2',
        '--out',
        png,
      ],
      wasm,
    );
    expect(guided.stdout).toContain('2 samples with 6 network evaluations'); // CFG: two per step
    const wrongLabels = await piflow(
      ['sample', '--model', 'checkerboard', '--labels', '1', '--out', png],
      wasm,
    );
    expect(wrongLabels.code).toBe(1);
    expect(wrongLabels.stderr).toContain('not class-conditional');

    const report = await piflow(
      [
        'eval-mnist',
        '--teacher',
        path.join(dir, 'teacher', 'model'),
        '--students',
        path.join(dir, 'gm-2', 'model'),
        '--classifier',
        path.join(dir, 'classifier'),
        '--teacher-steps',
        '1,2',
        '--reference-steps',
        '2',
        '--guidance-scale',
        '4',
        '-n',
        '20',
        '--grid',
        '10',
        '--out',
        path.join(dir, 'eval'),
      ],
      wasm,
    );
    expect(report.stderr).toBe('');
    expect(report.code).toBe(0);
    const results = JSON.parse(await readFile(path.join(dir, 'eval', 'results.json'), 'utf8'));
    expect(
      results.rows.map((r: { sampler: string; steps: number; nfe: number }) => [r.sampler, r.steps, r.nfe]),
    ).toEqual([
      ['real training digits (20)', 0, 0],
      // teacher rows at the asked guidance; the student keeps the guidance distilled into it (named)
      ['teacher Euler, CFG 4', 1, 2],
      ['teacher Euler, CFG 4', 2, 4],
      ['π-Flow GM K=2 (2 steps, CFG 2.5)', 2, 2],
    ]);
    expect(results.rows[2].alignment).toBe(0); // the reference itself
    for (const row of results.rows) {
      expect(Number.isFinite(row.frechetDistance)).toBe(true);
      expect(Number.isFinite(row.kid)).toBe(true);
      expect(row.precision).toBeGreaterThanOrEqual(0);
      expect(row.precision).toBeLessThanOrEqual(1);
      expect(row.recall).toBeGreaterThanOrEqual(0);
      expect(row.recall).toBeLessThanOrEqual(1);
      expect(row.classScore).toBeGreaterThanOrEqual(1);
      expect(row.classScore).toBeLessThanOrEqual(10);
    }
    const grids = PNG.sync.read(await readFile(path.join(dir, 'eval', 'grids.png')));
    expect(grids.width).toBe(2 * (10 * 30 + 2) + 8); // teacher-2 and the student side by side
    expect(grids.height).toBe(14 + 10 + (30 + 2)); // panel titles, digit labels over the columns, one row
    expect(await readFile(path.join(dir, 'eval', 'results.md'), 'utf8')).toContain(
      '| π-Flow GM K=2 (2 steps, CFG 2.5) | 2 | 2 |',
    );
  }, 300_000);

  it('Fashion-MNIST in miniature: --data fashion-mnist through train-teacher, train-classifier, distill and eval-mnist', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-fashion-'));
    const wasm = { backend: 'wasm' };
    const teacher = await piflow(
      [
        'train-teacher',
        '--data',
        'fashion-mnist',
        '--iterations',
        '2',
        '--batch-size',
        '4',
        '--channels',
        '4,8',
        '--out',
        path.join(dir, 'teacher'),
      ],
      wasm,
    );
    expect(teacher.stderr).toBe('');
    expect(teacher.code).toBe(0);
    expect(await readManifest(path.join(dir, 'teacher', 'model'))).toMatchObject({
      sampleShape: [28, 28, 1],
      backbone: { kind: 'unet', config: { channels: [4, 8], numClasses: 10, norm: 'group' } },
      metadata: { dataset: 'fashion-mnist' },
    });
    const classifier = await piflow(
      [
        'train-classifier',
        '--data',
        'fashion-mnist',
        '--iterations',
        '2',
        '--batch-size',
        '8',
        '--out',
        path.join(dir, 'classifier'),
      ],
      wasm,
    );
    expect(classifier.code).toBe(0);
    const classifierFile = JSON.parse(
      await readFile(path.join(dir, 'classifier', 'classifier.json'), 'utf8'),
    );
    expect(classifierFile.metadata.dataset).toBe('fashion-mnist');
    const student = await piflow(
      [
        'distill',
        '--teacher',
        path.join(dir, 'teacher', 'model'),
        '--nfe',
        '2',
        '--iterations',
        '1',
        '--batch-size',
        '4',
        '--out',
        path.join(dir, 'gm-2'),
      ],
      wasm,
    );
    expect(student.stderr).toBe('');
    expect(student.code).toBe(0);
    expect((await readManifest(path.join(dir, 'gm-2', 'model'))).metadata).toMatchObject({
      dataset: 'fashion-mnist',
    });
    const report = await piflow(
      [
        'eval-mnist',
        '--teacher',
        path.join(dir, 'teacher', 'model'),
        '--students',
        path.join(dir, 'gm-2', 'model'),
        '--classifier',
        path.join(dir, 'classifier'),
        '--teacher-steps',
        '1',
        '--reference-steps',
        '1',
        '-n',
        '10',
        '--grid',
        '10',
        '--out',
        path.join(dir, 'eval'),
      ],
      wasm,
    );
    expect(report.stderr).toBe('');
    expect(report.code).toBe(0);
    // the data set comes from the teacher's record: 2 000 of the Fashion-MNIST test images are the reference
    expect(report.stdout).toContain('reference: 2000 held-out fashion-mnist images');
    const results = JSON.parse(await readFile(path.join(dir, 'eval', 'results.json'), 'utf8'));
    expect(results.rows[0].sampler).toBe('real training images (10)');
    expect(results.rows[0].accuracy).toBeLessThan(0.5); // an untrained classifier: 2 iterations
  }, 300_000);

  it('distils from a teacher server over HTTP (a teacher spec that is a URL)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-remote-'));
    const server = spawn(
      process.execPath,
      [
        '--import',
        tsx,
        '--conditions=@piflow/source',
        main,
        'serve-teacher',
        '--teacher',
        'checkerboard',
        '--host',
        '127.0.0.1',
        '--port',
        '0',
      ],
      { env: { ...process.env, CI: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        server.stdout.on('data', (d) => {
          out += d;
          const match = /listening on (http:\/\/\S+)/.exec(out);
          if (match) resolve(match[1]!);
        });
        server.on('close', (code) => reject(new Error(`server exited ${code}: ${out}`)));
      });
      const run = await piflow([
        'distill',
        '--teacher',
        url,
        '--nfe',
        '2',
        '--iterations',
        '3',
        '--batch-size',
        '16',
        '--out',
        path.join(dir, 'student'),
      ]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('done: 3 iterations');
      const manifest = await readManifest(path.join(dir, 'student', 'model'));
      expect(manifest.metadata.teacher).toBe(`remote teacher ${url}`);
      expect(manifest.sampleShape).toEqual([2]);
      // a teacher without a network to copy gets a new MLP: 256 wide, the family's depth for the step count
      // (GM: 3 blocks at 2 steps, 4 otherwise; DX 6), else 3
      const backboneOf = async (out: string) =>
        JSON.parse(await readFile(path.join(dir, out, 'model', 'model.json'), 'utf8')).modelTopology.backbone;
      expect(await backboneOf('student')).toMatchObject({ kind: 'mlp', config: { width: 256, depth: 3 } });
      for (const [out, args, depth] of [
        ['gm4', ['--nfe', '4'], 4],
        ['dx', ['--family', 'dx'], 6],
      ] as const) {
        const run = await piflow(
          ['distill', '--teacher', url, ...args, '--iterations', '1', '--batch-size', '8'].concat([
            '--out',
            path.join(dir, out),
          ]),
        );
        expect(run.code, out).toBe(0);
        expect(await backboneOf(out)).toMatchObject({ kind: 'mlp', config: { width: 256, depth } });
      }
    } finally {
      server.kill('SIGTERM');
    }
  }, 120_000);

  it('train-teacher --init continues from a teacher folder and refuses another architecture', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-init-'));
    const small = ['--width', '8', '--depth', '1', '--batch-size', '32'];
    const first = await piflow([
      'train-teacher',
      '--iterations',
      '2',
      ...small,
      '--out',
      path.join(dir, 'a'),
    ]);
    expect(first.code).toBe(0);
    const second = await piflow([
      'train-teacher',
      '--init',
      path.join(dir, 'a', 'model'),
      '--iterations',
      '3',
      ...small,
      '--out',
      path.join(dir, 'b'),
    ]);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    const manifest = await readManifest(path.join(dir, 'b', 'model'));
    expect(manifest.metadata).toMatchObject({
      trainingSteps: 5,
      initializedFrom: path.join(dir, 'a', 'model'),
    });
    const wrong = await piflow([
      'train-teacher',
      '--init',
      path.join(dir, 'a', 'model'),
      '--iterations',
      '1',
      '--width',
      '16',
      '--depth',
      '1',
      '--out',
      path.join(dir, 'c'),
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('is not a teacher with this architecture');
  }, 120_000);

  it('train-teacher writes checkpoints and --resume continues from the newest one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-teacher-resume-'));
    const small = ['--width', '8', '--depth', '1', '--batch-size', '32', '--checkpoint-every', '3'];
    const out = path.join(dir, 't');
    const first = await piflow(['train-teacher', '--iterations', '4', ...small, '--out', out]);
    expect(first.code).toBe(0);
    expect(await readdir(path.join(out, 'checkpoints'))).toEqual(['ckpt-00000003.piflow']);
    const resumed = await piflow(['train-teacher', '--iterations', '7', '--resume', ...small, '--out', out]);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toContain('resumed at step 3');
    expect(resumed.stdout).toContain('done: 7 iterations');
    const log = (await readFile(path.join(out, 'train-log.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(log).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const manifest = await readManifest(path.join(out, 'model'));
    expect(manifest.metadata.trainingSteps).toBe(7);
    expect(existsSync(path.join(out, 'checkpoints', 'ckpt-00000006.piflow'))).toBe(true);
  }, 120_000);
});

describe('piflow: one vocabulary, checked output files', () => {
  it('renamed flags and config keys fail naming the new ones; --steps is a teacher’s, --nfe a student’s', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-vocabulary-'));
    const cases: [string[], RegExp][] = [
      [
        ['distill', '--steps', '10'],
        /^piflow: --steps is now --iterations \(π-ID iterations\)\.\n {2}fix: use --iterations <n>; the student's sampling steps are --nfe <n>/,
      ],
      [['train-teacher', '--steps', '10'], /^piflow: --steps is now --iterations \(training iterations\)/],
      [['train-classifier', '--steps', '10'], /^piflow: --steps is now --iterations \(training iterations\)/],
      [['demo', '--steps', '10'], /^piflow: --steps is now --iterations \(π-ID iterations per student\)/],
      // --steps stays where it means a teacher's Euler steps; given for a student it names --nfe, and back.
      [
        ['sample', '--model', 'checkerboard/gm-2', '--steps', '4'],
        /--steps sets a teacher's Euler steps, but checkerboard\/gm-2 is a π-Flow student\.\n {2}fix: use --nfe <n>/,
      ],
      [
        ['eval', '--model', 'checkerboard/gm-2', '--steps', '4'],
        /--steps sets a teacher's Euler steps, but checkerboard\/gm-2 is a π-Flow student/,
      ],
      [
        ['sample', '--model', 'checkerboard', '--nfe', '4'],
        /--nfe sets a π-Flow student's steps, but checkerboard is a teacher \(flow model\)\.\n {2}fix: use --steps <n>/,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await piflow(args, { cwd: dir });
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr, args.join(' ')).toMatch(message);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
    // The same in a config file: the old key fails, naming the new one.
    const config = path.join(dir, 'old.yaml');
    await writeFile(config, 'steps: 10\nbatch-size: 8\n');
    const fromFile = await piflow(['distill', '--config', config], { cwd: dir });
    expect(fromFile.code).toBe(1);
    expect(fromFile.stderr).toMatch(
      /^piflow: The config file .*old\.yaml sets "steps": --steps is now --iterations \(π-ID iterations\)\.\n {2}fix: rename the key/,
    );
    // Nothing was trained or written.
    expect(existsSync(path.join(dir, 'runs'))).toBe(false);
    // The help text uses the new names.
    const help = await piflow(['distill', '--help']);
    expect(help.stdout).toContain('--iterations <n>');
    expect(help.stdout).not.toMatch(/--steps/);
    const sampleHelp = await piflow(['sample', '--help']);
    expect(sampleHelp.stdout).toMatch(/--nfe <n> +steps of a π-Flow student/);
    expect(sampleHelp.stdout).toMatch(/--steps <n> +Euler steps of a teacher \(default 32\)/);
  }, 180_000);

  it('--out, --npy and --json check the extension of what they write', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-out-'));
    const cases: [string[], RegExp][] = [
      [
        ['sample', '--out', 'x.jpg'],
        /--out writes \.png files: give a file name ending in \.png, got "x\.jpg"/,
      ],
      [
        ['sample', '--npy', 'x.bin'],
        /--npy writes \.npy files: give a file name ending in \.npy, got "x\.bin"/,
      ],
      [['sample', '--json', 'x.txt'], /--json writes \.json files/],
      [['eval', '--json', 'x.yaml'], /--json writes \.json files/],
    ];
    for (const [args, message] of cases) {
      const run = await piflow(args, { cwd: dir });
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr, args.join(' ')).toMatch(message);
    }
    // Case does not matter; what the command writes is a real PNG with the plot's axes and title.
    const ok = await piflow(['sample', '-n', '200', '--steps', '4', '--out', 'T.PNG'], { cwd: dir });
    expect(ok.code).toBe(0);
    const png = PNG.sync.read(await readFile(path.join(dir, 'T.PNG')));
    expect(png.width).toBeGreaterThan(200);
    expect(png.height).toBeGreaterThan(200);
  }, 120_000);
});

describe('piflow --backend webgpu in Node (Dawn on llvmpipe, no GPU needed)', () => {
  // Every command reads tensors asynchronously: tfjs's WebGPU backend has no synchronous readback in Node.
  const webgpu = { backend: 'webgpu' };
  const noGpuErrors = (run: Run) => {
    // Dawn reports invalid pipelines (e.g. more storage buffers than a shader stage has) on stderr without
    // failing the call: none may appear.
    expect(run.stderr).not.toMatch(/validation|Invalid|not defined/);
  };

  it('samples the shipped teacher like the cpu backend does', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-webgpu-sample-'));
    const args = (file: string) =>
      ['sample', '--model', 'checkerboard', '--steps', '8', '-n', '256', '--seed', '2'].concat([
        '--npy',
        path.join(dir, file),
        '--out',
        path.join(dir, `${file}.png`),
      ]);
    const gpu = await piflow(args('gpu.npy'), webgpu);
    noGpuErrors(gpu);
    expect(gpu.code, gpu.stderr).toBe(0);
    expect(gpu.stdout).toContain('backend: webgpu');
    expect(gpu.stdout).toContain('256 samples with 8 network evaluations');
    const cpu = await piflow(args('cpu.npy'));
    expect(cpu.code).toBe(0);
    const a = await readNpy(path.join(dir, 'gpu.npy'));
    const b = await readNpy(path.join(dir, 'cpu.npy'));
    expect(a.length).toBe(256 * 2);
    expect(a.every(Number.isFinite)).toBe(true);
    let maxDifference = 0;
    for (let i = 0; i < a.length; i++) maxDifference = Math.max(maxDifference, Math.abs(a[i]! - b[i]!));
    expect(maxDifference).toBeLessThan(1e-3);
    expect(PNG.sync.read(await readFile(path.join(dir, 'gpu.npy.png'))).width).toBeGreaterThan(200);
  }, 120_000);

  it('distils a few iterations with the same losses as the cpu backend, then samples the student', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-webgpu-distill-'));
    const args = (out: string) => [
      'distill',
      '--teacher',
      'checkerboard',
      '--nfe',
      '2',
      '--iterations',
      '3',
      '--batch-size',
      '16',
      // on the sampler's grid: the default mixed segments include steps that start near σ = 0, where the
      // gradient norm is sensitive to float32 rounding (at step 1: cpu 0.785, wasm 0.795, webgpu 0.831, while
      // the losses agree to 1e-4); on the grid the backends agree to 1e-6
      '--segment-sampling',
      'grid',
      '--out',
      path.join(dir, out),
    ];
    const gpu = await piflow(args('gpu'), webgpu);
    noGpuErrors(gpu);
    expect(gpu.code, gpu.stderr).toBe(0);
    expect(gpu.stdout).toContain('done: 3 iterations');
    const cpu = await piflow(args('cpu'));
    expect(cpu.code).toBe(0);
    const log = async (out: string) =>
      (await readFile(path.join(dir, out, 'distill-log.jsonl'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { loss: number; gradientNorm: number });
    const [onGpu, onCpu] = [await log('gpu'), await log('cpu')];
    expect(onGpu).toHaveLength(3);
    onGpu.forEach((m, i) => {
      expect(m.loss).toBeCloseTo(onCpu[i]!.loss, 4);
      expect(m.gradientNorm).toBeCloseTo(onCpu[i]!.gradientNorm, 3);
    });
    const npy = path.join(dir, 'student.npy');
    const sampled = await piflow(
      [
        'sample',
        '--model',
        path.join(dir, 'gpu', 'model'),
        '-n',
        '64',
        '--npy',
        npy,
        '--out',
        path.join(dir, 'student.png'),
      ],
      webgpu,
    );
    noGpuErrors(sampled);
    expect(sampled.code, sampled.stderr).toBe(0);
    expect(sampled.stdout).toContain('64 samples with 2 network evaluations');
    const values = await readNpy(npy);
    expect(values.length).toBe(64 * 2);
    expect(values.every(Number.isFinite)).toBe(true);
  }, 180_000);
});

/** Fraction of 2-D points inside the shipped checkerboard's data squares ([-2, 2]², cells of 1, (i + j) even). */
function inSquares(values: Float32Array): number {
  let hits = 0;
  for (let i = 0; i < values.length; i += 2) {
    const cx = Math.floor(values[i]! + 2);
    const cy = Math.floor(values[i + 1]! + 2);
    if (cx >= 0 && cx < 4 && cy >= 0 && cy < 4 && (cx + cy) % 2 === 0) hits++;
  }
  return hits / (values.length / 2);
}

/** A model folder's manifest: model.json keeps it under `modelTopology` (tfjs's model-JSON shape). */
async function readManifest(dir: string) {
  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
  return json.modelTopology ?? json;
}

/** Reads a float32 .npy written by `piflow sample --npy`. */
async function readNpy(file: string): Promise<Float32Array> {
  const bytes = await readFile(file);
  const headerLength = bytes.readUInt16LE(8);
  const start = 10 + headerLength;
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.length));
}

describe('piflow with a policy plugin (examples/policy-plugin)', () => {
  const pluginDir = path.resolve(here, '../../../examples/policy-plugin');

  it('distils, saves, samples and evaluates a plugin family; 2-step samples beat the teacher’s 2-step Euler', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-plugin-'));
    const out = path.join(dir, 'gaussian-2');
    const help = await piflow(['distill', '--plugin', pluginDir, '--family', 'nope', '--iterations', '1']);
    expect(help.code).toBe(1);
    expect(help.stderr).toContain('Unknown policy family "nope". Registered: gm, dx, gaussian.');
    const distil = await piflow(
      [
        'distill',
        '--plugin',
        pluginDir,
        '--family',
        'gaussian',
        '--nfe',
        '2',
        '--iterations',
        '300',
        '--out',
        out,
      ],
      { backend: 'wasm' },
    );
    expect(distil.stderr).toBe('');
    expect(distil.code).toBe(0);
    const manifest = await readManifest(path.join(out, 'model'));
    expect(manifest.family).toEqual({
      name: 'gaussian',
      specificationVersion: 'v2',
      package: 'piflow-policy-gaussian',
    });
    // Without the plugin the model names the package to install.
    const missing = await piflow(['sample', '--model', path.join(out, 'model'), '-n', '10']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('npm i piflow-policy-gaussian');
    expect(missing.stderr).not.toMatch(/\n\s+at /);
    // With --plugin, and (the package installed beside the run) without it.
    const student = path.join(dir, 'student.npy');
    const sampled = await piflow(
      [
        'sample',
        '--model',
        path.join(out, 'model'),
        '--plugin',
        pluginDir,
        '-n',
        '4000',
        '--seed',
        '3',
        '--npy',
        student,
        '--out',
        path.join(dir, 's.png'),
      ],
      { backend: 'wasm' },
    );
    expect(sampled.stderr).toBe('');
    expect(sampled.code).toBe(0);
    const installed = path.join(dir, 'project');
    await mkdir(path.join(installed, 'node_modules'), { recursive: true });
    await symlink(pluginDir, path.join(installed, 'node_modules', 'piflow-policy-gaussian'), 'dir');
    const again = path.join(dir, 'again.npy');
    const auto = await piflow(
      [
        'sample',
        '--model',
        path.join(out, 'model'),
        '-n',
        '4000',
        '--seed',
        '3',
        '--npy',
        again,
        '--out',
        path.join(dir, 'a.png'),
      ],
      { backend: 'wasm', cwd: installed },
    );
    expect(auto.stderr).toBe('');
    expect(auto.code).toBe(0);
    expect(await readNpy(again)).toEqual(await readNpy(student));
    const teacher = path.join(dir, 'teacher.npy');
    const euler = await piflow(
      [
        'sample',
        '--model',
        'checkerboard',
        '--steps',
        '2',
        '-n',
        '4000',
        '--seed',
        '3',
        '--npy',
        teacher,
        '--out',
        path.join(dir, 't.png'),
      ],
      { backend: 'wasm' },
    );
    expect(euler.code).toBe(0);
    const studentHits = inSquares(await readNpy(student));
    const teacherHits = inSquares(await readNpy(teacher));
    // 4000 samples: standard error of a fraction ≤ 0.008 (measured: student 0.82, teacher-2 0.51,
    // teacher-128 0.85).
    expect(studentHits, `student ${studentHits} vs teacher ${teacherHits}`).toBeGreaterThan(
      teacherHits + 0.2,
    );
    const evaluated = await piflow(
      ['eval', '--model', path.join(out, 'model'), '--plugin', pluginDir, '-n', '500'],
      {
        backend: 'wasm',
      },
    );
    expect(evaluated.stderr).toBe('');
    expect(evaluated.code).toBe(0);
    expect(evaluated.stdout).toMatch(/\| .*gaussian-2\/model \| 2 \| \d/);
  }, 600_000);
});

describe('piflow demo and bench as real processes', () => {
  it('demo: a short run writes the quality table and the picture; a bad step list is refused', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-demo-'));
    const out = path.join(dir, 'demo');
    const run = await piflow(['demo', '--iterations', '3', '-n', '300', '--nfe', '1,2', '--out', out], {
      backend: 'wasm',
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = await readFile(path.join(out, 'results.md'), 'utf8');
    // a row per sampler: the teacher at 128, 1, 2 and 4 steps, then one student per requested step count
    const rows = report.split('\n').filter((l) => /^\| (teacher Euler|π-Flow GM student)/.test(l));
    expect(rows.map((r) => r.split('|')[2]!.trim())).toEqual(['128', '1', '2', '4', '1', '2']);
    for (const row of rows) {
      const slicedW = Number(row.split('|')[3]);
      expect(Number.isFinite(slicedW) && slicedW >= 0).toBe(true);
    }
    const picture = PNG.sync.read(await readFile(path.join(out, 'comparison.png')));
    expect(picture.width).toBeGreaterThan(picture.height); // panels side by side
    expect(existsSync(path.join(out, 'gm-2', 'model', 'model.json'))).toBe(true);
    const bad = await piflow(['demo', '--nfe', '0', '--iterations', '1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--nfe must be comma-separated positive integers');
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  }, 300_000);

  it('bench: prints both timings and their ratio; a bad size is refused', async () => {
    const run = await piflow(['bench', '--positions', '64', '--substeps', '16', '--repeats', '2'], {
      backend: 'wasm',
    });
    expect(run.code).toBe(0);
    const line = /op by op ([\d.]+) ms\s+fused ([\d.]+) ms\s+ratio ([\d.]+)×/.exec(run.stdout);
    expect(line, run.stdout).not.toBeNull();
    const [opByOp, fused, ratio] = line!.slice(1).map(Number) as [number, number, number];
    expect(opByOp).toBeGreaterThan(0);
    expect(fused).toBeGreaterThan(0);
    // the line prints times rounded to 0.1 ms and the ratio of the unrounded ones (to 0.1)
    expect(ratio).toBeGreaterThanOrEqual((opByOp - 0.05) / (fused + 0.05) - 0.05);
    expect(ratio).toBeLessThanOrEqual((opByOp + 0.05) / Math.max(fused - 0.05, 1e-3) + 0.05);
    const bad = await piflow(['bench', '--positions', '0']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--positions must be an integer');
  }, 120_000);
});
