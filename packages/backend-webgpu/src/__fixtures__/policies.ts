// Parameter makers and float64 reference velocities for the conformance suites, copied from the policy
// packages' own tests (packages/policy-gm/src/gm-policy.test.ts, packages/policy-dx/src/dx-policy.test.ts).
import type { Random } from '@piflow/core';
import { dxVelocityReference, gmVelocityReference, type ReferenceInputs } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';

export const GM_K = 3;

export function gmUParams(shape: number[], random: Random) {
  const positions = shape.slice(0, -1);
  const C = shape[shape.length - 1]!;
  return {
    space: 'u' as const,
    means: random.normalTensor([...positions, GM_K, C]),
    logweights: tf.tidy(() => tf.mul(random.normalTensor([...positions, GM_K]), 0.7)),
    logstd: tf.tidy(() => tf.sub(tf.mul(random.normalTensor([shape[0]!]), 0.2), 0.8)) as tf.Tensor1D,
  };
}

export function gmX0Params(shape: number[], random: Random) {
  const u = gmUParams(shape, random);
  const variance = tf.tidy(() => tf.exp(tf.mul(u.logstd, 2))) as tf.Tensor1D;
  u.logstd.dispose();
  return { space: 'x0' as const, means: u.means, logweights: u.logweights, variance };
}

/** Float64 reference for u-space GM params: converts to x0-space per position, then the paper's formula. */
export function gmReferenceU(params: Record<string, Float64Array>, inputs: ReferenceInputs): Float64Array {
  const { shape } = inputs;
  const B = shape[0]!;
  const C = shape[shape.length - 1]!;
  const P = inputs.x.length / C;
  const perSample = P / B;
  const K = GM_K;
  const means = new Float64Array(P * K * C);
  const variance = new Float64Array(P);
  const sigmaSrc = new Float64Array(P);
  const sigma = new Float64Array(P);
  for (let p = 0; p < P; p++) {
    const b = Math.floor(p / perSample);
    const ss = inputs.sigmaSrc[b]!;
    sigmaSrc[p] = ss;
    sigma[p] = inputs.sigma[b]!;
    variance[p] = Math.exp(2 * params.logstd![b]!) * ss * ss;
    for (let k = 0; k < K; k++)
      for (let c = 0; c < C; c++)
        means[(p * K + k) * C + c] = inputs.xSrc[p * C + c]! - ss * params.means![(p * K + k) * C + c]!;
  }
  return gmVelocityReference({
    means,
    logweights: params.logweights!,
    variance,
    xSrc: inputs.xSrc,
    x: inputs.x,
    sigmaSrc,
    sigma,
    K,
    C,
  });
}

export const DX_N = 4;

export function dxParams(shape: number[], random: Random) {
  return { space: 'u' as const, uGrid: random.normalTensor([shape[0]!, DX_N, ...shape.slice(1)]) };
}

/** Float64 reference for u-space DX params with the given family options. */
export function dxReference(options: { shift: number; segmentSize: number; mode: 'grid' | 'polynomial' }) {
  return (params: Record<string, Float64Array>, inputs: ReferenceInputs): Float64Array => {
    const B = inputs.shape[0]!;
    const D = inputs.x.length / B;
    const N = DX_N;
    const x0Grid = new Float64Array(B * N * D);
    for (let b = 0; b < B; b++)
      for (let n = 0; n < N; n++)
        for (let i = 0; i < D; i++)
          x0Grid[(b * N + n) * D + i] =
            inputs.xSrc[b * D + i]! - inputs.sigmaSrc[b]! * params.uGrid![(b * N + n) * D + i]!;
    return dxVelocityReference({
      x0Grid,
      x: inputs.x,
      sigmaSrc: inputs.sigmaSrc,
      sigma: inputs.sigma,
      B,
      N,
      eps: 1e-4,
      ...options,
    });
  };
}
