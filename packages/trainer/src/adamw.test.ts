import { useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW } from './adamw';
import { EMA } from './ema';

describe('AdamW and EMA', () => {
  beforeAll(() => useBackend('cpu'));

  it.each([0, 1])(
    'matches a float64 reference with warm-up, clipping from update %i and decoupled weight decay',
    (gradientClipBegin) => {
      const w = tf.variable(tf.tensor1d([1, -2, 0.5]));
      const options = {
        learningRate: 0.1,
        beta1: 0.9,
        beta2: 0.95,
        weightDecay: 0.01,
        warmupSteps: 2,
        warmupFactor: 0.5,
        gradientClip: 1,
        gradientClipBegin,
      };
      const opt = new AdamW([w], options);
      const ref = { w: [1, -2, 0.5], m: [0, 0, 0], v: [0, 0, 0] };
      const gradsSeq = [
        [3, 0, -4],
        [0.1, 0.2, 0.3],
        [-1, 1, 0.5],
      ];
      gradsSeq.forEach((g, t) => {
        const norm = Math.hypot(...g);
        const clip = t >= gradientClipBegin && norm > 1 ? 1 / norm : 1;
        const lr = t < 2 ? 0.1 * (0.5 + 0.5 * (t / 2)) : 0.1;
        for (let i = 0; i < 3; i++) {
          const gi = g[i]! * clip;
          ref.m[i] = 0.9 * ref.m[i]! + 0.1 * gi;
          ref.v[i] = 0.95 * ref.v[i]! + 0.05 * gi * gi;
          const update =
            ref.m[i]! / (1 - 0.9 ** (t + 1)) / (Math.sqrt(ref.v[i]! / (1 - 0.95 ** (t + 1))) + 1e-8);
          ref.w[i] = ref.w[i]! * (1 - lr * 0.01) - lr * update;
        }
        const grad = tf.tensor1d(g);
        expect(opt.apply([grad])).toBeCloseTo(norm, 5);
        grad.dispose();
        Array.from(w.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(ref.w[i]!, 5));
      });
      const nan = tf.tensor1d([Number.NaN, 0, 0]);
      const before = Array.from(w.dataSync());
      expect(Number.isNaN(opt.apply([nan]))).toBe(true);
      expect(Array.from(w.dataSync())).toEqual(before);
      const state = opt.getState();
      expect(state.step).toBe(3);
      opt.setState(state);
      tf.dispose([nan, w]);
      opt.dispose();
    },
  );

  it('Karras EMA uses β_t = (1 − 1/t)^(γ+1) and swaps weights in and out', async () => {
    const w = tf.variable(tf.tensor1d([0]));
    const ema = new EMA([w], { gamma: 1 });
    expect(ema.decayAt(0)).toBe(0);
    expect(ema.decayAt(1)).toBeCloseTo(0.25, 12);
    w.assign(tf.tensor1d([1]));
    ema.update(0); // β = 0 → shadow = 1
    w.assign(tf.tensor1d([3]));
    ema.update(1); // β = 0.25 → 0.25·1 + 0.75·3 = 2.5
    const inside = await ema.swap(() => w.dataSync()[0]);
    expect(inside).toBeCloseTo(2.5, 6);
    expect(w.dataSync()[0]).toBe(3);
    ema.dispose();
    w.dispose();
  });
});
