import '@tensorflow/tfjs-backend-cpu';
import { createAnalyticGMFlow, createRandom, InvalidArgumentError } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import {
  diversity,
  energyDistance,
  frechetDistance,
  gaussianMixtureMeasures,
  gaussianMixtureModeShift,
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

  it('MMD² and energy distance of N(0, I) vs N(Δ, I) match their closed forms (≤ 4 SE over replicates)', () => {
    // X − Y ~ N(Δ, 2I) in d = 2. RBF kernel exp(−|x − y|²/(2h²)): E k = (h²/(h² + 2))^(d/2)·e^(−|Δ|²/(2(h² + 2))),
    // so MMD² = 2·(h²/(h² + 2))·(1 − e^(−|Δ|²/(2(h² + 2)))). Energy: E|X − Y| is the Rice mean
    // σ√(π/2)·L½(−|Δ|²/(2σ²)) with σ = √2, E|X − X'| = √π, so ED = 2·E|X − Y| − 2√π.
    const bessel = (order: number, z: number) => {
      let sum = 0;
      let term = (z / 2) ** order; // k = 0: (z/2)^n / n!, n ∈ {0, 1}
      for (let k = 0; k < 30; k++) {
        sum += term;
        term *= (z / 2) ** 2 / ((k + 1) * (k + 1 + order));
      }
      return sum;
    };
    const laguerreHalf = (x: number) =>
      Math.exp(x / 2) * ((1 - x) * bessel(0, -x / 2) - x * bessel(1, -x / 2));
    const h = 0.8;
    const closed = (delta: number) => ({
      mmd: 2 * ((h * h) / (h * h + 2)) * (1 - Math.exp(-(delta * delta) / (2 * (h * h + 2)))),
      energy:
        2 * Math.sqrt(2) * Math.sqrt(Math.PI / 2) * laguerreHalf(-(delta * delta) / 4) -
        2 * Math.sqrt(Math.PI),
    });
    for (const delta of [0, 1]) {
      const replicates = 8;
      const n = 300;
      const estimates = Array.from({ length: replicates }, (_, r) => {
        const a = gaussian(n, 2, [0, 0], [1, 1], 100 + 2 * r);
        const b = gaussian(n, 2, [delta, 0], [1, 1], 101 + 2 * r);
        return { mmd: mmdRBF(a, b, { bandwidth: h }), energy: energyDistance(a, b) };
      });
      for (const metric of ['mmd', 'energy'] as const) {
        const values = estimates.map((e) => e[metric]);
        const mean = values.reduce((x, y) => x + y, 0) / replicates;
        const sd = Math.sqrt(values.reduce((x, y) => x + (y - mean) ** 2, 0) / (replicates - 1));
        const expected = closed(delta)[metric];
        expect(Math.abs(mean - expected), `${metric} at Δ = ${delta}: ${mean} vs ${expected}`).toBeLessThan(
          4 * (sd / Math.sqrt(replicates)),
        );
      }
    }
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

  it('mode shift against the same-noise reference: moved rows and the net change of frequencies, exactly', () => {
    const flow = createAnalyticGMFlow({
      means: [
        [-3, 0],
        [3, 0],
        [0, 4],
      ],
      std: 0.3,
      weights: [0.5, 0.3, 0.2],
    });
    // 10 reference rows at component means 0,0,0,0,0,1,1,1,2,2 (small offsets keep each row in its mode)
    const components = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2];
    const rows = (ks: number[]) => ks.flatMap((k, i) => flow.means[k]!.map((m) => m + 0.01 * i));
    const reference = rows(components);
    expect(gaussianMixtureModeShift(flow, reference, reference)).toEqual({ tv: 0, moved: 0 });
    // two rows swap components (0 ↔ 1): both moved, frequencies unchanged
    const swapped = [...components];
    [swapped[0], swapped[5]] = [1, 0];
    expect(gaussianMixtureModeShift(flow, rows(swapped), reference)).toEqual({ tv: 0, moved: 0.2 });
    // three rows of component 0 end in component 2: TV 3/10, as the frequency difference says
    const drifted = [2, 2, 2, 0, 0, 1, 1, 1, 2, 2];
    const shift = gaussianMixtureModeShift(flow, rows(drifted), reference);
    expect(shift.moved).toBeCloseTo(0.3, 12);
    expect(shift.tv).toBeCloseTo(0.3, 12);
    const f = (ks: number[]) => [0, 1, 2].map((k) => ks.filter((c) => c === k).length / ks.length);
    const tvOfFrequencies = 0.5 * f(drifted).reduce((a, v, k) => a + Math.abs(v - f(components)[k]!), 0);
    expect(shift.tv).toBeCloseTo(tvOfFrequencies, 12);
    expect(() => gaussianMixtureModeShift(flow, reference, reference.slice(2))).toThrow(
      /reference.*same noise/,
    );
    expect(() => gaussianMixtureModeShift(flow, [1, 2, 3], [1, 2, 3])).toThrow(/rows of 2 values/);
  });
});
