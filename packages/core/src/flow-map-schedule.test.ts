import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it } from 'vitest';
import { flowMapSchedule, flowMapStep } from './flow-map-schedule';
import { createRandom } from './random';
import { rolloutSigmaGrid } from './rollout';

describe('FlowMap schedule', () => {
  it('reproduces the reference 4-step FLUX schedule (f = 0.5, shift 3.2) and its substep counts', () => {
    const s = flowMapSchedule({ numInferenceSteps: 4, finalStepSizeScale: 0.5, shift: 3.2 });
    expect(s.rawTimes.map((r) => Number(r.toFixed(6)))).toEqual([1, 0.714286, 0.428571, 0.142857]);
    expect(s.sigmas.map((r) => Number(r.toFixed(6)))).toEqual([1, 0.888889, 0.705882, 0.347826, 0]);
    expect(s.sigmasDst).toEqual(s.sigmas.slice(1));
    const counts = [0, 1, 2, 3].map(
      (i) =>
        rolloutSigmaGrid({
          sigmaSrc: Float32Array.of(s.sigmas[i]!),
          sigmaDst: Float32Array.of(s.sigmas[i + 1]!),
          substeps: 128,
          shift: 3.2,
        })[0]!.length - 1,
    );
    expect(counts).toEqual([37, 37, 37, 18]);
  });

  it('is uniform in raw time with f = 1 and ends at exactly 0', () => {
    const s = flowMapSchedule({ numInferenceSteps: 2 });
    expect(s.sigmas).toEqual([1, 0.5, 0]);
    expect(flowMapSchedule({ numInferenceSteps: 1 }).sigmas).toEqual([1, 0]);
  });

  it('SDE variants: h = inf rolls to 0 and re-noises fully; h > 0 in between', () => {
    const inf = flowMapSchedule({ numInferenceSteps: 4, h: 'inf' });
    expect(inf.sigmasDst).toEqual([0, 0, 0, 0]);
    const mid = flowMapSchedule({ numInferenceSteps: 4, h: 1 });
    // from σ_src = 1 (α_src = 0) m is 0 for every h > 0, as in the reference
    expect(mid.m[0]).toBe(0);
    for (let i = 1; i < 3; i++) {
      expect(mid.sigmasDst[i]!).toBeGreaterThan(0);
      expect(mid.sigmasDst[i]!).toBeLessThan(mid.sigmas[i + 1]!);
      expect(mid.m[i]!).toBeGreaterThan(0);
      expect(mid.m[i]!).toBeLessThan(1);
    }
  });

  it('the re-noising step keeps signal α_to·x0 and total noise σ_to', () => {
    // x_dst = α_dst·x0 + σ_dst·ε: after the step, mean/x0 = α_to and the noise std is σ_to.
    const s = flowMapSchedule({ numInferenceSteps: 3, h: 0.7 });
    const i = 1;
    const sigmaDst = s.sigmasDst[i]!;
    const sigmaTo = s.sigmas[i + 1]!;
    const random = createRandom(3);
    const n = 40000;
    const x0 = 1.5;
    const xDst = tf.tensor2d(
      Float32Array.from({ length: n }, () => (1 - sigmaDst) * x0 + sigmaDst * random.normal()),
      [n, 1],
    );
    const next = Array.from(flowMapStep(xDst, i, s, random).dataSync());
    const mean = next.reduce((a, v) => a + v, 0) / n;
    const std = Math.sqrt(next.reduce((a, v) => a + (v - mean) ** 2, 0) / n);
    // 4 standard errors: of the mean σ_to/√n, of the std ≈ σ_to/√(2n) (Gaussian noise)
    expect(Math.abs(mean - (1 - sigmaTo) * x0)).toBeLessThan((4 * sigmaTo) / Math.sqrt(n));
    expect(Math.abs(std - sigmaTo)).toBeLessThan((4 * sigmaTo) / Math.sqrt(2 * n));
    xDst.dispose();
  });

  it('validates its options', () => {
    expect(() => flowMapSchedule({ numInferenceSteps: 0 })).toThrow(/numInferenceSteps/);
    expect(() => flowMapSchedule({ numInferenceSteps: 2.5 })).toThrow(/integer/);
    expect(() => flowMapSchedule({ numInferenceSteps: 4, finalStepSizeScale: 0 })).toThrow(
      /finalStepSizeScale/,
    );
    expect(() => flowMapSchedule({ numInferenceSteps: 4, h: -1 })).toThrow(/`h`/);
    const x = tf.zeros([2, 2]);
    expect(() => flowMapStep(x, 0, flowMapSchedule({ numInferenceSteps: 2, h: 1 }))).toThrow(/random/);
    x.dispose();
  });
});
