import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPolicyRegistry, createRandom } from '@piflow/core';
import { decodeSafetensors, loadModelDirectory } from '@piflow/models';
import { gm } from '@piflow/policy-gm';
import '@tensorflow/tfjs-backend-cpu';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { finished, piflow, startPiflow } from './__fixtures__/piflow-process';

const here = path.dirname(fileURLToPath(import.meta.url));
const mixture = path.join(here, '__fixtures__', 'two-modes.json');

async function checkpointSteps(dir: string): Promise<number[]> {
  try {
    return (await readdir(dir))
      .map((n) => /^ckpt-(\d+)\.piflow$/.exec(n))
      .filter((m) => m !== null)
      .map((m) => Number(m[1]));
  } catch {
    return [];
  }
}

/** Weights of a model folder, in variable order. */
async function weightsOf(dir: string): Promise<Float32Array[]> {
  const { model } = await loadModelDirectory(dir, { families: createPolicyRegistry({ gm }) });
  const values = model.variables.map((v) => Float32Array.from(v.dataSync()));
  model.dispose();
  return values;
}

function maxRelativeDifference(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  a.forEach((x, i) => {
    let scale = 0;
    let diff = 0;
    x.forEach((v, j) => {
      scale = Math.max(scale, Math.abs(v));
      diff = Math.max(diff, Math.abs(v - b[i]![j]!));
    });
    worst = Math.max(worst, diff / Math.max(scale, 1e-12));
  });
  return worst;
}

/**
 * Runs `args` into `out` killing the whole process group with SIGKILL at random moments after checkpoints
 * appear, resuming each time, until a run completes; returns how many kills landed.
 */
async function runWithKills(
  args: string[],
  out: string,
  seed: number,
  kills: number,
  backend = 'cpu',
): Promise<number> {
  const random = createRandom(seed);
  let landed = 0;
  for (let attempt = 0; ; attempt++) {
    const child = startPiflow([...args, ...(attempt > 0 ? ['--resume'] : []), '--out', out], { backend });
    const done = finished(child);
    if (landed < kills) {
      const before = Math.max(0, ...(await checkpointSteps(path.join(out, 'checkpoints'))));
      const delay = 5 + random.uniform() * 60;
      const poll = setInterval(async () => {
        const steps = await checkpointSteps(path.join(out, 'checkpoints'));
        if (Math.max(0, ...steps) > before) {
          clearInterval(poll);
          setTimeout(() => {
            try {
              process.kill(-child.pid!, 'SIGKILL');
            } catch {
              // already finished
            }
          }, delay);
        }
      }, 20);
      const result = await done;
      clearInterval(poll);
      if (result.signal === 'SIGKILL') {
        landed++;
        continue;
      }
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      return landed;
    }
    const result = await done;
    expect(result.stderr.replace(/warning: skipping checkpoint[^\n]*\n/g, '')).toBe('');
    expect(result.code).toBe(0);
    return landed;
  }
}

describe('piflow: runs that are killed, resumed, refused', () => {
  it('train-teacher killed with SIGKILL at random moments and resumed exports the uninterrupted teacher (1e-6)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-kill-teacher-'));
    const args = [
      'train-teacher',
      '--iterations',
      '120',
      '--width',
      '16',
      '--depth',
      '1',
      '--batch-size',
      '64',
      '--checkpoint-every',
      '10',
      '--ema',
      '0.95',
    ];
    const straight = await piflow([...args, '--out', path.join(dir, 'straight')]);
    expect(straight.code).toBe(0);
    const landed = await runWithKills(args, path.join(dir, 'killed'), 1, 3);
    expect(landed).toBeGreaterThanOrEqual(1);
    const difference = maxRelativeDifference(
      await weightsOf(path.join(dir, 'straight', 'model')),
      await weightsOf(path.join(dir, 'killed', 'model')),
    );
    expect(difference).toBeLessThanOrEqual(1e-6);
    // the log has every step once
    const log = (await readFile(path.join(dir, 'killed', 'train-log.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(log).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
  }, 300_000);

  it('distill killed with SIGKILL at random moments and resumed exports the uninterrupted student; its log has every step once', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-kill-distill-'));
    const args = [
      'distill',
      '--teacher',
      `analytic-gm:${mixture}`,
      '--iterations',
      '60',
      '--batch-size',
      '32',
      '--width',
      '16',
      '--depth',
      '1',
      '--components',
      '2',
      '--checkpoint-every',
      '8',
    ];
    const straight = await piflow([...args, '--out', path.join(dir, 'straight')]);
    expect(straight.code).toBe(0);
    const landed = await runWithKills(args, path.join(dir, 'killed'), 2, 3);
    expect(landed).toBeGreaterThanOrEqual(1);
    expect(
      maxRelativeDifference(
        await weightsOf(path.join(dir, 'straight', 'model')),
        await weightsOf(path.join(dir, 'killed', 'model')),
      ),
    ).toBeLessThanOrEqual(1e-6);
    const steps = (await readFile(path.join(dir, 'killed', 'distill-log.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(steps).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  }, 300_000);

  it('train-classifier killed with SIGKILL at random moments and resumed saves the uninterrupted classifier', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-kill-classifier-'));
    const args = ['train-classifier', '--iterations', '30', '--batch-size', '16', '--checkpoint-every', '4'];
    const straight = await piflow([...args, '--out', path.join(dir, 'straight')], { backend: 'wasm' });
    expect(straight.code).toBe(0);
    const landed = await runWithKills(args, path.join(dir, 'killed'), 3, 2, 'wasm');
    expect(landed).toBeGreaterThanOrEqual(1);
    const weights = async (run: string) => {
      const bytes = await readFile(path.join(dir, run, 'weights.bin'));
      return [new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)];
    };
    expect(maxRelativeDifference(await weights('straight'), await weights('killed'))).toBeLessThanOrEqual(
      1e-6,
    );
    const steps = (await readFile(path.join(dir, 'killed', 'train-log.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).step);
    expect(steps).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  }, 300_000);

  it('a corrupted newest teacher checkpoint is skipped with a warning; stale temp files are removed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-corrupt-teacher-'));
    const out = path.join(dir, 't');
    const small = ['--width', '8', '--depth', '1', '--batch-size', '32', '--checkpoint-every', '3'];
    const first = await piflow(['train-teacher', '--iterations', '7', ...small, '--out', out]);
    expect(first.code).toBe(0);
    const checkpoints = path.join(out, 'checkpoints');
    expect((await checkpointSteps(checkpoints)).sort()).toEqual([3, 6]);
    // flip bytes in the middle of the newest one and leave a partial temp file behind, as a kill would
    const newest = path.join(checkpoints, 'ckpt-00000006.piflow');
    const bytes = await readFile(newest);
    bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
    await writeFile(newest, bytes);
    await writeFile(path.join(checkpoints, 'ckpt-00000009.piflow.tmp-99999-1'), 'partial');
    const resumed = await piflow(['train-teacher', '--iterations', '10', '--resume', ...small, '--out', out]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/warning: skipping checkpoint .*ckpt-00000006\.piflow: .*checksum/);
    expect(resumed.stdout).toContain('resumed at step 3');
    expect((await readdir(checkpoints)).some((n) => n.includes('.tmp-'))).toBe(false);
  }, 120_000);

  it('a second run into an existing folder is refused and the first run’s files are untouched', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-refuse-'));
    const out = path.join(dir, 't');
    const small = ['--width', '8', '--depth', '1', '--batch-size', '32', '--iterations', '3'];
    expect((await piflow(['train-teacher', ...small, '--out', out])).code).toBe(0);
    const files = ['model/model.json', 'model/model.safetensors', 'train-log.jsonl', 'loss.png'];
    const before = await Promise.all(files.map((f) => readFile(path.join(out, f))));
    const mtimes = await Promise.all(files.map(async (f) => (await stat(path.join(out, f))).mtimeMs));
    for (const command of [
      ['train-teacher', ...small],
      ['distill', '--teacher', path.join(out, 'model'), '--iterations', '2', '--batch-size', '8'],
    ]) {
      const second = await piflow([...command, '--out', out]);
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(/already holds a run .*--resume.*--overwrite/);
      expect(second.stderr).not.toMatch(/\n\s+at /);
    }
    const after = await Promise.all(files.map((f) => readFile(path.join(out, f))));
    after.forEach((b, i) => expect(b.equals(before[i]!)).toBe(true));
    expect(await Promise.all(files.map(async (f) => (await stat(path.join(out, f))).mtimeMs))).toEqual(
      mtimes,
    );
    // --overwrite replaces it
    const replaced = await piflow(['train-teacher', ...small, '--seed', '3', '--overwrite', '--out', out]);
    expect(replaced.code).toBe(0);
    expect((await readFile(path.join(out, 'model', 'model.safetensors'))).equals(before[1]!)).toBe(false);
    expect(existsSync(path.join(out, '.piflow-run.lock'))).toBe(false);
  }, 120_000);

  it('refuses sizes that cannot fit, EMA decay 1, labels outside the classes, misplaced guidance, NaN weights and a bad value of every command before any work', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-refusals-'));
    // a student whose weights hold a NaN (as a diverged run would write)
    const poisoned = path.join(dir, 'poisoned');
    await cp(path.join(here, '..', '..', '..', 'models', 'checkerboard', 'gm-4'), poisoned, {
      recursive: true,
    });
    const weightsFile = path.join(poisoned, 'model.safetensors');
    const bytes = new Uint8Array(await readFile(weightsFile));
    new DataView(bytes.buffer).setFloat32(decodeSafetensors(bytes).dataOffset + 4, Number.NaN, true);
    await writeFile(weightsFile, bytes);
    const cases: [string[], RegExp][] = [
      [
        ['train-teacher', '--ema', '1'],
        /--ema must be a decay in \[0, 1\) \(1 would export the untrained weights\), got "1"/,
      ],
      [
        ['train-teacher', '--batch-size', '100000000', '--out', path.join(dir, 't')],
        /--batch-size 100000000 needs about [\d.]+ GB for one training step.*\n {2}fix: use a smaller --batch-size/,
      ],
      [
        ['distill', '--batch-size', '100000000', '--iterations', '1', '--out', path.join(dir, 'd')],
        /--batch-size 100000000 needs about [\d.]+ GB for one π-ID iteration/,
      ],
      [
        ['sample', '--model', 'checkerboard/gm-4', '-n', '300000000'],
        /--count 300000000 needs about [\d.]+ GB/,
      ],
      [
        ['sample', '--model', 'mnist/gm-4', '--labels', '3,99', '-n', '4'],
        /--labels 99 is not a class of this model: it has 10 classes, 0 to 9\./,
      ],
      [
        [
          'distill',
          '--teacher',
          `analytic-gm:${mixture}`,
          '--guidance-interval',
          '0,0.5',
          '--iterations',
          '1',
        ],
        /--guidance-scale and --guidance-interval apply to class-conditional model teachers/,
      ],
      [
        ['sample', '--model', 'checkerboard', '--h', '1'],
        /--h and --substeps set a π-Flow student's sampler/,
      ],
      [
        ['sample', '--model', 'checkerboard/gm-4', '--h', '-1'],
        /--h must be a number ≥ 0 or 'inf', got "-1"/,
      ],
      [
        ['serve-teacher', '--teacher', 'nope:x', '--port', '0'],
        /expected a spec <kind>:<argument> with kind one of/,
      ],
      [['eval-mnist', '-n', '5'], /--count must be an integer in \[10, /],
      [['train-classifier', '--batch-size', '0'], /--batch-size must be an integer in \[1, /],
      [['eval', '--model', 'checkerboard/gm-4', '-n', '1'], /--count must be an integer in \[2, /],
      [['distill', '--guidance-interval', '0.7,0.2'], /--guidance-interval must be two σ values low,high/],
      [
        ['distill', '--resume', '--overwrite', '--iterations', '1', '--out', path.join(dir, 'r')],
        /--resume and --overwrite exclude each other/,
      ],
      [
        ['sample', '--model', poisoned, '-n', '4'],
        new RegExp(`${weightsFile.replace(/[/.]/g, '\\$&')}: The weights hold a non-finite value \\(NaN\\)`),
      ],
    ];
    for (const [args, message] of cases) {
      const run = await piflow(args);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr, args.join(' ')).toMatch(message);
      expect(run.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
  }, 180_000);
});
