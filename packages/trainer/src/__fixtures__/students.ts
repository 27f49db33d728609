import type { AnalyticGMFlow, Random, TrainableStudent } from '@piflow/core';
import type { GMParams } from '@piflow/policy-gm';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A student that outputs the exact x0-posterior of an analytic GM flow with a learnable offset added to
 * every component mean. At offset 0 its policies reproduce the teacher exactly (the oracle property), so
 * π-ID's loss must vanish there, and training must pull a perturbed offset back towards 0.
 */
export function offsetPosteriorStudent(
  flow: AnalyticGMFlow,
  initialOffset: number[],
): TrainableStudent<GMParams> & { offset: tf.Variable } {
  const offset = tf.variable(tf.tensor1d(initialOffset));
  return {
    family: 'gm',
    offset,
    variables: [offset],
    predict(x, sigma) {
      const post = flow.posterior(x, sigma);
      const means = tf.add(post.means, offset);
      post.means.dispose();
      return { ...post, means };
    },
    dispose: () => offset.dispose(),
  };
}

/** A small residual MLP GM student for vector data [B, C] (inputs: x and a sinusoidal embedding of σ). */
export function mlpGMStudent(
  C: number,
  K: number,
  width: number,
  random: Random,
): TrainableStudent<GMParams> {
  const init = (shape: number[], scale: number) => tf.variable(tf.mul(random.normalTensor(shape), scale));
  const E = 8;
  const w1 = init([C + E, width], 1 / Math.sqrt(C + E));
  const b1 = tf.variable(tf.zeros([width]));
  const w2 = init([width, width], 1 / Math.sqrt(width));
  const b2 = tf.variable(tf.zeros([width]));
  const wm = init([width, K * C], 0.1 / Math.sqrt(width));
  const bm = init([K * C], 1);
  const wl = tf.variable(tf.zeros([width, K]));
  const bl = tf.variable(tf.zeros([K]));
  const ws = tf.variable(tf.zeros([width, 1]));
  const bs = tf.variable(tf.fill([1], Math.log(0.3)));
  const freqs = tf.tensor1d(Array.from({ length: E / 2 }, (_, i) => 2 ** i));
  return {
    family: 'gm',
    variables: [w1, b1, w2, b2, wm, bm, wl, bl, ws, bs],
    predict(x, sigma) {
      return tf.tidy(() => {
        const B = x.shape[0]!;
        const angles = tf.mul(tf.reshape(sigma, [B, 1]), tf.reshape(freqs, [1, E / 2]));
        const h0 = tf.concat([x, tf.sin(angles), tf.cos(angles)], 1);
        const h1 = tf.relu(tf.add(tf.matMul(h0, w1), b1));
        const h2 = tf.add(h1, tf.relu(tf.add(tf.matMul(h1, w2), b2)));
        const means = tf.reshape(tf.add(tf.matMul(h2, wm), bm), [B, K, C]);
        const logweights = tf.logSoftmax(tf.add(tf.matMul(h2, wl), bl));
        const logstd = tf.reshape(tf.add(tf.matMul(h2, ws), bs), [B]) as tf.Tensor1D;
        return { space: 'u' as const, means, logweights, logstd };
      });
    },
  };
}
