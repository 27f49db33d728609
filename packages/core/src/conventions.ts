/**
 * # Flow conventions (the one place they are written down)
 *
 * **Rectified flow.** A noisy sample at noise level σ ∈ [0, 1] is
 *   x_σ = (1 − σ)·x0 + σ·ε,   ε ~ N(0, I)
 * so σ = 1 is pure noise and σ = 0 is data. The velocity is
 *   u = dx_σ/dσ = ε − x0 = (x_σ − x0) / σ,
 * and generation integrates dx/dσ = u from σ = 1 down to σ = 0. A teacher predicts E[u | x_σ].
 *
 * **Layout is channels-last**, as tfjs convolutions are:
 * - vectors `x: [B, C]` (one position per sample),
 * - images `x: [B, H, W, C]`, tokens `x: [B, L, C]`;
 * in general `x: [B, ...positions, C]`. The batch axis is always first and channels last.
 * - σ is a number (shared by the batch) or a `[B]` float32 tensor (one per sample).
 * - GM policy parameters: `means [B, ...positions, K, C]`, `logweights [B, ...positions, K]`, one shared
 *   variance per sample `variance [B]` (x0-space) or `logstd [B]` (u-space).
 * - DX policy parameters: `x0Grid [B, N, ...positions, C]`.
 *
 * **Spaces.** Policy parameters are in x0-space (what the data looks like) or in u-space (what a student
 * network outputs, the way a flow model outputs velocities). At the source state (x_src, σ_src) they convert
 * by x0 = x_src − σ_src·u, and a u-space standard deviation s converts to an x0 variance (σ_src·s)².
 *
 * **Prediction types.** Models that predict x0 or ε convert to u with
 *   u = (x_σ − x0)/σ        and        u = (ε − x_σ)/(1 − σ).
 */
import * as tf from '@tensorflow/tfjs-core';
import { InvalidArgumentError } from './errors';
import { assertNumber, assertOneOf, assertTensor, describeValue, isTensor } from './validation';

/** A noise level: one number for the whole batch, or a float32 `[B]` tensor. */
export type Sigma = number | tf.Tensor1D;

export type PredictionType = 'velocity' | 'x0' | 'epsilon';
export const predictionTypes: readonly PredictionType[] = ['velocity', 'x0', 'epsilon'];

export interface SigmaRange {
  /** Allow σ = 0 (default true). */
  allowZero?: boolean;
  /** Largest allowed σ (default 1). */
  max?: number;
}

/**
 * Validates σ (a number, or a float32 `[batch]` tensor whose values are read back, synchronously and once
 * per tensor) at an API boundary: finite and within [0, max] (or (0, max] when `allowZero` is false).
 */
export function assertSigma(argument: string, sigma: unknown, batch: number, range: SigmaRange = {}): void {
  const { allowZero = true, max = 1 } = range;
  const expectation = { min: 0, max, minExclusive: !allowZero };
  if (typeof sigma === 'number') {
    assertNumber(argument, sigma, expectation);
    return;
  }
  if (!isTensor(sigma)) {
    throw new InvalidArgumentError(
      argument,
      `a number or a float32 tensor of shape [${batch}]`,
      describeValue(sigma),
    );
  }
  assertTensor(argument, sigma, { shape: [batch] });
  const values = readSigmaValues(argument, sigma);
  for (let i = 0; i < values.length; i++) assertNumber(`${argument}[${i}]`, values[i], expectation);
}

/**
 * Values of σ tensors read so far, by the tensor's data id (a tensor's values never change, and reshapes
 * share the id). Backends that drop a tensor's CPU copy once a GPU op has used it (tfjs's WebGPU backend
 * does) would otherwise make a σ tensor unreadable after its first use, where synchronous readback is
 * impossible (WebGPU in Node) or slow (browsers).
 */
const sigmaValueCache = new WeakMap<object, Float32Array>();

/**
 * σ's values, read synchronously once per tensor. Where that cannot be done (WebGPU in Node cannot read
 * GPU-resident values synchronously), throws an InvalidArgumentError naming `argument` and the ways out.
 */
function readSigmaValues(argument: string, sigma: tf.Tensor): Float32Array {
  const dataId = (sigma as { dataId?: unknown }).dataId;
  const key = typeof dataId === 'object' && dataId !== null ? dataId : undefined;
  const cached = key && !sigma.isDisposed ? sigmaValueCache.get(key) : undefined;
  if (cached) return cached;
  let values: Float32Array;
  try {
    values = Float32Array.from(sigma.dataSync() as ArrayLike<number>);
  } catch (cause) {
    if (sigma.isDisposed) throw cause; // tfjs's own "Tensor is disposed"
    const error = new InvalidArgumentError(
      argument,
      'a number or a σ tensor whose values can be read synchronously',
      `a tensor whose values could not be read (${(cause as Error)?.message ?? String(cause)}); on the ` +
        'WebGPU backend in Node, values computed on the GPU (or moved there by an op) have no synchronous ' +
        'readback: pass σ as a number, as a tensor made from JS values (tf.tensor1d) that no op has used ' +
        'yet, or `await sigma.data()` once before the call',
    );
    (error as { cause?: unknown }).cause = cause;
    throw error;
  }
  if (key) sigmaValueCache.set(key, values);
  return values;
}

/** σ as a tensor of shape [B, 1, …, 1] (rank `rank`) that broadcasts against x. */
export function sigmaColumn(sigma: Sigma, rank: number): tf.Tensor {
  const shape = new Array<number>(rank).fill(1);
  if (typeof sigma === 'number') return tf.fill(shape, sigma, 'float32');
  shape[0] = sigma.shape[0];
  return tf.reshape(sigma, shape);
}

/**
 * σ as a float32 `[B]` tensor. A number becomes a tensor made from values rather than by an op, so its values
 * stay readable synchronously on every backend (tfjs's WebGPU backend in Node has no synchronous readback of
 * GPU-computed values, and students such as the analytic posterior validate σ by reading it).
 */
export function sigmaVector(sigma: Sigma, batch: number): tf.Tensor1D {
  if (typeof sigma === 'number') return tf.tensor1d(new Float32Array(batch).fill(sigma));
  return sigma.clone();
}

/** σ as plain numbers, one per batch item (a tensor's values are read as `assertSigma` reads them). */
export function sigmaValues(sigma: Sigma, batch: number): Float32Array {
  if (typeof sigma === 'number') return new Float32Array(batch).fill(sigma);
  return Float32Array.from(readSigmaValues('sigma', sigma));
}

/** x_σ = (1 − σ)·x0 + σ·ε. */
export function addNoise(x0: tf.Tensor, noise: tf.Tensor, sigma: Sigma): tf.Tensor {
  return tf.tidy(() => {
    const s = sigmaColumn(sigma, x0.rank);
    return tf.add(tf.mul(tf.sub(1, s), x0), tf.mul(s, noise));
  });
}

/** u = (x_σ − x0)/σ (σ > 0). */
export function velocityFromX0(x: tf.Tensor, x0: tf.Tensor, sigma: Sigma): tf.Tensor {
  return tf.tidy(() => tf.div(tf.sub(x, x0), sigmaColumn(sigma, x.rank)));
}

/** x0 = x_σ − σ·u. */
export function x0FromVelocity(x: tf.Tensor, u: tf.Tensor, sigma: Sigma): tf.Tensor {
  return tf.tidy(() => tf.sub(x, tf.mul(sigmaColumn(sigma, x.rank), u)));
}

/** Converts a model prediction of the given type into a velocity u (see the conventions above). */
export function predictionToVelocity(
  prediction: tf.Tensor,
  x: tf.Tensor,
  sigma: Sigma,
  type: PredictionType,
): tf.Tensor {
  assertOneOf('predictionType', type, predictionTypes);
  if (type === 'velocity') return prediction.clone();
  if (type === 'x0') return velocityFromX0(x, prediction, sigma);
  return tf.tidy(() => tf.div(tf.sub(prediction, x), tf.sub(1, sigmaColumn(sigma, x.rank))));
}

/** Converts a velocity u into a prediction of the given type (the inverse of {@link predictionToVelocity}). */
export function velocityToPrediction(
  velocity: tf.Tensor,
  x: tf.Tensor,
  sigma: Sigma,
  type: PredictionType,
): tf.Tensor {
  assertOneOf('predictionType', type, predictionTypes);
  if (type === 'velocity') return velocity.clone();
  if (type === 'x0') return x0FromVelocity(x, velocity, sigma);
  // ε = x + (1 − σ)·u
  return tf.tidy(() => tf.add(x, tf.mul(tf.sub(1, sigmaColumn(sigma, x.rank)), velocity)));
}
