import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CheckpointError,
  decodeCheckpoint,
  encodeCheckpoint,
  listCheckpoints,
  readLatestCheckpoint,
  type TrainingCheckpoint,
  writeCheckpointFile,
} from './checkpoint';

const make = (step: number): TrainingCheckpoint => ({
  step,
  iteration: step + 2,
  randomState: [1, 2, 3, step],
  variables: [Float32Array.of(1, 2, 3), Float32Array.of(step)],
  ema: { shadows: [Float32Array.of(0.5, 1, 1.5), Float32Array.of(-step)], updates: step, remaining: 0.25 },
  optimizer: {
    step,
    m: [Float32Array.of(0, 0, 1), Float32Array.of(2)],
    v: [Float32Array.of(3, 3, 3), Float32Array.of(4)],
  },
  shapes: [[3], [1]],
  metadata: { family: 'gm' },
});

describe('checkpoints', () => {
  it('round-trip exactly, extra tensor groups included', () => {
    const c = make(7);
    expect(decodeCheckpoint(encodeCheckpoint(c))).toEqual(c);
    const withExtra = {
      ...c,
      extra: { adam: [Float32Array.of(9, 8)], emaInitial: [Float32Array.of(1, 2, 3)] },
    };
    expect(decodeCheckpoint(encodeCheckpoint(withExtra))).toEqual(withExtra);
    const { ema: _ema, ...withoutEMA } = c;
    expect(decodeCheckpoint(encodeCheckpoint(withoutEMA))).toEqual(withoutEMA);
    expect(() => encodeCheckpoint({ ...c, extra: { ema: [] } })).toThrow(/may not be named "ema"/);
  });

  it('refuse non-finite weights (a diverged run is not a resume point)', () => {
    const nan = make(4);
    nan.variables[0]![1] = Number.NaN;
    expect(() => decodeCheckpoint(encodeCheckpoint(nan), 'x')).toThrow(/x holds non-finite weights/);
    const inf = make(4);
    inf.ema!.shadows[1]![0] = Number.POSITIVE_INFINITY;
    expect(() => decodeCheckpoint(encodeCheckpoint(inf), 'x')).toThrow(/non-finite EMA weights/);
  });

  it('refuse truncated, corrupted and foreign files with clear errors', () => {
    const bytes = encodeCheckpoint(make(3));
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4), 'x')).toThrow(/truncated/);
    const flipped = bytes.slice();
    flipped[flipped.length - 2]! ^= 0xff;
    expect(() => decodeCheckpoint(flipped, 'x')).toThrow(/checksum/);
    expect(() => decodeCheckpoint(new TextEncoder().encode('hello world, not a checkpoint'), 'x')).toThrow(
      CheckpointError,
    );
    expect(() => decodeCheckpoint(bytes.subarray(0, 20), 'x')).toThrow(/truncated/);
  });

  it('are written atomically, pruned, and a corrupted newest one falls back to the previous one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'piflow-ckpt-'));
    for (const step of [10, 20, 30, 40]) await writeCheckpointFile(dir, make(step), 3);
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([40, 30, 20]);
    expect((await readdir(dir)).some((n) => n.includes('.tmp-'))).toBe(false);
    const newest = (await listCheckpoints(dir))[0]!.path;
    const bytes = await readFile(newest);
    await writeFile(newest, bytes.subarray(0, bytes.length - 100));
    const rejected: string[] = [];
    const found = await readLatestCheckpoint(dir, (file, error) =>
      rejected.push(`${path.basename(file)}: ${error.message}`),
    );
    expect(found?.checkpoint.step).toBe(30);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatch(/ckpt-00000040.piflow.*truncated/);
    expect(await readLatestCheckpoint(path.join(dir, 'missing'))).toBeUndefined();
  });
});
