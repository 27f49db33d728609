import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors';
import { dynamicShift, unwarp, warp } from './time-warp';

describe('time warps', () => {
  it('warp and unwarp are inverse and fix 0 and 1', () => {
    for (const shift of [0.5, 1, 3.2, 7]) {
      for (const r of [0, 0.1, 0.37, 0.5, 0.99, 1]) {
        expect(unwarp(warp(r, shift), shift)).toBeCloseTo(r, 12);
      }
      expect(warp(0, shift)).toBe(0);
      expect(warp(1, shift)).toBe(1);
    }
    expect(warp(0.5, 3)).toBeCloseTo(0.75, 12); // 3·0.5/(1 + 2·0.5)
  });

  it('works on tensors, elementwise like the number form', () => {
    const r = tf.tensor1d([0, 0.25, 0.5, 1]);
    const s = warp(r, 3.2);
    const back = unwarp(s, 3.2);
    const expected = [0, 0.25, 0.5, 1].map((v) => warp(v, 3.2));
    Array.from(s.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
    expect(Array.from(back.dataSync()).map((v) => Number(v.toFixed(5)))).toEqual([0, 0.25, 0.5, 1]);
    tf.dispose([r, s, back]);
  });

  it('rejects bad shifts and out-of-range times with named errors', () => {
    expect(() => warp(0.5, 0)).toThrow(InvalidArgumentError);
    expect(() => warp(0.5, -1)).toThrow(/`shift`/);
    expect(() => warp(1.5, 2)).toThrow(/`rawTime`/);
    expect(() => unwarp(Number.NaN, 2)).toThrow(/`sigma`/);
  });

  it('dynamic shift is e^μ with μ linear in sequence length (FLUX defaults)', () => {
    expect(dynamicShift(256)).toBeCloseTo(Math.exp(0.5), 12);
    expect(dynamicShift(4096)).toBeCloseTo(Math.exp(1.15), 12);
    expect(Math.log(dynamicShift(2176))).toBeCloseTo(0.825, 12); // midpoint
    expect(dynamicShift(1024, { baseShift: 0.5, maxShift: 0.9, maxSequenceLength: 8192 })).toBeCloseTo(
      Math.exp(0.5 + ((0.9 - 0.5) / (8192 - 256)) * (1024 - 256)),
      12,
    );
    expect(() => dynamicShift(0)).toThrow(/sequenceLength/);
  });
});
