import { createRandom, flowMapSchedule } from '@piflow/core';
import { describe, expect, it } from 'vitest';
import { intermediateOffsets, sampleSegments, teacherRatioAt } from './segments';

describe('π-ID segments', () => {
  it('start on the sampler grid, pick steps in proportion to raw length, and have the right lengths', () => {
    const N = 4;
    const f = 0.5;
    const schedule = flowMapSchedule({ numInferenceSteps: N, finalStepSizeScale: f, shift: 3.2 });
    const seg = sampleSegments(20000, N, f, 3.2, createRandom(1));
    const counts = new Map<number, number>();
    const delta = 1 / (N - 1 + f);
    for (let b = 0; b < 20000; b++) {
      const i = schedule.rawTimes.findIndex((r) => Math.abs(r - seg.rawSrc[b]!) < 1e-9);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(seg.rawLength[b]).toBeCloseTo(i === N - 1 ? f * delta : delta, 12);
      expect(seg.sigmaSrc[b]).toBeCloseTo(schedule.sigmas[i]!, 6);
      counts.set(i, (counts.get(i) ?? 0) + 1);
    }
    for (let i = 0; i < N; i++) {
      const expected = (i === N - 1 ? f : 1) * delta;
      // within 4 standard errors of a frequency, √(p(1 − p)/n)
      expect(Math.abs(counts.get(i)! / 20000 - expected)).toBeLessThan(
        4 * Math.sqrt((expected * (1 - expected)) / 20000),
      );
    }
  });

  it('continuous: r_src uniform on (0, 1], segments min(Δ, r_src), σ_src = warp(r_src)', () => {
    const N = 4;
    const n = 20000;
    const delta = 1 / (N - 1 + 0.5);
    const seg = sampleSegments(n, N, 0.5, 3.2, createRandom(3), 'continuous');
    let below = 0;
    for (let b = 0; b < n; b++) {
      const r = seg.rawSrc[b]!;
      expect(r).toBeGreaterThan(0);
      expect(r).toBeLessThanOrEqual(1);
      expect(seg.rawLength[b]).toBeCloseTo(Math.min(delta, r), 12);
      expect(seg.sigmaSrc[b]).toBeCloseTo((3.2 * r) / (1 + 2.2 * r), 6);
      if (r < 0.25) below++;
    }
    // P(r < 1/4) = 1/4, within 4 standard errors
    expect(Math.abs(below / n - 0.25)).toBeLessThan(4 * Math.sqrt((0.25 * 0.75) / n));
    // off the grid: almost no r_src on the 4-step sampler's grid
    const grid = flowMapSchedule({ numInferenceSteps: N, finalStepSizeScale: 0.5, shift: 3.2 }).rawTimes;
    const onGrid = Array.from(seg.rawSrc).filter((r) => grid.some((g) => Math.abs(g - r) < 1e-9)).length;
    expect(onGrid).toBeLessThan(5);
  });

  it('mixed: half the starts on the grid (as grid), half anywhere (as continuous)', () => {
    const n = 20000;
    const N = 2;
    const delta = 1 / N;
    const seg = sampleSegments(n, N, 1, 1, createRandom(5), 'mixed');
    const grid = flowMapSchedule({ numInferenceSteps: N }).rawTimes;
    let onGrid = 0;
    for (let b = 0; b < n; b++) {
      const r = seg.rawSrc[b]!;
      if (grid.some((g) => Math.abs(g - r) < 1e-9)) {
        onGrid++;
        expect(seg.rawLength[b]).toBeCloseTo(delta, 12);
      } else expect(seg.rawLength[b]).toBeCloseTo(Math.min(delta, r), 12);
    }
    expect(Math.abs(onGrid / n - 0.5)).toBeLessThan(4 * Math.sqrt(0.25 / n));
  });

  it('intermediate offsets: student increments within (1 − ratio)·L, teacher increments partition ratio·L', () => {
    const random = createRandom(2);
    for (const ratio of [0, 0.3, 1]) {
      for (let trial = 0; trial < 200; trial++) {
        const { student, teacher } = intermediateOffsets(4, 0.2, ratio, random);
        const s = student.reduce((a, v) => a + v, 0);
        const t = teacher.reduce((a, v) => a + v, 0);
        expect(student.every((v) => v >= 0) && teacher.every((v) => v >= 0)).toBe(true);
        expect(s).toBeLessThanOrEqual((1 - ratio) * 0.2 + 1e-12);
        expect(t).toBeCloseTo(ratio * 0.2, 12);
      }
    }
  });

  it('trajectory mixing decays linearly from 1 to 0', () => {
    expect([0, 500, 1000, 2000].map((i) => teacherRatioAt(i, 1000))).toEqual([1, 0.5, 0, 0]);
    expect(teacherRatioAt(5, 0)).toBe(0);
  });
});
