/**
 * Parameter makers and the float64 reference velocity for the GM family in the student's u-space, shared by
 * this package's tests and by every backend that reruns the conformance suites.
 */
import type { Random } from '@piflow/core';
import type { ReferenceInputs } from '@piflow/core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { gmVelocityReference } from './references';

/** Random u-space GM parameters for x of `shape` ([B, …positions, C]) with K components. */
export function gmUParams(shape: number[], random: Random, K = 3) {
  const positions = shape.slice(0, -1);
  const C = shape[shape.length - 1]!;
  return {
    space: 'u' as const,
    means: random.normalTensor([...positions, K, C]),
    logweights: tf.tidy(() => tf.mul(random.normalTensor([...positions, K]), 0.7)),
    logstd: tf.tidy(() => tf.sub(tf.mul(random.normalTensor([shape[0]!]), 0.2), 0.8)) as tf.Tensor1D,
  };
}

/** The same in x0-space form (means are not converted: a valid, different x0-space GM). */
export function gmX0Params(shape: number[], random: Random, K = 3) {
  const u = gmUParams(shape, random, K);
  const variance = tf.tidy(() => tf.exp(tf.mul(u.logstd, 2))) as tf.Tensor1D;
  u.logstd.dispose();
  return { space: 'x0' as const, means: u.means, logweights: u.logweights, variance };
}

/** Float64 reference for u-space GM parameters: converts to x0-space per position, then the paper's formula. */
export function gmUSpaceReference(K = 3) {
  return (params: Record<string, Float64Array>, inputs: ReferenceInputs): Float64Array => {
    const { shape } = inputs;
    const B = shape[0]!;
    const C = shape[shape.length - 1]!;
    const P = inputs.x.length / C;
    const perSample = P / B;
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
  };
}
