import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRandom } from '@piflow/core';
import { loadModelDirectory } from '@piflow/models';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { finished, piflow, startPiflow } from './__fixtures__/piflow-process';

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
  const { model } = await loadModelDirectory(dir);
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
async function runWithKills(args: string[], out: string, seed: number, kills: number): Promise<number> {
  const random = createRandom(seed);
  let landed = 0;
  for (let attempt = 0; ; attempt++) {
    const child = startPiflow([...args, ...(attempt > 0 ? ['--resume'] : []), '--out', out]);
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
});
