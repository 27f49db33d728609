import { createPolicyRegistry, createRandom, rollout, type Student, sample } from '@piflow/core';
import {
  countLeaks,
  describePolicyConformance,
  FusedKernelSpy,
  type ReferenceInputs,
  relativeError,
  testBackends,
  useBackend,
} from '@piflow/core/testing';
import { dx } from '@piflow/policy-dx';
import { gm } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGaussianFamily, type GaussianX0Params, gaussian } from './gaussian-policy';
import { GAUSSIAN_FUSED_ROLLOUT_KERNEL, gaussianFusedRolloutKernel } from './gaussian-rollout-kernel';

/**
 * The fused rollout (through core's dispatch; the kernel must run exactly once, counted by `spy`) and the
 * op-by-op one, as values.
 */
function fusedAndOpByOp(
  spy: FusedKernelSpy,
  policy: ReturnType<typeof gaussian.create>,
  x: tf.Tensor,
  substeps: number,
) {
  const before = spy.runs;
  const fused = rollout(policy, x, { sigmaSrc: 1, sigmaDst: 0, substeps });
  const runs = spy.runs - before;
  const opByOp = rollout(policy, x, { sigmaSrc: 1, sigmaDst: 0, substeps, fused: false });
  const values = { fused: fused.dataSync().slice(), opByOp: opByOp.dataSync().slice() };
  tf.dispose([fused, opByOp]);
  expect(runs, `runs of ${GAUSSIAN_FUSED_ROLLOUT_KERNEL} on ${spy.backend}`).toBe(1);
  return values;
}

/**
 * Float64 reference in the paper's form (divides by σ and σ², unlike the implementation): u-space
 * parameters → x0 mean/variance → ζ, ν, μ' = (v·ν + μ)/(v·ζ + 1) → u = (x − μ')/σ.
 */
function referenceVelocity(params: Record<string, Float64Array>, inputs: ReferenceInputs): Float64Array {
  const { mean, logstd } = params as { mean: Float64Array; logstd: Float64Array };
  const B = inputs.shape[0]!;
  const per = inputs.x.length / B;
  const u = new Float64Array(inputs.x.length);
  for (let i = 0; i < u.length; i++) {
    const b = Math.floor(i / per);
    const ss = inputs.sigmaSrc[b]!;
    const s = inputs.sigma[b]!;
    const mu = inputs.xSrc[i]! - ss * mean[i]!;
    const v = (ss * Math.exp(logstd[i]!)) ** 2;
    const zeta = ((1 - s) / s) ** 2 - ((1 - ss) / ss) ** 2;
    const nu = ((1 - s) / (s * s)) * inputs.x[i]! - ((1 - ss) / (ss * ss)) * inputs.xSrc[i]!;
    const posteriorMean = (v * nu + mu) / (v * zeta + 1);
    u[i] = (inputs.x[i]! - posteriorMean) / s;
  }
  return u;
}

describePolicyConformance({
  family: gaussian,
  makeParams: (shape, random) => ({
    space: 'u',
    mean: random.normalTensor(shape),
    logstd: tf.tidy(() => tf.mul(random.normalTensor(shape), 0.3)),
  }),
  referenceVelocity,
});

/**
 * Data x0 ~ N(m, diag(s²)): the exact posterior p(x0 | x_src) is a diagonal Gaussian, so the policy built
 * from it must reproduce the exact teacher velocity at every (x, σ ≤ σ_src), and sampling ends at the exact
 * ODE solution x0 = m + s·ε up to the Euler substeps' error.
 */
const dataMean = [1.5, -0.5, 0.25];
const dataStd = [0.4, 1.2, 0.05];

function exactVelocity(x: Float32Array, sigma: number[], channels: number): Float64Array {
  const u = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const s = sigma[Math.floor(i / channels)]!;
    const m = dataMean[i % channels]!;
    const v = dataStd[i % channels]! ** 2;
    const posteriorMean = m + (((1 - s) * v) / ((1 - s) ** 2 * v + s * s)) * (x[i]! - (1 - s) * m);
    u[i] = (x[i]! - posteriorMean) / s;
  }
  return u;
}

/** The exact x0-posterior given x at σ, as Gaussian x0-space parameters. */
function exactPosterior(x: tf.Tensor, sigma: ArrayLike<number>): GaussianX0Params {
  const values = x.dataSync();
  const C = x.shape[x.rank - 1]!;
  const per = x.size / x.shape[0]!;
  const mean = new Float32Array(values.length);
  const variance = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const s = sigma[Math.floor(i / per)]!;
    const m = dataMean[i % C]!;
    const v = dataStd[i % C]! ** 2;
    const gain = ((1 - s) * v) / ((1 - s) ** 2 * v + s * s);
    mean[i] = m + gain * (values[i]! - (1 - s) * m);
    variance[i] = (v * s * s) / ((1 - s) ** 2 * v + s * s);
  }
  return { space: 'x0', mean: tf.tensor(mean, x.shape), variance: tf.tensor(variance, x.shape) };
}

for (const backend of testBackends()) {
  describe(`gaussian policy on Gaussian data (exact), ${backend}`, () => {
    const spy = new FusedKernelSpy(gaussianFusedRolloutKernel, backend);
    beforeAll(async () => {
      await useBackend(backend);
      spy.install();
    });
    afterAll(() => {
      spy.uninstall();
    });

    it('reproduces the exact teacher velocity below σ_src (≤ 1e-4 relative, float32)', () => {
      const random = createRandom(11);
      const xSrc = random.normalTensor([64, 3]);
      const params = exactPosterior(xSrc, new Float32Array(64).fill(0.9));
      const policy = gaussian.create(params, xSrc, 0.9);
      for (const sigma of [0.9, 0.6, 0.3, 0.05, 0.002]) {
        // move x along the exact ODE direction so (x, σ) is a plausible state, then compare velocities
        const x = tf.tidy(() => tf.add(xSrc, tf.mul(random.normalTensor([64, 3]), 0.2)));
        const u = policy.velocity(x, sigma);
        const expected = exactVelocity(x.dataSync() as Float32Array, new Array(64).fill(sigma), 3);
        expect(relativeError(u.dataSync(), expected)).toBeLessThan(1e-4);
        tf.dispose([x, u]);
      }
      // σ = 0 is finite: the posterior collapses to x, u = (x − μ)/v-weighted limit
      const atZero = policy.velocity(xSrc, 0);
      expect(Array.from(atZero.dataSync()).every(Number.isFinite)).toBe(true);
      tf.dispose([atZero, params.mean, params.variance, xSrc]);
      policy.dispose();
    });

    it('1-step sampling through a registry lands on the exact ODE solution m + s·ε', () => {
      const registry = createPolicyRegistry({ gm, dx, gaussian });
      expect(registry.names()).toEqual(['gm', 'dx', 'gaussian']);
      const family = registry.get('gaussian');
      const student: Student<GaussianX0Params> = {
        family: 'gaussian',
        predict: (x, sigma) => exactPosterior(x, sigma.dataSync()),
      };
      const noise = createRandom(12).normalTensor([256, 3]);
      const { result, leaked } = countLeaks(() =>
        tf.tidy(() => sample(student, family, noise, { numInferenceSteps: 1, substeps: 512 })),
      );
      expect(leaked).toBe(0);
      const eps = noise.dataSync();
      const exact = Float64Array.from(eps, (e, i) => dataMean[i % 3]! + dataStd[i % 3]! * e);
      // Euler with 512 substeps on this smooth field: first-order error ≈ 1e-3 of the scale.
      expect(relativeError(result.dataSync(), exact)).toBeLessThan(2e-3);
      tf.dispose([noise, result]);
    });

    it('fused and op-by-op rollouts agree and converge at first order in the substeps', () => {
      const random = createRandom(13);
      const noise = random.normalTensor([128, 3]);
      const params = exactPosterior(noise, new Float32Array(128).fill(1));
      const policy = gaussian.create(params, noise, 1);
      const exact = Float64Array.from(noise.dataSync(), (e, i) => dataMean[i % 3]! + dataStd[i % 3]! * e);
      const errors = [32, 128].map((substeps) => {
        const { fused, opByOp } = fusedAndOpByOp(spy, policy, noise, substeps);
        expect(relativeError(fused, opByOp)).toBeLessThan(1e-5);
        return relativeError(fused, exact);
      });
      // 4× the substeps: about 4× less error (first-order Euler)
      expect(errors[0]! / errors[1]!).toBeGreaterThan(3);
      expect(errors[0]! / errors[1]!).toBeLessThan(5);
      policy.dispose();
      tf.dispose([noise, params.mean, params.variance]);
    });

    it('planted bug: with the kernel unregistered, the fused-vs-op-by-op helper fails (its run count stays 0)', () => {
      const random = createRandom(15);
      const noise = random.normalTensor([16, 3]);
      const params = exactPosterior(noise, new Float32Array(16).fill(1));
      const policy = gaussian.create(params, noise, 1);
      tf.unregisterKernel(GAUSSIAN_FUSED_ROLLOUT_KERNEL, backend);
      try {
        // the rollout is still right (core registers the package's kernel again, uncounted, on first use)
        expect(() => fusedAndOpByOp(spy, policy, noise, 16)).toThrow(
          `runs of ${GAUSSIAN_FUSED_ROLLOUT_KERNEL} on ${backend}`,
        );
        expect(tf.getKernel(GAUSSIAN_FUSED_ROLLOUT_KERNEL, backend)?.kernelFunc).toBe(
          gaussianFusedRolloutKernel.kernels![backend],
        );
      } finally {
        spy.install();
      }
      const { fused, opByOp } = fusedAndOpByOp(spy, policy, noise, 16);
      expect(relativeError(fused, opByOp)).toBeLessThan(1e-5);
      policy.dispose();
      tf.dispose([noise, params.mean, params.variance]);
    });

    it('the fused kernel runs as one kernel, only outside a gradient tape', async () => {
      const random = createRandom(16);
      const noise = random.normalTensor([8, 3]);
      const params = exactPosterior(noise, new Float32Array(8).fill(1));
      const policy = gaussian.create(params, noise, 1);
      const profile = await tf.profile(() =>
        rollout(policy, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 16 }),
      );
      expect(profile.kernelNames).toEqual([GAUSSIAN_FUSED_ROLLOUT_KERNEL]);
      const before = spy.runs;
      const grad = tf.grad((x: tf.Tensor) =>
        tf.sum(rollout(policy, x, { sigmaSrc: 1, sigmaDst: 0, substeps: 16 })),
      )(noise);
      expect(spy.runs).toBe(before);
      expect(Array.from(grad.dataSync()).every(Number.isFinite)).toBe(true);
      tf.dispose([profile.result as tf.Tensor, grad, noise, params.mean, params.variance]);
      policy.dispose();
    });

    it('temperature scales the x0 variance', () => {
      const random = createRandom(14);
      const xSrc = random.normalTensor([4, 3]);
      const mean = random.normalTensor([4, 3]);
      const logstd = tf.zeros([4, 3]);
      const sharp = createGaussianFamily({ temperature: 0.25 }).create(
        { space: 'u', mean, logstd },
        xSrc,
        0.8,
      );
      const plain = gaussian.create({ space: 'u', mean, logstd }, xSrc, 0.8, { temperature: 0.25 });
      const base = gaussian.create({ space: 'u', mean, logstd }, xSrc, 0.8);
      expect(relativeError(sharp.variance.dataSync(), plain.variance.dataSync())).toBe(0);
      const ratio = sharp.variance.dataSync()[0]! / base.variance.dataSync()[0]!;
      expect(ratio).toBeCloseTo(0.25, 6);
      expect(base.variance.dataSync()[0]).toBeCloseTo(0.64, 5); // (σ_s·e^0)²
      expect(() => gaussian.create({ space: 'u', mean, logstd }, xSrc, 0.8, { temperature: 0 })).toThrow(
        /Invalid argument `temperature`/,
      );
      for (const p of [sharp, plain, base]) p.dispose();
      tf.dispose([xSrc, mean, logstd]);
    });
  });
}

describe('gaussian family', () => {
  it('paramShapes gives what a student outputs', () => {
    expect(gaussian.paramShapes({ shape: [8, 4, 4, 3] })).toEqual({
      mean: [8, 4, 4, 3],
      logstd: [8, 4, 4, 3],
    });
    expect(() => gaussian.paramShapes({ shape: [8] })).toThrow(/Invalid argument `shape`/);
  });

  it('declares its fused rollout kernel: one name, cpu and wasm kernels', () => {
    expect(gaussian.fusedRollout).toBe(gaussianFusedRolloutKernel);
    expect(gaussianFusedRolloutKernel.kernelName).toBe(GAUSSIAN_FUSED_ROLLOUT_KERNEL);
    expect(Object.keys(gaussianFusedRolloutKernel.kernels!)).toEqual(['cpu', 'wasm']);
  });

  it('registers beside gm and dx, and a duplicate name throws', () => {
    const registry = createPolicyRegistry({ gm, dx, gaussian });
    expect(registry.get('gaussian')).toBe(gaussian);
    expect(() => registry.with({ again: createGaussianFamily() })).toThrow(/already registered/);
  });
});
