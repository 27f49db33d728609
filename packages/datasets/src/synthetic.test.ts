import '@tensorflow/tfjs-backend-cpu';
import { createRandom } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import { checkerboard, randomGaussianMixture, rings } from './index';

describe('synthetic datasets', () => {
  it('checkerboard points lie on black squares of [−2, 2]² and cover all of them', () => {
    const x = checkerboard().sample(8000, createRandom(1));
    const v = x.dataSync();
    const seen = new Set<string>();
    for (let i = 0; i < 8000; i++) {
      const cx = Math.floor(v[2 * i]! + 2);
      const cy = Math.floor(v[2 * i + 1]! + 2);
      expect(Math.abs(v[2 * i]!)).toBeLessThanOrEqual(2);
      expect((cx + cy) % 2).toBe(0);
      seen.add(`${cx},${cy}`);
    }
    expect(seen.size).toBe(8);
    x.dispose();
  });

  it('rings have the given radii', () => {
    const x = rings({ radii: [1, 2], noise: 0 }).sample(1000, createRandom(2));
    const v = x.dataSync();
    for (let i = 0; i < 1000; i++) {
      const r = Math.hypot(v[2 * i]!, v[2 * i + 1]!);
      expect(Math.min(Math.abs(r - 1), Math.abs(r - 2))).toBeLessThan(1e-5);
    }
    x.dispose();
  });

  it('random Gaussian mixtures are valid analytic flows and reproducible', () => {
    const a = randomGaussianMixture({ dimension: 6, numComponents: 10, std: 0.3, random: createRandom(3) });
    const b = randomGaussianMixture({ dimension: 6, numComponents: 10, std: 0.3, random: createRandom(3) });
    expect(a.means).toEqual(b.means);
    expect(a.weights.reduce((s, w) => s + w, 0)).toBeCloseTo(1, 12);
    expect(() =>
      randomGaussianMixture({ dimension: 0, numComponents: 2, std: 1, random: createRandom(1) }),
    ).toThrow(/dimension/);
  });
});
