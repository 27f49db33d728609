import {
  addNoise,
  createAnalyticGMFlow,
  createRandom,
  type PolicyFamily,
  type Random,
  rollout,
  rolloutOpByOp,
  type X0GaussianMixture,
} from '@piflow/core';
import { relativeError, testBackends, useBackend } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';

export interface GMOracleOptions {
  /** The GM family (it must accept x0-space params { space: 'x0', means, logweights, variance }). */
  family: PolicyFamily<X0GaussianMixture>;
  backends?: string[];
  /** Tolerance (default 1e-4 relative, float32). */
  tolerance?: number;
}

const oracleMixtures = [
  { label: '2-D, 8 components', C: 2, K: 8, std: 0.15 },
  { label: '16-D, 12 components', C: 16, K: 12, std: 0.4 },
];

function makeMixture(C: number, K: number, std: number, random: Random) {
  const means = Array.from({ length: K }, () => Array.from({ length: C }, () => 2 * random.normal()));
  const raw = Array.from({ length: K }, () => 0.2 + random.uniform());
  const total = raw.reduce((a, b) => a + b, 0);
  return createAnalyticGMFlow({ means, std, weights: raw.map((w) => w / total) });
}

/**
 * The oracle property: for Gaussian-mixture data, the exact x0-posterior at (x_src, σ_src) is a GM, and the
 * GM policy built from it reproduces the exact velocity at every (x, σ ≤ σ_src), so a 1-step rollout equals
 * the teacher's own ODE rollout with the same substeps.
 */
export function describeGMOracleConformance(options: GMOracleOptions): void {
  const { family, tolerance = 1e-4 } = options;
  for (const backend of options.backends ?? testBackends()) {
    describe(`GM oracle on ${backend}`, () => {
      beforeAll(async () => {
        await useBackend(backend);
      });
      for (const { label, C, K, std } of oracleMixtures) {
        it(`policy from the exact posterior gives the exact velocity below σ_src (${label})`, async () => {
          const random = createRandom(11 + C);
          const flow = makeMixture(C, K, std, random);
          const B = 64;
          for (const sigmaSrcValue of [1, 0.8, 0.35]) {
            const { x0 } = flow.sample(B, random);
            const noise = random.normalTensor([B, C]);
            const xSrc = addNoise(x0, noise, sigmaSrcValue);
            const posterior = flow.posterior(xSrc, sigmaSrcValue);
            const policy = family.create(posterior, xSrc, sigmaSrcValue);
            // random (x, σ) below σ_src: points on the forward process of the same x0, plus off-trajectory points
            const sigma = Array.from(
              { length: B },
              (_, b) => sigmaSrcValue * (b === 0 ? 1 : b === 1 ? 0 : random.uniform()),
            );
            const sigmaT = tf.tensor1d(sigma);
            // Its own σ tensor: tfjs's WebGPU backend drops a tensor's JS values once an op has used it, and
            // velocity() reads σ synchronously to validate it (which Node's WebGPU cannot do from the GPU).
            const onPath = tf.tidy(() => addNoise(x0, random.normalTensor([B, C]), tf.tensor1d(sigma)));
            const offPath = tf.add(onPath, random.normalTensor([B, C]));
            for (const x of [onPath, offPath]) {
              const u = policy.velocity(x, sigmaT);
              const exact = flow.velocityFloat64(await x.data(), sigma);
              expect(relativeError(await u.data(), exact)).toBeLessThan(tolerance);
              u.dispose();
            }
            policy.dispose();
            tf.dispose([
              x0,
              noise,
              xSrc,
              posterior.means,
              posterior.logweights,
              posterior.variance,
              sigmaT,
              onPath,
              offPath,
            ]);
          }
        });

        it(`1-step rollout from σ = 1 to 0 equals the teacher's rollout with the same substeps (${label})`, async () => {
          const random = createRandom(21 + C);
          const flow = makeMixture(C, K, std, random);
          const noise = random.normalTensor([128, C]);
          const posterior = flow.posterior(noise, 1);
          const policy = family.create(posterior, noise, 1);
          for (const shift of [1, 3.2]) {
            const student = rollout(policy, noise, { sigmaSrc: 1, sigmaDst: 0, substeps: 128, shift });
            const teacher = rolloutOpByOp(flow, noise, {
              sigmaSrc: new Float32Array(128).fill(1),
              sigmaDst: new Float32Array(128),
              substeps: 128,
              shift,
            });
            expect(relativeError(await student.data(), await teacher.data())).toBeLessThan(tolerance);
            tf.dispose([student, teacher]);
          }
          policy.dispose();
          tf.dispose([noise, posterior.means, posterior.logweights, posterior.variance]);
        });
      }
    });
  }
}
