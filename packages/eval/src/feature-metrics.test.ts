import { createRandom } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import { classifierScore, kernelInceptionDistance, precisionRecall } from './feature-metrics';

const gaussian = (n: number, d: number, mean: number, seed: number) => {
  const random = createRandom(seed);
  return { values: Float64Array.from({ length: n * d }, () => mean + random.normal()), dimension: d };
};

describe('precisionRecall', () => {
  it('matches a hand-computed 1-D case', () => {
    // real 0, 1, 2, 10: with k = 1 radii² are 1, 1, 1, 64 (10's nearest is 2)
    // generated 0.5, 20, 21: radii² 0.25·… → 0.5's nearest other is 20 (19.5² = 380.25), 20 ↔ 21: 1, 1
    const real = { values: [0, 1, 2, 10], dimension: 1 };
    const generated = { values: [0.5, 20, 21], dimension: 1 };
    const { precision, recall } = precisionRecall(real, generated, { k: 1 });
    // precision: 0.5 inside (|0.5 − 0|² ≤ 1); 20, 21 outside every real ball (10's reaches 18): 1/3
    expect(precision).toBeCloseTo(1 / 3, 12);
    // recall: 0, 1, 2, 10 all inside 0.5's ball (radius² 380.25): 4/4
    expect(recall).toBe(1);
  });

  it('is 1/1 for the same set, and drops recall (not precision) for a mode-collapsed generator', () => {
    const real = gaussian(200, 4, 0, 1);
    expect(precisionRecall(real, real)).toEqual({ precision: 1, recall: 1 });
    // two modes in the real data, the generator covers only one
    const left = gaussian(150, 2, -6, 2);
    const right = gaussian(150, 2, 6, 3);
    const twoModes = { values: Float64Array.from([...left.values, ...right.values]), dimension: 2 };
    const collapsed = gaussian(300, 2, -6, 4);
    const { precision, recall } = precisionRecall(twoModes, collapsed);
    expect(precision).toBeGreaterThan(0.9);
    expect(recall).toBeGreaterThan(0.4);
    expect(recall).toBeLessThan(0.55);
  });

  it('names bad arguments', () => {
    expect(() =>
      precisionRecall({ values: [1, 2], dimension: 1 }, { values: [1, 2, 3], dimension: 1 }),
    ).toThrow(/real/);
    expect(() => precisionRecall(gaussian(10, 2, 0, 1), gaussian(10, 3, 0, 1))).toThrow(/b.dimension/);
  });
});

describe('kernelInceptionDistance', () => {
  // The unbiased MMD² written out from its definition: all ordered pairs i ≠ j within, all pairs across.
  function referenceMMD(a: number[][], b: number[][]): number {
    const d = a[0]!.length;
    const k = (x: number[], y: number[]) => (x.reduce((s, v, i) => s + v * y[i]!, 0) / d + 1) ** 3;
    const within = (s: number[][]) => {
      let total = 0;
      for (let i = 0; i < s.length; i++)
        for (let j = 0; j < s.length; j++) if (i !== j) total += k(s[i]!, s[j]!);
      return total / (s.length * (s.length - 1));
    };
    let across = 0;
    for (const x of a) for (const y of b) across += k(x, y);
    return within(a) + within(b) - (2 * across) / (a.length * b.length);
  }

  it('equals the unbiased MMD² with the cubic kernel on the whole sets', () => {
    const a = gaussian(40, 3, 0, 5);
    const b = gaussian(40, 3, 0.7, 6);
    const rowsOf = (s: { values: Float64Array; dimension: number }) =>
      Array.from({ length: s.values.length / s.dimension }, (_, i) =>
        Array.from(s.values.slice(i * s.dimension, (i + 1) * s.dimension)),
      );
    const { kid, std } = kernelInceptionDistance(a, b);
    expect(kid).toBeCloseTo(referenceMMD(rowsOf(a), rowsOf(b)), 10);
    expect(std).toBe(0);
  });

  it('is zero within 4 standard errors for one distribution and clearly positive for two', () => {
    const same = kernelInceptionDistance(gaussian(2000, 4, 0, 7), gaussian(2000, 4, 0, 8), {
      subsets: 20,
      subsetSize: 200,
    });
    expect(Math.abs(same.kid)).toBeLessThan((4 * same.std) / Math.sqrt(20));
    const shifted = kernelInceptionDistance(gaussian(2000, 4, 0, 7), gaussian(2000, 4, 0.5, 8), {
      subsets: 20,
      subsetSize: 200,
    });
    expect(shifted.kid).toBeGreaterThan(4 * (shifted.std / Math.sqrt(20)) + Math.abs(same.kid));
  });
});

describe('classifierScore', () => {
  it('is 1 for identical predictions and the class count for confident, balanced ones', () => {
    expect(classifierScore([0.3, 1, -2, 0.3, 1, -2], 3)).toBeCloseTo(1, 12);
    const confident = [50, 0, 0, 0, 50, 0, 0, 0, 50];
    expect(classifierScore(confident, 3)).toBeCloseTo(3, 6);
  });

  it('matches exp(mean KL) computed by hand for two soft rows', () => {
    const p1 = [0.8, 0.2];
    const p2 = [0.4, 0.6];
    const m = [0.6, 0.4];
    const kl = (p: number[]) => p.reduce((s, v, i) => s + v * Math.log(v / m[i]!), 0);
    const logits = [...p1, ...p2].map(Math.log);
    expect(classifierScore(logits, 2)).toBeCloseTo(Math.exp((kl(p1) + kl(p2)) / 2), 12);
  });
});
