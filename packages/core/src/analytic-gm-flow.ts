import * as tf from '@tensorflow/tfjs-core';
import { assertSigma, type Sigma, sigmaColumn, sigmaVector } from './conventions';
import { InvalidArgumentError } from './errors';
import type { Random } from './random';
import { assertNumber, assertTensor, describeValue } from './validation';

export interface AnalyticGMFlowOptions {
  /** Component means, K × C. */
  means: number[][];
  /** Shared isotropic standard deviation of every component (> 0). */
  std: number;
  /** Mixture weights (K, non-negative, summing to 1). Default: uniform. */
  weights?: number[];
}

/** GM parameters in x0-space, the form `gm.create` takes (see @piflow/policy-gm). */
export interface X0GaussianMixture {
  space: 'x0';
  /** [B, ...positions, K, C] */
  means: tf.Tensor;
  /** [B, ...positions, K] (normalised log-weights) */
  logweights: tf.Tensor;
  /** [B] shared isotropic x0 variance */
  variance: tf.Tensor1D;
}

/**
 * The exact rectified flow of Gaussian-mixture data x0 ~ Σ_k w_k·N(μ_k, s²·I) in C dimensions. Every
 * position of x ([B, ...positions, C]) is an independent draw. Because the noisy marginal of each component
 * is again Gaussian, everything is closed-form:
 *
 *   D = σ² + (1 − σ)²·s²
 *   p(k | x_σ)        ∝ w_k · N(x_σ; (1 − σ)·μ_k, D·I)
 *   E[x0 | x_σ, k]    = (σ²·μ_k + (1 − σ)·s²·x_σ) / D,        Var = s²σ²/D  (shared by all k)
 *   u(x_σ, σ)         = −m + (σ − (1 − σ)·s²)·(x_σ − (1 − σ)·m) / D,   m = Σ_k p(k | x_σ)·μ_k
 *
 * The velocity form is finite on all of σ ∈ [0, 1] (u = −x at σ = 0). The posterior p(x0 | x_σ) is a GM
 * with a shared isotropic variance — exactly the GM policy family's form, which is the oracle property
 * the tests use: a GM policy built from `posterior(x_src, σ_src)` reproduces `velocity` at every σ < σ_src.
 */
export interface AnalyticGMFlow {
  readonly numComponents: number;
  readonly dimension: number;
  readonly std: number;
  readonly means: readonly (readonly number[])[];
  readonly weights: readonly number[];
  /** Exact velocity, float32, same shape as x. */
  velocity(x: tf.Tensor, sigma: Sigma): tf.Tensor;
  /** Exact x0-posterior at (x, σ) as GM parameters. */
  posterior(x: tf.Tensor, sigma: Sigma): X0GaussianMixture;
  /** Reference velocity in float64 JS arithmetic (x given as values of shape [N, C]). */
  velocityFloat64(x: ArrayLike<number>, sigma: ArrayLike<number> | number): Float64Array;
  /** Draws `count` data points: x0 [count, C] and the component of each. */
  sample(count: number, random: Random): { x0: tf.Tensor2D; components: Int32Array };
  /** log p_data(x0) per row of x0 values [N, C], float64. */
  logDensity(x0: ArrayLike<number>): Float64Array;
  /** Index of the most likely component of each data point [N, C] (posterior argmax at σ = 0). */
  assignComponents(x0: ArrayLike<number>): Int32Array;
}

export function createAnalyticGMFlow(options: AnalyticGMFlowOptions): AnalyticGMFlow {
  const { means, std } = options;
  if (!Array.isArray(means) || means.length === 0 || !Array.isArray(means[0]) || means[0].length === 0) {
    throw new InvalidArgumentError(
      'means',
      'a non-empty K × C array of numbers (K ≥ 1, C ≥ 1)',
      describeValue(means),
    );
  }
  const K = means.length;
  const C = means[0]!.length;
  means.forEach((row, k) => {
    if (!Array.isArray(row) || row.length !== C) {
      throw new InvalidArgumentError(`means[${k}]`, `an array of ${C} numbers`, describeValue(row));
    }
    row.forEach((v, c) => assertNumber(`means[${k}][${c}]`, v));
  });
  assertNumber('std', std, { min: 0, minExclusive: true });
  const weights = options.weights ?? new Array<number>(K).fill(1 / K);
  if (!Array.isArray(weights) || weights.length !== K) {
    throw new InvalidArgumentError(
      'weights',
      `an array of ${K} weights (one per mean)`,
      describeValue(weights),
    );
  }
  weights.forEach((w, k) => assertNumber(`weights[${k}]`, w, { min: 0 }));
  const total = weights.reduce((a, b) => a + b, 0);
  if (Math.abs(total - 1) > 1e-6) {
    throw new InvalidArgumentError('weights', 'weights summing to 1 (±1e-6)', `weights summing to ${total}`);
  }

  const s2 = std * std;
  const meansFlat = new Float32Array(K * C);
  means.forEach((row, k) => row.forEach((v, c) => (meansFlat[k * C + c] = v)));
  const logWeights = weights.map((w) => Math.log(w));
  const meanNorms = means.map((row) => row.reduce((a, v) => a + v * v, 0));

  const checkX = (x: unknown): tf.Tensor => {
    assertTensor('x', x, { minRank: 2 });
    if (x.shape[x.rank - 1] !== C) {
      throw new InvalidArgumentError(
        'x',
        `a float32 tensor [B, …, ${C}] (channels last, C = ${C})`,
        describeValue(x),
      );
    }
    return x;
  };

  /** Shared pieces: logits of p(k | x) (shape [..., K]) and the scalar columns. */
  const responsibilities = (x: tf.Tensor, sigma: Sigma) => {
    const rank = x.rank;
    const s = sigmaColumn(sigma, rank);
    const a = tf.sub(1, s); // 1 − σ
    const D = tf.add(tf.square(s), tf.mul(tf.square(a), s2));
    const meansT = tf.tensor2d(meansFlat, [K, C]);
    const flat = tf.reshape(x, [-1, C]);
    const dots = tf.reshape(tf.matMul(flat, meansT, false, true), [...x.shape.slice(0, -1), K]);
    const logits = tf.add(
      tf.tensor1d(logWeights),
      tf.div(tf.sub(tf.mul(a, dots), tf.mul(tf.mul(0.5, tf.square(a)), tf.tensor1d(meanNorms))), D),
    );
    return { s, a, D, meansT, logits };
  };

  const flow: AnalyticGMFlow = {
    numComponents: K,
    dimension: C,
    std,
    means: means.map((r) => [...r]),
    weights: [...weights],

    velocity(x, sigma) {
      checkX(x);
      assertSigma('sigma', sigma, x.shape[0]!);
      return tf.tidy(() => {
        const { s, a, D, meansT, logits } = responsibilities(x, sigma);
        const probs = tf.softmax(logits);
        const m = tf.reshape(tf.matMul(tf.reshape(probs, [-1, K]), meansT), x.shape);
        const gain = tf.div(tf.sub(s, tf.mul(a, s2)), D);
        return tf.sub(tf.mul(gain, tf.sub(x, tf.mul(a, m))), m);
      });
    },

    posterior(x, sigma) {
      checkX(x);
      assertSigma('sigma', sigma, x.shape[0]!);
      const batch = x.shape[0]!;
      return tf.tidy(() => {
        const { meansT, logits } = responsibilities(x, sigma);
        const logweights = tf.logSoftmax(logits);
        const rank = x.rank + 1;
        const s1 = sigmaColumn(sigma, rank);
        const a1 = tf.sub(1, s1);
        const D1 = tf.add(tf.square(s1), tf.mul(tf.square(a1), s2));
        const xk = tf.expandDims(x, -2); // [..., 1, C]
        const postMeans = tf.div(tf.add(tf.mul(tf.square(s1), meansT), tf.mul(tf.mul(a1, s2), xk)), D1);
        const sv = sigmaVector(sigma, batch);
        const variance = tf.div(
          tf.mul(tf.square(sv), s2),
          tf.add(tf.square(sv), tf.mul(tf.square(tf.sub(1, sv)), s2)),
        ) as tf.Tensor1D;
        return { space: 'x0' as const, means: postMeans, logweights, variance };
      });
    },

    velocityFloat64(x, sigma) {
      const n = x.length / C;
      if (!Number.isInteger(n)) {
        throw new InvalidArgumentError('x', `values of shape [N, ${C}]`, `${x.length} values`);
      }
      const out = new Float64Array(x.length);
      const logits = new Float64Array(K);
      for (let i = 0; i < n; i++) {
        const sg = typeof sigma === 'number' ? sigma : sigma[i]!;
        const a = 1 - sg;
        const D = sg * sg + a * a * s2;
        let maxLogit = -Infinity;
        for (let k = 0; k < K; k++) {
          let dot = 0;
          for (let c = 0; c < C; c++) dot += x[i * C + c]! * means[k]![c]!;
          logits[k] = logWeights[k]! + (a * dot - 0.5 * a * a * meanNorms[k]!) / D;
          if (logits[k]! > maxLogit) maxLogit = logits[k]!;
        }
        let z = 0;
        for (let k = 0; k < K; k++) {
          logits[k] = Math.exp(logits[k]! - maxLogit);
          z += logits[k]!;
        }
        const gain = (sg - a * s2) / D;
        for (let c = 0; c < C; c++) {
          let m = 0;
          for (let k = 0; k < K; k++) m += (logits[k]! / z) * means[k]![c]!;
          out[i * C + c] = gain * (x[i * C + c]! - a * m) - m;
        }
      }
      return out;
    },

    sample(count, random) {
      assertNumber('count', count, { min: 1, integer: true });
      const x0 = new Float32Array(count * C);
      const components = new Int32Array(count);
      const cdf: number[] = [];
      weights.reduce((acc, w, k) => (cdf[k] = acc + w), 0);
      for (let i = 0; i < count; i++) {
        const u = random.uniform() * cdf[K - 1]!;
        let k = 0;
        while (k < K - 1 && u >= cdf[k]!) k++;
        components[i] = k;
        for (let c = 0; c < C; c++) x0[i * C + c] = means[k]![c]! + std * random.normal();
      }
      return { x0: tf.tensor2d(x0, [count, C]), components };
    },

    logDensity(x0) {
      const n = x0.length / C;
      const out = new Float64Array(n);
      const norm = -0.5 * C * Math.log(2 * Math.PI * s2);
      for (let i = 0; i < n; i++) {
        let maxTerm = -Infinity;
        const terms = new Float64Array(K);
        for (let k = 0; k < K; k++) {
          let d2 = 0;
          for (let c = 0; c < C; c++) {
            const d = x0[i * C + c]! - means[k]![c]!;
            d2 += d * d;
          }
          terms[k] = logWeights[k]! - d2 / (2 * s2);
          if (terms[k]! > maxTerm) maxTerm = terms[k]!;
        }
        let z = 0;
        for (let k = 0; k < K; k++) z += Math.exp(terms[k]! - maxTerm);
        out[i] = norm + maxTerm + Math.log(z);
      }
      return out;
    },

    assignComponents(x0) {
      const n = x0.length / C;
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        let best = -Infinity;
        for (let k = 0; k < K; k++) {
          let d2 = 0;
          for (let c = 0; c < C; c++) {
            const d = x0[i * C + c]! - means[k]![c]!;
            d2 += d * d;
          }
          const score = logWeights[k]! - d2 / (2 * s2);
          if (score > best) {
            best = score;
            out[i] = k;
          }
        }
      }
      return out;
    },
  };
  return flow;
}
