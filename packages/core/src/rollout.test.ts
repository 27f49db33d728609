import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { createAnalyticGMFlow } from './analytic-gm-flow';
import { InvalidArgumentError } from './errors';
import { createRandom } from './random';
import { rollout, rolloutRawSteps, rolloutSigmaGrid, roundHalfEven, substepCount } from './rollout';
import { warp } from './time-warp';

describe('rollout', () => {
  it('rounds half to even like torch.round and takes at least one substep', () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, 2, 3]);
    expect(substepCount(0, 128)).toBe(1);
    expect(substepCount(0.5, 128)).toBe(64);
    expect(substepCount(1 / 256, 128)).toBe(1); // round(0.5) = 0 → clamped to 1
  });

  it('walks a grid uniform in raw time, per batch item', () => {
    const grids = rolloutSigmaGrid({
      sigmaSrc: Float32Array.of(1, 0.5),
      sigmaDst: Float32Array.of(0, 0.25),
      substeps: 8,
      shift: 3,
    });
    expect(grids[0]!.length).toBe(9);
    expect(grids[0]![4]).toBeCloseTo(warp(0.5, 3), 12);
    expect(grids[0]![8]).toBe(0);
    // item 2: r_src = unwarp(0.5, 3) = 0.25, r_dst = unwarp(0.25, 3) = 0.1 → round(0.15·8) = 1 substep
    expect(grids[1]!.length - 1).toBe(1);
    expect(grids[1]![1]).toBeCloseTo(0.25, 12);
  });

  it('rolloutRawSteps gives the raw-time walk the grid takes: σ_j = warp(r_src − j·h, clamped at 0)', () => {
    const segment = {
      sigmaSrc: Float32Array.of(1, 0.5, 0.93, 0.3),
      sigmaDst: Float32Array.of(0, 0.25, 0.12, 0.3),
      substeps: 37,
      shift: 3.2,
    };
    const walks = rolloutRawSteps(segment);
    const grids = rolloutSigmaGrid(segment);
    walks.forEach(({ rawSrc, rawStep, count }, b) => {
      expect(count).toBe(grids[b]!.length - 1);
      expect(rawSrc).toBeCloseTo(segment.sigmaSrc[b]! / (3.2 - 2.2 * segment.sigmaSrc[b]!), 6);
      for (let j = 1; j <= count; j++) {
        expect(warp(Math.max(rawSrc - j * rawStep, 0), 3.2)).toBeCloseTo(grids[b]![j]!, 12);
      }
    });
    expect(walks[3]).toEqual({ rawSrc: expect.any(Number), rawStep: 0, count: 1 }); // σ_src = σ_dst
  });

  it('Euler-integrates a linear field exactly enough and stops items with fewer substeps', () => {
    // u = x (dx/dσ = x): exact x(σ) = x_src·e^{σ − σ_src}; Euler with many substeps converges.
    const field = { velocity: (x: tf.Tensor) => x.clone() };
    const x = tf.tensor2d([[1], [2]]);
    const out = rollout(field, x, {
      sigmaSrc: tf.tensor1d([1, 0.5]),
      sigmaDst: tf.tensor1d([0, 0.5]),
      substeps: 4096,
    });
    const v = out.dataSync();
    expect(v[0]).toBeCloseTo(Math.exp(-1), 3);
    expect(v[1]).toBeCloseTo(2, 6); // σ_src = σ_dst: one substep of size 0
    tf.dispose([x, out]);
  });

  it('the analytic flow carries its data distribution: noise → mixture', () => {
    const flow = createAnalyticGMFlow({ means: [[-2], [2]], std: 0.2, weights: [0.3, 0.7] });
    const random = createRandom(5);
    const n = 4000;
    const noise = random.normalTensor([n, 1]);
    const x0 = rollout(flow, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 256 });
    const values = x0.dataSync();
    const right = values.filter((v) => v > 0).length / n;
    expect(right).toBeGreaterThan(0.66);
    expect(right).toBeLessThan(0.74);
    const nearMode = values.filter((v) => Math.abs(Math.abs(v) - 2) < 0.6).length / n;
    expect(nearMode).toBeGreaterThan(0.98);
    tf.dispose([noise, x0]);
  });

  it('leaks nothing when the policy rejects x or σ part-way through (op by op)', () => {
    const x = tf.ones([2, 3]);
    let calls = 0;
    const failing = {
      velocity: (t: tf.Tensor) => {
        if (++calls === 3) throw new InvalidArgumentError('x', 'what the policy takes', 'something else');
        return t.clone();
      },
    };
    const before = tf.memory().numTensors;
    expect(() => rollout(failing, x, { sigmaSrc: 1, sigmaDst: 0, substeps: 8 })).toThrow(/`x`/);
    const rejectAtOnce = { velocity: () => failing.velocity(x) };
    calls = 2;
    expect(() => rollout(rejectAtOnce, x, { sigmaSrc: 1, sigmaDst: 0, substeps: 8 })).toThrow(/`x`/);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('rejects bad options with named errors and leaks nothing', () => {
    const x = tf.zeros([2, 3]);
    const field = { velocity: (t: tf.Tensor) => t.clone() };
    const before = tf.memory().numTensors;
    const cases: [() => unknown, RegExp][] = [
      [() => rollout(field, x, { sigmaSrc: 0, sigmaDst: 0 }), /sigmaSrc/],
      [() => rollout(field, x, { sigmaSrc: 0.5, sigmaDst: 0.7 }), /sigmaDst/],
      [() => rollout(field, x, { sigmaSrc: 0.5, sigmaDst: -0.1 }), /sigmaDst/],
      [() => rollout(field, x, { sigmaSrc: 0.5, sigmaDst: 0, substeps: 1.5 }), /substeps/],
      [() => rollout(field, x, { sigmaSrc: 0.5, sigmaDst: 0, shift: 0 }), /shift/],
      [() => rollout({} as never, x, { sigmaSrc: 0.5, sigmaDst: 0 }), /policy/],
      [() => rollout(field, tf.zeros([3]), { sigmaSrc: 0.5, sigmaDst: 0 }), /`x`/],
    ];
    for (const [fn, pattern] of cases) {
      expect(fn).toThrow(InvalidArgumentError);
      expect(fn).toThrow(pattern);
    }
    expect(tf.memory().numTensors - before).toBe(2); // the two tf.zeros([3]) created by the last case
    x.dispose();
  });
});
