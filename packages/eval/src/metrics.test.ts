import '@tensorflow/tfjs-backend-cpu';
import { createAnalyticGMFlow, createRandom, InvalidArgumentError } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import {
  diversity,
  energyDistance,
  frechetDistance,
  gaussianMixtureMeasures,
  mmdRBF,
  slicedWasserstein,
  symmetricEigen,
  teacherAlignment,
} from './index';

function gaussian(n: number, d: number, mean: number[], std: number[], seed: number) {
  const r = createRandom(seed);
  const values = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) values[i * d + c] = mean[c]! + std[c]! * r.normal();
  return { values, dimension: d };
}

describe('sample metrics', () => {
  it('sliced W2 of shifted Gaussians is |m|/√D, and 0 for identical sets', () => {
    const a = gaussian(4000, 3, [0, 0, 0], [1, 1, 1], 1);
    const b = gaussian(4000, 3, [1.2, 0, 0], [1, 1, 1], 2);
    expect(slicedWasserstein(a, a)).toBe(0);
    expect(slicedWasserstein(a, b, { projections: 512 })).toBeCloseTo(1.2 / Math.sqrt(3), 1);
  });

  it('MMD and energy distance are ≈ 0 for one distribution and clearly positive for two', () => {
    const a = gaussian(400, 2, [0, 0], [1, 1], 3);
    const a2 = gaussian(400, 2, [0, 0], [1, 1], 4);
    const b = gaussian(400, 2, [1, 0], [1, 1], 5);
    expect(Math.abs(mmdRBF(a, a2))).toBeLessThan(0.01);
    expect(mmdRBF(a, b)).toBeGreaterThan(0.05);
    expect(Math.abs(energyDistance(a, a2))).toBeLessThan(0.03);
    // 1-D reference: ED(N(0,1), N(1,1)) = 2E|N(1,2)| − 2E|N(0,2)|, here in 2-D with a shift along x
    expect(energyDistance(a, b)).toBeGreaterThan(0.2);
  });

  it('Fréchet distance of Gaussians matches ‖Δμ‖² + Σ(√a − √b)² for diagonal covariances', () => {
    const a = gaussian(20000, 3, [0, 0, 0], [1, 2, 0.5], 6);
    const b = gaussian(20000, 3, [0.5, 0, 0], [1.5, 1, 0.5], 7);
    const expected = 0.25 + (1 - 1.5) ** 2 + (2 - 1) ** 2 + 0;
    expect(frechetDistance(a, b)).toBeCloseTo(expected, 1);
    expect(frechetDistance(a, a)).toBeCloseTo(0, 6);
  });

  it('Jacobi eigen-decomposition reconstructs the matrix', () => {
    const m = Float64Array.of(4, 1, 2, 1, 3, 0.5, 2, 0.5, 5);
    const { values, vectors } = symmetricEigen(m, 3);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s += vectors[i * 3 + k]! * values[k]! * vectors[j * 3 + k]!;
        expect(s).toBeCloseTo(m[i * 3 + j]!, 10);
      }
  });

  it('diversity and teacher alignment', () => {
    const a = { values: Float64Array.of(0, 0, 3, 4), dimension: 2 };
    expect(diversity(a)).toBe(5);
    const b = { values: Float64Array.of(0, 1, 3, 4), dimension: 2 };
    expect(teacherAlignment(a, b)).toBeCloseTo(Math.sqrt(1 / 2), 12);
    expect(() => teacherAlignment(a, { values: [0, 0], dimension: 2 })).toThrow(InvalidArgumentError);
    expect(() => slicedWasserstein(a, { values: [0, 0, 0, 0, 0, 0], dimension: 3 })).toThrow(/dimension/);
  });

  it('Gaussian-mixture measures: the data itself has TV ≈ 0, spread ≈ 1, its own log-density', () => {
    const flow = createAnalyticGMFlow({
      means: Array.from({ length: 10 }, (_, k) =>
        Array.from({ length: 6 }, (_, c) => 3 * Math.sin(k * 1.7 + c * 2.3)),
      ),
      std: 0.3,
    });
    const { x0 } = flow.sample(20000, createRandom(8));
    const values = x0.dataSync();
    const m = gaussianMixtureMeasures(flow, values);
    expect(m.coverageTV).toBeLessThan(0.02);
    expect(m.spread).toBeGreaterThan(0.97);
    expect(m.spread).toBeLessThan(1.03);
    const assigned = flow.assignComponents(values);
    const collapsed = Float64Array.from(values, (_, i) => flow.means[assigned[Math.floor(i / 6)]!]![i % 6]!);
    const mc = gaussianMixtureMeasures(flow, collapsed);
    expect(mc.spread).toBe(0);
    expect(mc.logDensity).toBeGreaterThan(m.logDensity + 2); // collapse onto modes raises log-density
    x0.dispose();
  });
});
