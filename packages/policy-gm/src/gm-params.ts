import { assertTensor, assertTensorValues, describeValue, InvalidArgumentError } from '@piflow/core';
import * as tf from '@tensorflow/tfjs-core';

/** GM parameters in x0-space: a mixture over x0 per position with one shared isotropic variance per sample. */
export interface GMX0Params {
  space: 'x0';
  /** [B, ...positions, K, C] component means of x0. */
  means: tf.Tensor;
  /** [B, ...positions, K] log-weights (normalised on use). */
  logweights: tf.Tensor;
  /** [B] shared x0 variance (> 0). */
  variance: tf.Tensor1D;
}

/**
 * GM parameters in the student's u-space (what a GM head outputs, like a flow model outputs velocities).
 * At (x_src, σ_src): x0 means = x_src − σ_src·means, x0 variance = exp(2·logstd)·σ_src².
 */
export interface GMUParams {
  space: 'u';
  /** [B, ...positions, K, C] component means of u. */
  means: tf.Tensor;
  /** [B, ...positions, K] log-weights (normalised on use). */
  logweights: tf.Tensor;
  /** [B] shared log standard deviation of u. */
  logstd: tf.Tensor1D;
}

export type GMParams = GMX0Params | GMUParams;

/** Validates GM parameters against x [B, ...positions, C]; returns K. */
export function validateGMParams(params: unknown, x: tf.Tensor, argument = 'params'): number {
  if (!params || typeof params !== 'object') {
    throw new InvalidArgumentError(
      argument,
      "GM parameters { space: 'x0' | 'u', means, logweights, variance | logstd }",
      describeValue(params),
    );
  }
  const p = params as {
    space?: unknown;
    means?: unknown;
    logweights?: unknown;
    variance?: unknown;
    logstd?: unknown;
  };
  if (p.space !== 'x0' && p.space !== 'u') {
    throw new InvalidArgumentError(`${argument}.space`, "'x0' or 'u'", describeValue(p.space));
  }
  const positions = x.shape.slice(0, -1);
  const C = x.shape[x.rank - 1]!;
  assertTensor(`${argument}.means`, p.means, { rank: x.rank + 1 });
  const K = p.means.shape[x.rank - 1]!;
  if (K < 1) throw new InvalidArgumentError(`${argument}.means`, 'K ≥ 1 components', `K = ${K}`);
  assertTensor(`${argument}.means`, p.means, { shape: [...positions, K, C] });
  assertTensor(`${argument}.logweights`, p.logweights, { shape: [...positions, K] });
  const B = x.shape[0]!;
  // values: finite means and log-std, log-weights without NaN or +∞ (−∞ is a zero weight), variance > 0
  assertTensorValues(`${argument}.means`, p.means);
  assertTensorValues(`${argument}.logweights`, p.logweights as tf.Tensor, { allowNegativeInfinity: true });
  if (p.space === 'x0') {
    assertTensor(`${argument}.variance`, p.variance, { shape: [B] });
    assertTensorValues(`${argument}.variance`, p.variance, { min: 0, minExclusive: true });
  } else {
    assertTensor(`${argument}.logstd`, p.logstd, { shape: [B] });
    assertTensorValues(`${argument}.logstd`, p.logstd);
  }
  return K;
}

/** Converts u-space GM parameters to x0-space at (x_src, σ_src) (a new params object; caller owns it). */
export function gmToX0Space(params: GMParams, xSrc: tf.Tensor, sigmaSrc: tf.Tensor1D): GMX0Params {
  if (params.space === 'x0') {
    return {
      space: 'x0',
      means: params.means.clone(),
      logweights: params.logweights.clone(),
      variance: params.variance.clone(),
    };
  }
  return tf.tidy(() => {
    const B = xSrc.shape[0]!;
    const sigmaMeans = tf.reshape(sigmaSrc, [B, ...new Array<number>(xSrc.rank).fill(1)]);
    const means = tf.sub(tf.expandDims(xSrc, -2), tf.mul(sigmaMeans, params.means));
    const variance = tf.mul(tf.exp(tf.mul(params.logstd, 2)), tf.square(sigmaSrc)) as tf.Tensor1D;
    return { space: 'x0' as const, means, logweights: params.logweights.clone(), variance };
  });
}

/** The mixture mean Σ_k softmax(logw)_k·μ_k, [B, ...positions, C]. */
export function gmMean(params: GMX0Params): tf.Tensor {
  return tf.tidy(() => tf.sum(tf.mul(tf.expandDims(tf.softmax(params.logweights), -1), params.means), -2));
}
