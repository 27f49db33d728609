import * as tf from '@tensorflow/tfjs-core';
import { assertNumber } from './validation';

/**
 * Time warps. Raw time r ∈ [0, 1] is what schedules and rollouts step uniformly in; the noise level is
 * σ = warp(r, s) = s·r / (1 + (s − 1)·r) with shift s > 0 (s = 1: identity; s > 1 spends more steps at high
 * noise, as FLUX and Qwen-Image do with s = 3.2). unwarp is its inverse, r = σ / (s − (s − 1)·σ).
 */
export function warp(rawTime: number, shift?: number): number;
export function warp<T extends tf.Tensor>(rawTime: T, shift?: number): T;
export function warp(rawTime: number | tf.Tensor, shift = 1): number | tf.Tensor {
  assertNumber('shift', shift, { min: 0, minExclusive: true });
  if (typeof rawTime === 'number') {
    assertNumber('rawTime', rawTime, { min: 0, max: 1 });
    return (shift * rawTime) / (1 + (shift - 1) * rawTime);
  }
  if (shift === 1) return rawTime.clone();
  return tf.tidy(() => tf.div(tf.mul(rawTime, shift), tf.add(tf.mul(rawTime, shift - 1), 1)));
}

export function unwarp(sigma: number, shift?: number): number;
export function unwarp<T extends tf.Tensor>(sigma: T, shift?: number): T;
export function unwarp(sigma: number | tf.Tensor, shift = 1): number | tf.Tensor {
  assertNumber('shift', shift, { min: 0, minExclusive: true });
  if (typeof sigma === 'number') {
    assertNumber('sigma', sigma, { min: 0, max: 1 });
    return sigma / (shift - (shift - 1) * sigma);
  }
  if (shift === 1) return sigma.clone();
  return tf.tidy(() => tf.div(sigma, tf.sub(shift, tf.mul(sigma, shift - 1))));
}

export interface DynamicShiftOptions {
  /** Sequence length at which log-shift equals `baseShift` (FLUX.1: 256). */
  baseSequenceLength?: number;
  /** Sequence length at which log-shift equals `maxShift` (FLUX.1: 4096). */
  maxSequenceLength?: number;
  /** log-shift at the base length (FLUX.1: 0.5). */
  baseShift?: number;
  /** log-shift at the max length (FLUX.1: 1.15). */
  maxShift?: number;
}

/**
 * Resolution-dependent shift (FLUX / Qwen-Image "dynamic shifting"): μ = log-shift is linear in the token
 * count between (baseSequenceLength, baseShift) and (maxSequenceLength, maxShift), and the shift is e^μ.
 * With that shift, `warp` equals the diffusers time shift e^μ / (e^μ + 1/t − 1).
 */
export function dynamicShift(sequenceLength: number, options: DynamicShiftOptions = {}): number {
  const { baseSequenceLength = 256, maxSequenceLength = 4096, baseShift = 0.5, maxShift = 1.15 } = options;
  assertNumber('sequenceLength', sequenceLength, { min: 1, integer: true });
  assertNumber('baseSequenceLength', baseSequenceLength, { min: 1 });
  assertNumber('maxSequenceLength', maxSequenceLength, { min: baseSequenceLength, minExclusive: true });
  assertNumber('baseShift', baseShift);
  assertNumber('maxShift', maxShift);
  const slope = (maxShift - baseShift) / (maxSequenceLength - baseSequenceLength);
  const mu = baseShift + slope * (sequenceLength - baseSequenceLength);
  return Math.exp(mu);
}
