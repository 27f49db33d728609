import type { Random } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';
import type { GMX0Params } from './gm-params';

/** Per position a component k ~ softmax(logweights), then x0 = μ_k + √variance·ε, on the values. */
function drawFromMixture(
  params: GMX0Params,
  means: ArrayLike<number>,
  logw: ArrayLike<number>,
  variance: ArrayLike<number>,
  random: Random,
): tf.Tensor {
  const shape = params.means.shape;
  const K = shape[shape.length - 2]!;
  const C = shape[shape.length - 1]!;
  const B = shape[0]!;
  const positions = params.logweights.size / K;
  const perSample = positions / B;
  const out = new Float32Array(positions * C);
  const probs = new Float64Array(K);
  for (let p = 0; p < positions; p++) {
    let max = -Infinity;
    for (let k = 0; k < K; k++) max = Math.max(max, logw[p * K + k]!);
    let z = 0;
    for (let k = 0; k < K; k++) z += probs[k] = Math.exp(logw[p * K + k]! - max);
    let u = random.uniform() * z;
    let k = 0;
    while (k < K - 1 && u >= probs[k]!) u -= probs[k++]!;
    const std = Math.sqrt(variance[Math.floor(p / perSample)]!);
    for (let c = 0; c < C; c++) out[p * C + c] = means[(p * K + k) * C + c]! + std * random.normal();
  }
  return tf.tensor(out, [...shape.slice(0, -2), C]);
}

/**
 * Draws x0 from an x0-space GM: per position a component k ~ softmax(logweights), then
 * x0 = μ_k + √variance·ε. Runs in JS on the tensors' values (it is not on any hot path), read synchronously;
 * where that is impossible (GPU-computed tensors on tfjs's WebGPU backend in Node) use
 * sampleGaussianMixtureAsync.
 */
export function sampleGaussianMixture(params: GMX0Params, random: Random): tf.Tensor {
  return drawFromMixture(
    params,
    params.means.dataSync(),
    params.logweights.dataSync(),
    params.variance.dataSync(),
    random,
  );
}

/** sampleGaussianMixture reading the tensors' values asynchronously (works on every backend). */
export async function sampleGaussianMixtureAsync(params: GMX0Params, random: Random): Promise<tf.Tensor> {
  const [means, logw, variance] = await Promise.all([
    params.means.data(),
    params.logweights.data(),
    params.variance.data(),
  ]);
  return drawFromMixture(params, means, logw, variance, random);
}
